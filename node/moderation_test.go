package node_test

import (
	"context"
	"errors"
	"testing"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/node"
	"github.com/kchat-p2p/kchat/views"
)

// peerEntries signs payloads as the next entries of id's feed in ch.
func peerEntries(t *testing.T, id *feed.Identity, ch feed.DiscoveryID, from feed.Head, ps ...feed.Payload) ([]feed.Entry, feed.Head) {
	t.Helper()
	var es []feed.Entry
	for _, p := range ps {
		raw, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		e, err := feed.NewEntry(id, ch, from, 1700000000000, raw)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
		from = feed.Head{Author: id.ID(), Len: e.Seq + 1, Hash: e.Hash()}
	}
	return es, from
}

// TestModerationBlockInStore: the creator is the channel's admin; its
// block of an author makes the store refuse that feed (as a local block),
// also after a restart; members report it with roles; hidden authors'
// messages do not count as unread; an unblock lets the feed in again.
func TestModerationBlockInStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	n, err := node.Open(ctx, node.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.Create(ctx, "general")
	if err != nil {
		t.Fatal(err)
	}
	if ids := c.Admins.IDs(); len(ids) != 1 || ids[0] != n.Self() {
		t.Fatalf("admins %v, want the creator", ids)
	}
	if got, _ := n.Resolve("general"); got.Admins != c.Admins {
		t.Fatal("admins not stored with the channel")
	}
	mal, _ := feed.NewIdentity()
	hid, _ := feed.NewIdentity()
	es, head := peerEntries(t, mal, c.ID(), feed.Head{}, feed.Payload{Kind: feed.KindText, Text: "spam"})
	if _, err := n.Store().Apply(ctx, c.ID(), mal.ID(), es); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Mod(ctx, c.ID(), feed.ModBlock, mal.ID(), false, 0, "spam"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Mod(ctx, c.ID(), feed.ModHide, hid.ID(), false, 0, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Mod(ctx, c.ID(), feed.ModBlock, n.Self(), false, 0, ""); !errors.Is(err, node.ErrModSelf) {
		t.Fatalf("self block: %v", err)
	}
	if err := n.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	more, _ := peerEntries(t, mal, c.ID(), head, feed.Payload{Kind: feed.KindText, Text: "more spam"})
	if _, err := n.Store().Apply(ctx, c.ID(), mal.ID(), more); !errors.Is(err, feed.ErrBlocked) {
		t.Fatalf("apply after a moderation block: %v", err)
	}
	if err := n.Views().MarkRead(c.ID()); err != nil {
		t.Fatal(err)
	}
	hes, _ := peerEntries(t, hid, c.ID(), feed.Head{}, feed.Payload{Kind: feed.KindText, Text: "hidden"})
	if _, err := n.Store().Apply(ctx, c.ID(), hid.ID(), hes); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	if u, _ := n.Views().Unread(c.ID()); u.Messages != 0 {
		t.Fatalf("a hidden author's message counts as unread: %+v", u)
	}
	ms, err := n.Members(c.ID())
	if err != nil {
		t.Fatal(err)
	}
	got := map[feed.AuthorID]node.Member{}
	for _, m := range ms {
		got[m.Author] = m
	}
	if !got[mal.ID()].Blocked || got[n.Self()].Role != "admin" || !got[hid.ID()].Hidden || got[mal.ID()].Role != "" {
		t.Fatalf("members %+v", ms)
	}
	n.Close()

	// After a restart the block holds before anything else runs.
	n, err = node.Open(ctx, node.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if !n.Store().IsBlocked(c.ID(), mal.ID()) {
		t.Fatal("moderation block lost in a restart")
	}
	if _, err := n.Mod(ctx, c.ID(), feed.ModUnblock, mal.ID(), false, 0, ""); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Store().Apply(ctx, c.ID(), mal.ID(), more); err != nil {
		t.Fatalf("apply after the unblock: %v", err)
	}
	// Unfollowing oneself (the admin) drops one's own moderation too.
	if _, err := n.Mod(ctx, c.ID(), feed.ModBlock, mal.ID(), false, 0, ""); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	if !n.Store().IsBlocked(c.ID(), mal.ID()) {
		t.Fatal("blocked again: not in force")
	}
	if err := n.Follow(c.ID(), n.Self(), false); err != nil {
		t.Fatal(err)
	}
	if n.Store().IsBlocked(c.ID(), mal.ID()) {
		t.Fatal("unfollowed the only admin, yet the block holds")
	}
}

// TestModerationHideIsPerChannel: an author the admin hid in one channel
// still counts as unread, and their mention as a mention, in another
// channel where nobody hid them.
func TestModerationHideIsPerChannel(t *testing.T) {
	ctx := context.Background()
	n, err := node.Open(ctx, node.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.SetNick(ctx, "ann"); err != nil {
		t.Fatal(err)
	}
	a, err := n.Create(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.Create(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	x, _ := feed.NewIdentity()
	if _, err := n.Mod(ctx, a.ID(), feed.ModHide, x.ID(), false, 0, "spam"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []feed.Channel{a, b} {
		if err := n.WaitIndexed(ctx); err != nil {
			t.Fatal(err)
		}
		if err := n.Views().MarkRead(c.ID()); err != nil {
			t.Fatal(err)
		}
		es, _ := peerEntries(t, x, c.ID(), feed.Head{}, feed.Payload{Kind: feed.KindText, Text: "hi ann"})
		if _, err := n.Store().Apply(ctx, c.ID(), x.ID(), es); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	if u, _ := n.Views().Unread(a.ID()); u != (views.Unread{}) {
		t.Fatalf("unread in a, where x is hidden: %+v", u)
	}
	if u, _ := n.Views().Unread(b.ID()); u != (views.Unread{Messages: 1, Mentions: 1}) {
		t.Fatalf("unread in b, where nobody hid x: %+v, want 1 and 1", u)
	}
}
