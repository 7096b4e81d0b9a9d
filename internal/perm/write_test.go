package perm

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWritePrivate: the file is replaced whole, owner-only, and no
// temporary file is left beside it.
func TestWritePrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := os.WriteFile(path, []byte("old contents, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WritePrivate("state", path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	b, err := ReadPrivate("state", path)
	if err != nil || string(b) != "new" {
		t.Fatalf("read back %q, %v", b, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Fatalf("%d files in the dir, want 1", len(es))
	}
	if err := WritePrivate("state", filepath.Join(dir, "missing", "x"), nil); err == nil {
		t.Fatal("no error for a missing directory")
	}
}
