package replicate

import (
	"context"
	"fmt"
	"github.com/kchat-p2p/kchat/internal/testutil"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/storage"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

// testLogger logs to stderr when KCHAT_TEST_LOG is set (to a slog level
// name, e.g. debug), and nowhere otherwise.
func testLogger() *slog.Logger {
	lvl := os.Getenv("KCHAT_TEST_LOG")
	if lvl == "" {
		return slog.New(slog.DiscardHandler)
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(lvl)); err != nil {
		l = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// newHost is a loopback-only libp2p host (testutil.LoopbackHost).
func newHost(t testing.TB) host.Host { return testutil.LoopbackHost(t) }

func newChannel(t testing.TB, name string) feed.Channel {
	t.Helper()
	k, err := feed.NewChannelKey()
	if err != nil {
		t.Fatal(err)
	}
	return feed.Channel{Key: k, Name: name}
}

func newIdentity(t testing.TB) *feed.Identity {
	t.Helper()
	id, err := feed.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// node is one peer: a host, a Badger feed store in a temp dir that has
// joined some channels, an identity and a replicator.
type node struct {
	t  testing.TB
	h  host.Host
	db *badger.DB
	st *feed.Store
	id *feed.Identity
	r  *Replicator
}

func newNode(t testing.TB, lim Limits, chans ...feed.Channel) *node {
	t.Helper()
	db, err := storage.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := feed.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chans {
		if err := st.Join(c); err != nil {
			t.Fatal(err)
		}
	}
	n := &node{t: t, h: newHost(t), db: db, st: st, id: newIdentity(t)}
	n.r = New(n.h, st, Config{Limits: lim, Logger: testLogger().With("node", n.h.ID().ShortString())})
	t.Cleanup(func() { n.r.Close() })
	return n
}

// connect makes n open a session with o on channel ch.
func (n *node) connect(o *node, ch feed.DiscoveryID) {
	n.t.Helper()
	n.h.Peerstore().AddAddrs(o.h.ID(), o.h.Addrs(), peerstore.PermanentAddrTTL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.r.Connect(ctx, o.h.ID(), ch); err != nil {
		n.t.Fatalf("connect %s -> %s: %v", n.h.ID().ShortString(), o.h.ID().ShortString(), err)
	}
}

// waitSynced waits until n's session with every given node on ch is synced.
func (n *node) waitSynced(ch feed.DiscoveryID, others ...*node) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ps []peer.ID
	for _, o := range others {
		ps = append(ps, o.h.ID())
	}
	if err := n.r.WaitSynced(ctx, ch, ps...); err != nil {
		n.t.Fatalf("wait synced: %v", err)
	}
}

// append writes count text messages to n's own feed, durably, one Append.
func (n *node) append(ch feed.DiscoveryID, count int, prefix string) {
	n.t.Helper()
	ps := make([]feed.Payload, count)
	for i := range ps {
		ps[i] = feed.Payload{Kind: feed.KindText, Text: fmt.Sprintf("%s %d", prefix, i)}
	}
	if _, err := n.st.Append(context.Background(), n.id, ch, ps...); err != nil {
		n.t.Fatal(err)
	}
}

// makeEntries builds count signed entries of id's feed in ch following head,
// without storing them.
func makeEntries(t testing.TB, id *feed.Identity, ch feed.DiscoveryID, head feed.Head, count int, prefix string) []feed.Entry {
	t.Helper()
	out := make([]feed.Entry, 0, count)
	now := time.Now().UnixMilli()
	for i := range count {
		p, err := feed.Payload{Kind: feed.KindText, Text: fmt.Sprintf("%s %d: the quick brown fox jumps over the lazy dog", prefix, head.Len)}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		e, err := feed.NewEntry(id, ch, head, now+int64(i), p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
		head.Len, head.Hash = e.Seq+1, e.Hash()
	}
	return out
}

// fill stores count new entries of id's feed in st quickly: built in memory
// and stored through Apply in large batches.
func fill(t testing.TB, st *feed.Store, id *feed.Identity, ch feed.DiscoveryID, count int) {
	t.Helper()
	head, err := st.Head(ch, id.ID())
	if err != nil {
		t.Fatal(err)
	}
	for count > 0 {
		n := min(count, 10000)
		es := makeEntries(t, id, ch, head, n, "fill")
		if _, err := st.Apply(context.Background(), ch, id.ID(), es); err != nil {
			t.Fatal(err)
		}
		last := es[len(es)-1]
		head.Len, head.Hash = last.Seq+1, last.Hash()
		count -= n
	}
}

// heads returns st's heads of ch as a map.
func heads(t testing.TB, st *feed.Store, ch feed.DiscoveryID) map[feed.AuthorID]feed.Head {
	t.Helper()
	hs, err := st.Heads(ch)
	if err != nil {
		t.Fatal(err)
	}
	m := map[feed.AuthorID]feed.Head{}
	for _, h := range hs {
		m[h.Author] = h
	}
	return m
}

func sameHeads(t testing.TB, ch feed.DiscoveryID, nodes ...*node) bool {
	want := heads(t, nodes[0].st, ch)
	for _, n := range nodes[1:] {
		got := heads(t, n.st, ch)
		if len(got) != len(want) {
			return false
		}
		for a, h := range want {
			if got[a] != h {
				return false
			}
		}
	}
	return true
}

// eventually is testutil.EventuallyWake woken also by the store
// subscriptions of the given nodes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool, nodes ...*node) {
	t.Helper()
	var subs []*feed.Subscription
	for _, n := range nodes {
		s := n.st.Subscribe()
		defer s.Close()
		subs = append(subs, s)
	}
	testutil.EventuallyWake(t, within, anyOf(subs), what, cond)
}

// anyOf returns the channel of the first subscription (or nil): enough to
// wake on store writes in the common one-node case; the ticker covers more.
func anyOf(subs []*feed.Subscription) <-chan struct{} {
	if len(subs) == 0 {
		return nil
	}
	return subs[0].C()
}
