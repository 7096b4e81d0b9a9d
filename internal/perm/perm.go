// Package perm checks local files the way ssh does before trusting them: a
// data dir, a private key or a control socket that another local user owns
// or can write could have been planted or swapped by that user, so kchat
// refuses it, saying what to fix.
package perm

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
)

// ErrUnsafe is wrapped by every refusal of this package.
var ErrUnsafe = errors.New("unsafe permissions")

// uid is the user kchat trusts; tests replace it (they run as root, so a
// file owned by someone else is made by pretending to be someone else).
var uid atomic.Int64

func init() { uid.Store(int64(os.Getuid())) }

// UID is the uid files must belong to: the current user's.
func UID() int { return int(uid.Load()) }

// SetUIDForTest makes the checks expect owner u and returns a function that
// restores the real uid. For tests only.
func SetUIDForTest(u int) (restore func()) {
	old := uid.Swap(int64(u))
	return func() { uid.Store(old) }
}

// Owner returns the owner uid of fi (-1 if the system does not say).
func Owner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// checkOwner refuses fi unless the current user owns it.
func checkOwner(what, path string, fi fs.FileInfo) error {
	if o := Owner(fi); o != UID() {
		return fmt.Errorf("%w: %s %s is owned by uid %d, not by you (uid %d): use one of your own (or, if it is yours, run chown %d %s)",
			ErrUnsafe, what, path, o, UID(), UID(), path)
	}
	return nil
}

// CheckDir refuses directory path unless it is a directory owned by the
// current user and writable by nobody else (like ssh's StrictModes: a
// directory others can write lets them replace any file in it).
func CheckDir(what, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s %s is not a directory", ErrUnsafe, what, path)
	}
	if err := checkOwner(what, path, fi); err != nil {
		return err
	}
	if m := fi.Mode().Perm(); m&0o022 != 0 {
		return fmt.Errorf("%w: %s %s is writable by %s (mode %04o): run chmod 700 %s",
			ErrUnsafe, what, path, whom(m&0o020 != 0, m&0o002 != 0), m, path)
	}
	return nil
}

// EnsureDir creates directory path (mode 0700, parents as needed) if it is
// missing, then checks it with CheckDir.
func EnsureDir(what, path string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(path, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", what, err)
		}
	}
	return CheckDir(what, path)
}

// CheckPrivate refuses a secret file (fi is its Stat, taken on the open
// file) unless the current user owns it and nobody else may read or write
// it, as ssh does with private keys.
func CheckPrivate(what, path string, fi fs.FileInfo) error {
	if err := checkOwner(what, path, fi); err != nil {
		return err
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return fmt.Errorf("%w: %s %s is accessible by %s (mode %04o): run chmod 600 %s",
			ErrUnsafe, what, path, whom(m&0o070 != 0, m&0o007 != 0), m, path)
	}
	return nil
}

// ReadPrivate reads the secret file at path after CheckPrivate on the open
// file (so the file checked is the file read). Errors from opening are
// returned as they are (fs.ErrNotExist can be tested).
func ReadPrivate(what, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := CheckPrivate(what, path, fi); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return b, nil
}

// WritePrivate replaces the file at path with data, owner-only (0600) and
// atomically: data goes to a temporary file in the same directory, which
// is renamed over path, so a crash leaves the old file or the new one,
// never half of one.
func WritePrivate(what, path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("save %s: %w", what, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", what, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save %s: %w", what, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save %s: %w", what, err)
	}
	return nil
}

// CheckSocket refuses the unix socket at path unless it is a socket (not a
// symlink to one) owned by the current user.
func CheckSocket(what, path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%w: %s %s is a symbolic link: remove it", ErrUnsafe, what, path)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%w: %s %s is not a socket: remove it", ErrUnsafe, what, path)
	}
	return checkOwner(what, path, fi)
}

// whom names who besides the owner has access ("group", "others",
// "group and others").
func whom(g, o bool) string {
	switch {
	case g && o:
		return "group and others"
	case g:
		return "group"
	default:
		return "others"
	}
}
