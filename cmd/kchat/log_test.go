package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/internal/testutil"
)

// logFiles returns the total size and names of the log files in dir
// (kchat.log and its rotated kchat-<time>.log).
func logFiles(t *testing.T, dir string) (int64, []string) {
	t.Helper()
	ms, err := filepath.Glob(filepath.Join(dir, "kchat*.log"))
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, m := range ms {
		fi, err := os.Lstat(m)
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
	}
	return total, ms
}

const logCap = 10 << 20

// TestLogFloodStaysUnderCap: 20,000 Warn records of one line through the
// app's logger are rate-limited (a few lines and a summary); 20,000
// different ones are capped by the limiter's key budget; and 20,000
// different 1 KiB lines written past the limiter (20 MB) rotate: all log
// files together stay under 10 MiB.
func TestLogFloodStaysUnderCap(t *testing.T) {
	dir := t.TempDir()
	a := &app{dataDir: dir}
	l, err := a.logger()
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 1000)
	for i := range 20_000 {
		l.Warn("a peer sent a bad frame", "peer", "12D3KooW", "i", i, "pad", pad)
	}
	size, _ := logFiles(t, dir)
	if size > 64<<10 {
		t.Fatalf("20,000 copies of one line wrote %d bytes: not rate-limited", size)
	}
	for i := range 20_000 {
		l.Warn(fmt.Sprintf("distinct line %d", i), "pad", pad)
	}
	a.closeNode()
	if size, files := logFiles(t, dir); size > logCap {
		t.Fatalf("log files hold %d bytes, cap %d: %v", size, logCap, files)
	}

	// The size cap alone, without the limiter.
	w, err := openLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	raw := slog.New(slog.NewTextHandler(w, nil))
	for i := range 20_000 {
		raw.Warn(fmt.Sprintf("raw line %d", i), "pad", pad)
	}
	// lumberjack removes backups past MaxBackups in its own goroutine,
	// right after each rotation.
	testutil.Eventually(t, 10*time.Second, "old log files removed", func() bool {
		size, files := logFiles(t, dir)
		return size <= logCap && len(files) <= 1+logBackups
	})
	if _, files := logFiles(t, dir); len(files) < 2 {
		t.Fatalf("log files %v: 20 MB of lines did not rotate", files)
	}
	b, err := os.ReadFile(filepath.Join(dir, logName))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "raw line 19999") {
		t.Fatal("the newest line is not in kchat.log")
	}
}

// TestLogSymlinkRefused: a kchat.log planted as a symbolic link (to a file of
// the user's, say) is refused with a clear error and the target is untouched.
func TestLogSymlinkRefused(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(target, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, logName)); err != nil {
		t.Fatal(err)
	}
	a := &app{dataDir: dir}
	_, err := a.logger()
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("logger() with kchat.log a symlink: %v, want a refusal naming the symbolic link", err)
	}
	a.closeNode()
	if b, _ := os.ReadFile(target); string(b) != "keep me" {
		t.Fatalf("the symlink's target was written: %q", b)
	}
	// A dangling link (whose target lumberjack would create) is refused too.
	dir2 := t.TempDir()
	if err := os.Symlink(filepath.Join(t.TempDir(), "new-file"), filepath.Join(dir2, logName)); err != nil {
		t.Fatal(err)
	}
	if _, err := (&app{dataDir: dir2}).logger(); err == nil {
		t.Fatal("a dangling kchat.log symlink was accepted")
	}
	// So is a kchat.log that is not a regular file.
	dir3 := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir3, logName), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := (&app{dataDir: dir3}).logger(); err == nil {
		t.Fatal("a kchat.log directory was accepted")
	}
	// A FIFO is refused at once (it would block the open until read).
	dir4 := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir4, logName), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (&app{dataDir: dir4}).logger(); err == nil {
		t.Fatal("a kchat.log FIFO was accepted")
	}
	// A log that cannot be opened for another reason (here: a data dir
	// kchat may not write, as on a read-only file system) is no error: no
	// log then, and the command runs.
	if os.Getuid() != 0 {
		dir5 := t.TempDir()
		if err := os.Chmod(dir5, 0o500); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(dir5, 0o700)
		if _, err := (&app{dataDir: dir5}).logger(); err != nil {
			t.Fatalf("an unwritable data dir stopped the command: %v", err)
		}
	}
}

// TestCommandRefusesSymlinkedLog: a command that opens the store fails with
// the error instead of logging through the link.
func TestCommandRefusesSymlinkedLog(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(t.TempDir(), "x"), filepath.Join(dir, logName)); err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	code := run(t.Context(), []string{"--data", dir, "channels"}, strings.NewReader(""), &out, &errb, nil)
	if code == 0 || !strings.Contains(errb.String(), "symbolic link") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}
