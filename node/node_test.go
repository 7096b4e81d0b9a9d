package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/node"

	"go.uber.org/goleak"

	"github.com/kchat-p2p/kchat/internal/testutil"
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
	// b's view holds a's history under a's nick (messages written in the
	// same millisecond sort by author, so look, don't index).
	last, err := b.Views().Last(ch.ID(), 2)
	found := false
	for _, m := range last {
		found = found || m.Text == "a99" && m.Display == "alice"
	}
	if err != nil || len(last) != 2 || !found {
		t.Fatalf("b's view: %+v %v", last, err)
	}
	if n, _ := b.Views().Count(ch.ID()); n != 102 {
		t.Fatalf("b's view holds %d messages, want 102", n)
	}
	// The session stays open: a's next message is pushed to b live.
	if _, err := a.Send(ctx, ch.ID(), feed.Payload{Kind: feed.KindText, Text: "live"}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "live message at b", func() bool {
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
	ignore := goleak.IgnoreCurrent()
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
	// Some goroutines end just after Close returns: they get 15 s.
	testutil.NoLeakedGoroutines(t, 15*time.Second, ignore)
}

func TestManualPeerRedialledAfterRestart(t *testing.T) {
	ctx := context.Background()
	dirA := t.TempDir()
	openA := func(listen string) *node.Node {
		n, err := node.Open(ctx, node.Options{DataDir: dirA, Net: &node.NetOptions{
			Listen: []string{listen}, NoDHT: true, NoMDNS: true, NoNAT: true}})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	a := openA("/ip4/127.0.0.1/tcp/0")
	addr := a.Addrs()[0]
	ch, err := a.Create(ctx, "general")
	if err != nil {
		t.Fatal(err)
	}
	b, err := node.Open(ctx, node.Options{DataDir: t.TempDir(), Net: &node.NetOptions{
		Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Peers: []string{addr}, NoDHT: true, NoMDNS: true, NoNAT: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Join(ctx, ch.Key, ""); err != nil {
		t.Fatal(err)
	}
	syncing := func() bool {
		for _, p := range b.Peers(ch.ID()) {
			if p.Syncing {
				return true
			}
		}
		return false
	}
	testutil.Eventually(t, 20*time.Second, "b's session with its manual peer", syncing)
	// a restarts on the same address; b must find it again by itself.
	a.Close()
	testutil.Eventually(t, 20*time.Second, "the session to end", func() bool { return !syncing() })
	listen := addr[:strings.Index(addr, "/p2p/")]
	a = openA(listen)
	defer a.Close()
	if _, err := a.Send(ctx, ch.ID(), feed.Payload{Kind: feed.KindText, Text: "back again"}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "the message after a's restart at b", func() bool {
		m, err := b.Views().Last(ch.ID(), 1)
		return err == nil && len(m) == 1 && m[0].Text == "back again"
	})
}

// TestReadOnlyNode: a node opened read-only (a full disk) shows the history
// and refuses every write with ErrReadOnly.
func TestReadOnlyNode(t *testing.T) {
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
	if _, err := n.Send(ctx, c.ID(), feed.Payload{Kind: feed.KindText, Text: "kept"}); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	n.Close()

	if _, err := node.Open(ctx, node.Options{DataDir: dir, ReadOnly: true, Net: &node.NetOptions{NoDHT: true, NoMDNS: true, NoNAT: true}}); !errors.Is(err, node.ErrReadOnly) {
		t.Fatalf("read-only node with a network: %v", err)
	}
	ro, err := node.Open(ctx, node.Options{DataDir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if !ro.ReadOnly() {
		t.Fatal("ReadOnly() is false")
	}
	if err := ro.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	msgs, err := ro.Views().Last(c.ID(), 10)
	if err != nil || len(msgs) != 1 || msgs[0].Text != "kept" {
		t.Fatalf("read-only history: %v (%v)", msgs, err)
	}
	if _, err := ro.Send(ctx, c.ID(), feed.Payload{Kind: feed.KindText, Text: "lost?"}); !errors.Is(err, node.ErrReadOnly) {
		t.Fatalf("Send on a read-only node: %v", err)
	}
	if _, err := ro.Create(ctx, "other"); !errors.Is(err, node.ErrReadOnly) {
		t.Fatalf("Create on a read-only node: %v", err)
	}
	if err := ro.Part(ctx, c.ID()); !errors.Is(err, node.ErrReadOnly) {
		t.Fatalf("Part on a read-only node: %v", err)
	}
	if err := ro.SetNick(ctx, "ann"); !errors.Is(err, node.ErrReadOnly) {
		t.Fatalf("SetNick on a read-only node: %v", err)
	}
}

// TestTrimAfterBurst: after a burst of indexing and a quiet spell the node
// returns memory to the system, once; chat-speed traffic does not trigger it.
func TestTrimAfterBurst(t *testing.T) {
	ctx := context.Background()
	var frees atomic.Int32
	var checkedAt atomic.Uint64 // views position at the latest quiet-spell check
	onCheck := func(indexed uint64, freed bool) { checkedAt.Store(indexed) }
	n, err := node.Open(ctx, node.WithTrimmer(node.Options{DataDir: t.TempDir()}, 50*time.Millisecond, func() { frees.Add(1) }, onCheck))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c, err := n.Create(ctx, "general")
	if err != nil {
		t.Fatal(err)
	}
	ps := make([]feed.Payload, 10_000)
	for i := range ps {
		ps[i] = feed.Payload{Kind: feed.KindText, Text: fmt.Sprintf("m%d", i)}
	}
	if _, err := n.Send(ctx, c.ID(), ps...); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "memory returned after the burst", func() bool { return frees.Load() == 1 })

	if _, err := n.Send(ctx, c.ID(), ps[:10]...); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	// Wait for the quiet-spell check that follows the chat-speed writes: it
	// must not return memory.
	indexed := n.Views().Indexed()
	testutil.Eventually(t, 20*time.Second, "a quiet-spell check after the chat-speed writes", func() bool { return checkedAt.Load() >= indexed })
	if got := frees.Load(); got != 1 {
		t.Fatalf("memory returned %d times; chat-speed writes must not trigger it", got)
	}
}
