package node_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/testutil"
	"github.com/kchat-p2p/kchat/node"
	"github.com/kchat-p2p/kchat/views"
)

func openRedial(t *testing.T, dir string) *node.Node { return openLoop(t, dir, true) }

func openLoop(t *testing.T, dir string, redial bool) *node.Node {
	t.Helper()
	n, err := node.Open(context.Background(), node.Options{DataDir: dir, Net: &node.NetOptions{
		Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoDHT: true, NoMDNS: true, NoNAT: true, Redial: redial}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRestartOnNewPortReconnects: two nodes that synced remember each
// other; one restarts on another port, with no flag and no discovery, and
// both directions and every shared channel resume within 20 s.
func TestRestartOnNewPortReconnects(t *testing.T) {
	ctx := context.Background()
	dirA, dirB := t.TempDir(), t.TempDir()
	a := openRedial(t, dirA)
	defer func() { a.Close() }()
	general, err := a.Create(ctx, "general")
	if err != nil {
		t.Fatal(err)
	}
	random, err := a.Create(ctx, "random")
	if err != nil {
		t.Fatal(err)
	}
	b := openRedial(t, dirB)
	for _, c := range []feed.Channel{general, random} {
		if _, err := b.Join(ctx, c.Key, c.Name); err != nil {
			t.Fatal(err)
		}
	}
	// One manual connect brings both channels in step at once.
	res, err := b.Connect(ctx, a.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Channels, []string{"general", "random"}) {
		t.Fatalf("connect: %+v", res)
	}
	oldAddr := b.Addrs()[0]
	b.Close()
	if _, err := os.Stat(filepath.Join(dirB, "peers.json")); err != nil {
		t.Fatalf("peers not remembered: %v", err)
	}

	// b comes back on a new port (tcp/0 again).
	b = openRedial(t, dirB)
	defer b.Close()
	if b.Addrs()[0] == oldAddr {
		t.Skip("the same port came back; nothing to show")
	}
	for _, c := range []feed.Channel{general, random} {
		if _, err := a.Send(ctx, c.ID(), feed.Payload{Kind: feed.KindText, Text: "a in " + c.Name}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Send(ctx, c.ID(), feed.Payload{Kind: feed.KindText, Text: "b in " + c.Name}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []feed.Channel{general, random} {
		testutil.Eventually(t, 20*time.Second, "b to get a's message in "+c.Name, func() bool {
			ms, err := b.Views().Last(c.ID(), 5)
			return err == nil && slices.ContainsFunc(ms, func(m views.Message) bool { return m.Text == "a in "+c.Name })
		})
		testutil.Eventually(t, 20*time.Second, "a to get b's message in "+c.Name, func() bool {
			ms, err := a.Views().Last(c.ID(), 5)
			return err == nil && slices.ContainsFunc(ms, func(m views.Message) bool { return m.Text == "b in "+c.Name })
		})
	}
}

// TestSyncOneChannelResumesAll: after a restart (no redial), a sync of one
// channel with the peer brings every channel shared with it back at once
// (sessions spread over the connection), not when discovery finds it.
func TestSyncOneChannelResumesAll(t *testing.T) {
	ctx := context.Background()
	dirB := t.TempDir()
	a := openLoop(t, t.TempDir(), false)
	defer a.Close()
	general, err := a.Create(ctx, "general")
	if err != nil {
		t.Fatal(err)
	}
	random, err := a.Create(ctx, "random")
	if err != nil {
		t.Fatal(err)
	}
	b := openLoop(t, dirB, false)
	for _, c := range []feed.Channel{general, random} {
		if _, err := b.Join(ctx, c.Key, c.Name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Connect(ctx, a.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = openLoop(t, dirB, false)
	defer b.Close()
	if _, err := b.Send(ctx, random.ID(), feed.Payload{Kind: feed.KindText, Text: "b in random"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx, general.ID(), b.Addrs()[:1]); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "random to resume with the sync of general", func() bool {
		ms, err := a.Views().Last(random.ID(), 5)
		return err == nil && slices.ContainsFunc(ms, func(m views.Message) bool { return m.Text == "b in random" })
	})
}

// TestSyncWithoutPeers: a sync with no address and no discovery uses the
// remembered peers, and with none says so at once instead of waiting for
// its timeout.
func TestSyncWithoutPeers(t *testing.T) {
	ctx := context.Background()
	a := openLoop(t, t.TempDir(), false)
	defer a.Close()
	general, err := a.Create(ctx, "general")
	if err != nil {
		t.Fatal(err)
	}
	dirB := t.TempDir()
	b := openLoop(t, dirB, false)
	if _, err := b.Join(ctx, general.Key, "general"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := b.Sync(ctx, general.ID(), nil); !errors.Is(err, node.ErrNoWayToPeers) || time.Since(start) > 5*time.Second {
		t.Fatalf("sync with no way to peers: %v after %v", err, time.Since(start))
	}
	if _, err := b.Sync(ctx, general.ID(), a.Addrs()[:1]); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := a.Send(ctx, general.ID(), feed.Payload{Kind: feed.KindText, Text: "while b was away"}); err != nil {
		t.Fatal(err)
	}
	b = openLoop(t, dirB, false)
	defer b.Close()
	sum, err := b.Sync(ctx, general.ID(), nil) // a is remembered
	if err != nil || sum.Received == 0 {
		t.Fatalf("sync with the remembered peer: %+v %v", sum, err)
	}
}

// TestConnectOnlySharedChannels: Connect syncs the channels both hold and
// leaves no trace of the peer in a channel it does not hold.
func TestConnectOnlySharedChannels(t *testing.T) {
	ctx := context.Background()
	a := openLoop(t, t.TempDir(), false)
	defer a.Close()
	general, err := a.Create(ctx, "general")
	if err != nil {
		t.Fatal(err)
	}
	b := openLoop(t, t.TempDir(), false)
	defer b.Close()
	if _, err := b.Join(ctx, general.Key, "general"); err != nil {
		t.Fatal(err)
	}
	mine, err := b.Create(ctx, "mine")
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Connect(ctx, a.Addrs()[0])
	if err != nil || !slices.Equal(res.Channels, []string{"general"}) {
		t.Fatalf("connect: %+v %v", res, err)
	}
	if ps := b.Peers(mine.ID()); len(ps) != 0 {
		t.Fatalf("peers of a channel the peer does not hold: %+v", ps)
	}
	if _, err := b.Connect(ctx, "/ip4/127.0.0.1/tcp/1"); err == nil {
		t.Fatal("an address without /p2p/ accepted")
	}
}
