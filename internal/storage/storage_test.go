package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// openAfterCrash writes a key, closes the store, lets crash leave in the
// dir what a kill would, and checks that the store opens with the key.
func openAfterCrash(t *testing.T, crash func(dir string)) {
	t.Helper()
	dir := t.TempDir()
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	crash(dir)
	db, err = Open(dir, nil)
	if err != nil {
		t.Fatalf("open after crash: %v", err)
	}
	defer db.Close()
	err = db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte("k"))
		return err
	})
	if err != nil {
		t.Fatalf("data lost: %v", err)
	}
}

func TestOpenSurvivesEmptyMemtableFromCrash(t *testing.T) {
	openAfterCrash(t, func(dir string) {
		// What a kill between creating and sizing a memtable file leaves.
		if err := os.WriteFile(filepath.Join(dir, "00099.mem"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	})
}

// TestOpenSurvivesEmptyVlogFromCrash: a kill between creating the next
// value log file (every open creates one) and sizing it left a store that
// Badger refused to open (seen in CI: TestCrashSendStdin).
func TestOpenSurvivesEmptyVlogFromCrash(t *testing.T) {
	openAfterCrash(t, func(dir string) {
		vlogs, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
		if len(vlogs) == 0 {
			t.Fatal("no value log file after an open")
		}
		var max int
		for _, v := range vlogs {
			var fid int
			if _, err := fmt.Sscanf(filepath.Base(v), "%06d.vlog", &fid); err == nil && fid > max {
				max = fid
			}
		}
		// What a kill between creating and sizing the next one leaves.
		empty := filepath.Join(dir, fmt.Sprintf("%06d.vlog", max+1))
		if err := os.WriteFile(empty, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOpenLockedDir(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := Open(dir, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
}

// TestOpenReadOnly: the read-only open sees everything written (including
// the unflushed memtable), changes no file, refuses writes, and cannot run
// beside a writer.
func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenReadOnly(filepath.Join(dir, "none"), nil); err == nil {
		t.Fatal("read-only open of a dir without a store succeeded")
	}
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenReadOnly(dir, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("read-only open beside a writer: %v", err)
	}
	db.Close()
	before := listing(t, dir)

	ro, err := OpenReadOnly(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = ro.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte("k"))
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			if string(v) != "v" {
				t.Errorf("read %q", v)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatalf("read-only read: %v", err)
	}
	if err := ro.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k2"), []byte("v")) }); err == nil {
		t.Fatal("a write through the read-only open succeeded")
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if after := listing(t, dir); after != before {
		t.Fatalf("the read-only open changed the dir:\nbefore %s\nafter  %s", before, after)
	}
}

// listing is the dir's file names and sizes, except Badger's lock file.
func listing(t *testing.T, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	for _, e := range es {
		if e.Name() == "LOCK" {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		s += fmt.Sprintf("%s:%d ", e.Name(), fi.Size())
	}
	return s
}
