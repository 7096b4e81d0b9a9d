package node_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/node"
)

// TestOldBlockFileMigrated: the old global "blocked" file becomes a block
// in every joined channel (the store then refuses those feeds), and is
// renamed so that it is not applied again (an unblock sticks).
func TestOldBlockFileMigrated(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	n, err := node.Open(ctx, node.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c1, err := n.Create(ctx, "one")
	if err != nil {
		t.Fatal(err)
	}
	c2, err := n.Create(ctx, "two")
	if err != nil {
		t.Fatal(err)
	}
	self := n.Self()
	n.Close()
	mal, _ := feed.NewIdentity()
	old := filepath.Join(dir, "blocked")
	// The local user in the old file is not blocked (cannot be).
	if err := os.WriteFile(old, []byte(mal.ID().String()+"\n\n"+self.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err = node.Open(ctx, node.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []feed.Channel{c1, c2} {
		if bl := n.BlockedIn(c.ID()); !bl[mal.ID()] || len(bl) != 1 {
			t.Fatalf("%s: blocked %v", c.Name, bl)
		}
		es, err := feed.NewEntry(mal, c.ID(), feed.Head{}, 1, []byte{0xa2, 0x01, 0x01, 0x02, 0x61, 0x78})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Store().Apply(ctx, c.ID(), mal.ID(), []feed.Entry{es}); !errors.Is(err, feed.ErrBlocked) {
			t.Fatalf("%s: apply of a migrated block: %v", c.Name, err)
		}
	}
	if !n.Blocked()[mal.ID()] {
		t.Fatal("Blocked() lost the author")
	}
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("old file still there: %v", err)
	}
	if _, err := os.Stat(old + ".migrated"); err != nil {
		t.Fatal(err)
	}
	if err := n.Unblock(c1.ID(), mal.ID()); err != nil {
		t.Fatal(err)
	}
	n.Close()
	n, err = node.Open(ctx, node.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.BlockedIn(c1.ID())[mal.ID()] || !n.BlockedIn(c2.ID())[mal.ID()] {
		t.Fatal("migration ran again, or the unblock was lost")
	}
}
