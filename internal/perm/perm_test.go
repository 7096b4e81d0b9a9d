package perm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckDir(t *testing.T) {
	d := filepath.Join(t.TempDir(), "data")
	if err := EnsureDir("data dir", d); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(d); fi.Mode().Perm() != 0o700 {
		t.Fatalf("created with mode %04o, want 0700", fi.Mode().Perm())
	}
	for _, c := range []struct {
		mode os.FileMode
		want string // "" accepted
	}{
		{0o700, ""},
		{0o755, ""},
		{0o777, "data dir " + d + " is writable by group and others (mode 0777): run chmod 700 " + d},
		{0o770, "writable by group (mode 0770)"},
		{0o703, "writable by others (mode 0703)"},
	} {
		if err := os.Chmod(d, c.mode); err != nil {
			t.Fatal(err)
		}
		err := CheckDir("data dir", d)
		if c.want == "" {
			if err != nil {
				t.Errorf("mode %04o refused: %v", c.mode, err)
			}
			continue
		}
		if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("mode %04o: %v, want ErrUnsafe saying %q", c.mode, err, c.want)
		}
	}
	os.Chmod(d, 0o700)
	restore := SetUIDForTest(4242)
	err := CheckDir("data dir", d)
	restore()
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "not by you (uid 4242)") {
		t.Errorf("dir of another user: %v", err)
	}
}

func TestReadPrivate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "identity")
	if err := os.WriteFile(p, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadPrivate("identity file", p); err != nil || string(b) != "secret" {
		t.Fatalf("0600: %q %v", b, err)
	}
	for _, m := range []os.FileMode{0o666, 0o644, 0o640, 0o602} {
		os.Chmod(p, m)
		b, err := ReadPrivate("identity file", p)
		if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "run chmod 600 "+p) || b != nil {
			t.Errorf("mode %04o: %q %v", m, b, err)
		}
	}
	os.Chmod(p, 0o600)
	restore := SetUIDForTest(4242)
	_, err := ReadPrivate("identity file", p)
	restore()
	if !errors.Is(err, ErrUnsafe) {
		t.Errorf("file of another user: %v", err)
	}
	if _, err := ReadPrivate("identity file", p+".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}

func TestCheckSocket(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, nil, 0o600)
	if err := CheckSocket("control socket", plain); !errors.Is(err, ErrUnsafe) {
		t.Errorf("plain file: %v", err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(plain, link)
	if err := CheckSocket("control socket", link); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symlink: %v", err)
	}
}
