package node_test

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/node"
)

// loopback networking only: no DHT, no mDNS, no port mapping.
func openNet(t *testing.T) *node.Node {
	t.Helper()
	n, err := node.Open(context.Background(), node.Options{DataDir: t.TempDir(), Net: &node.NetOptions{
		Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoDHT: true, NoMDNS: true, NoNAT: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTwoNodesSyncAndLivePush(t *testing.T) {
	ctx := context.Background()
	a, b := openNet(t), openNet(t)
	if err := a.SetNick(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	ch, err := a.Create(ctx, "general")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Join(ctx, ch.Key, ""); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if _, err := a.Send(ctx, ch.ID(), feed.Payload{Kind: feed.KindText, Text: fmt.Sprintf("a%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Send(ctx, ch.ID(), feed.Payload{Kind: feed.KindText, Text: "from b"}); err != nil {
		t.Fatal(err)
	}
	sum, err := b.Sync(ctx, ch.ID(), a.Addrs()[:1])
	if err != nil {
		t.Fatal(err)
	}
	// a: nick + 100 messages; b: its message.
	if sum.Received != 101 || sum.Sent != 1 {
		t.Fatalf("summary %+v", sum)
	}
	last, err := b.Views().Last(ch.ID(), 2)
	if err != nil || len(last) != 2 || last[0].Text != "a99" || last[0].Display != "alice" {
		t.Fatalf("b's view: %+v %v", last, err)
	}
	// The session stays open: a's next message is pushed to b live.
	if _, err := a.Send(ctx, ch.ID(), feed.Payload{Kind: feed.KindText, Text: "live"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "live message at b", func() bool {
		m, err := b.Views().Last(ch.ID(), 1)
		return err == nil && len(m) == 1 && m[0].Text == "live"
	})
	ps := b.Peers(ch.ID())
	if len(ps) != 1 || ps[0].Source != "manual" || !ps[0].Syncing {
		t.Fatalf("b's peers: %+v", ps)
	}
}

func TestOfflineNodeHasNoNetwork(t *testing.T) {
	n, err := node.Open(context.Background(), node.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.Addrs() != nil || n.Peers(feed.DiscoveryID{}) != nil {
		t.Fatal("offline node reports network state")
	}
	if _, err := n.Sync(context.Background(), feed.DiscoveryID{}, nil); err == nil {
		t.Fatal("offline sync succeeded")
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx := context.Background()
	open := func() *node.Node {
		n, err := node.Open(ctx, node.Options{DataDir: t.TempDir(), Net: &node.NetOptions{
			Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoDHT: true, NoMDNS: true, NoNAT: true}})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	a, b := open(), open()
	ch, err := a.Create(ctx, "general")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Join(ctx, ch.Key, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sync(ctx, ch.ID(), a.Addrs()[:1]); err != nil {
		t.Fatal(err)
	}
	srv, err := a.ServeControl(ctx, func(context.Context, []string, io.Reader, io.Writer, io.Writer) int { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	a.Close()
	b.Close()
	// Some goroutines end just after Close returns: poll with a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
