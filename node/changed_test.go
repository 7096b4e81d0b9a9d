package node_test

import (
	"context"
	"testing"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/node"
)

// TestChangedSignal: every change of the local state (join, part, nick,
// block, unblock, purge) signals Changed, whoever made it.
func TestChangedSignal(t *testing.T) {
	ctx := context.Background()
	n, err := node.Open(ctx, node.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	sub := n.Changed()
	defer sub.Close()
	expect := func(what string) {
		t.Helper()
		select {
		case <-sub.C():
		default:
			t.Fatalf("%s did not signal Changed", what)
		}
	}
	none := func(what string) {
		t.Helper()
		select {
		case <-sub.C():
			t.Fatalf("%s signalled Changed", what)
		default:
		}
	}
	ch, err := n.Create(ctx, "general")
	if err != nil {
		t.Fatal(err)
	}
	expect("create")
	if err := n.SetNick(ctx, "ann"); err != nil {
		t.Fatal(err)
	}
	expect("nick")
	peer, _ := feed.NewIdentity()
	if err := n.Block(ctx, ch.ID(), peer.ID(), false); err != nil {
		t.Fatal(err)
	}
	expect("block")
	if err := n.Unblock(ch.ID(), peer.ID()); err != nil {
		t.Fatal(err)
	}
	expect("unblock")
	if err := n.Part(ctx, ch.ID()); err != nil {
		t.Fatal(err)
	}
	expect("part")
	if err := n.Part(ctx, ch.ID()); err == nil {
		t.Fatal("part of a channel not joined")
	}
	none("a failed part")
	other, err := n.Create(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	expect("create")
	if err := n.PurgeChannel(ctx, other.ID()); err != nil {
		t.Fatal(err)
	}
	expect("purge")
}
