package replicate

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kchat-p2p/kchat/internal/testutil"
)

func TestTwoPeersDisjointConverge(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	a, b := newNode(t, Limits{}, c), newNode(t, Limits{}, c)
	fill(t, a.st, a.id, ch, 3000)
	fill(t, b.st, b.id, ch, 1200)
	a.append(ch, 3, "from a")
	b.append(ch, 2, "from b")

	a.connect(b, ch)
	a.waitSynced(ch, b)
	b.waitSynced(ch, a)
	if !sameHeads(t, ch, a, b) {
		t.Fatal("heads differ after sync")
	}
	hs := heads(t, b.st, ch)
	if hs[a.id.ID()].Len != 3003 || hs[b.id.ID()].Len != 1202 {
		t.Fatalf("b holds %d of a's and %d of its own entries", hs[a.id.ID()].Len, hs[b.id.ID()].Len)
	}
	// The last message of each side reads back on the other.
	e, err := b.st.Get(ch, a.id.ID(), 3002)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := feed.UnmarshalPayload(e.Payload); p.Text != "from a 2" {
		t.Fatalf("b reads %q", p.Text)
	}
	if sa, sb := a.r.Stats(), b.r.Stats(); sa.EntriesSent != 3003 || sb.EntriesSent != 1202 ||
		sa.EntriesStored != 1202 || sb.EntriesStored != 3003 || sa.Violations+sb.Violations != 0 {
		t.Fatalf("stats: a %+v, b %+v", sa, sb)
	}
	infos := a.r.Sessions(ch)
	if len(infos) != 1 || !infos[0].Synced || !infos[0].Outbound || infos[0].Peer != b.h.ID() ||
		infos[0].Want != 0 || infos[0].Owe != 0 || infos[0].Sent != 3003 || infos[0].Stored != 1202 {
		t.Fatalf("a's sessions: %+v", infos)
	}
	// Connect again while live is a no-op.
	b.connect(a, ch)
	if n := len(b.r.Sessions(ch)); n != 1 {
		t.Fatalf("b has %d sessions after a second connect", n)
	}
}

func TestThreeInALineConverge(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	a, b, cc := newNode(t, Limits{}, c), newNode(t, Limits{}, c), newNode(t, Limits{}, c)
	fill(t, a.st, a.id, ch, 2500)
	fill(t, cc.st, cc.id, ch, 700)
	b.append(ch, 5, "from b")

	a.connect(b, ch)
	cc.connect(b, ch)
	eventually(t, 30*time.Second, "a, b and c to converge", func() bool { return sameHeads(t, ch, a, b, cc) }, a, cc)
	if n := len(heads(t, a.st, ch)); n != 3 {
		t.Fatalf("a holds %d feeds, want 3", n)
	}
	// A new message at one end reaches the other end through b's live push.
	cc.append(ch, 1, "late from c")
	want := heads(t, cc.st, ch)[cc.id.ID()]
	eventually(t, 10*time.Second, "a to get c's new message", func() bool { return heads(t, a.st, ch)[cc.id.ID()] == want }, a)
	a.waitSynced(ch, b)
	cc.waitSynced(ch, b)
	b.waitSynced(ch)
	if len(b.r.Sessions(ch)) != 2 || len(a.r.Sessions(ch)) != 1 {
		t.Fatal("a and c met, or b lost a session")
	}
}

func TestLivePush(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	a, b := newNode(t, Limits{}, c), newNode(t, Limits{}, c)
	a.connect(b, ch)
	a.waitSynced(ch, b)

	sub := b.st.Subscribe()
	defer sub.Close()
	if _, err := a.st.Append(context.Background(), a.id, ch, feed.Payload{Kind: feed.KindText, Text: "hello live"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for heads(t, b.st, ch)[a.id.ID()].Len < 1 {
		select {
		case <-sub.C():
		case <-deadline:
			t.Fatal("live message did not arrive")
		}
	}
	e, err := b.st.Get(ch, a.id.ID(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := feed.UnmarshalPayload(e.Payload); p.Text != "hello live" {
		t.Fatalf("b got %q", p.Text)
	}
	// And the other way, on the same stream.
	b.append(ch, 1, "reply")
	eventually(t, 10*time.Second, "a to get b's reply", func() bool { return heads(t, a.st, ch)[b.id.ID()].Len == 1 }, a)
	a.waitSynced(ch, b)
	b.waitSynced(ch, a)
}

func TestWrongKeyGetsNothing(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	a := newNode(t, Limits{}, c)
	a.append(ch, 3, "secret")
	other := newChannel(t, "general")
	b := newNode(t, Limits{}, other)
	b.append(other.ID(), 2, "other")
	lastA, lastB := a.st.Last(), b.st.Last()

	// b does not hold D: it resets the stream without a reply.
	a.h.Peerstore().AddAddrs(b.h.ID(), b.h.Addrs(), time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.r.Connect(ctx, b.h.ID(), ch); err == nil {
		t.Fatal("connect to a peer without the channel succeeded")
	}
	if err := b.r.Connect(ctx, a.h.ID(), other.ID()); err == nil {
		t.Fatal("connect to a peer without the channel succeeded")
	}
	if a.st.Last() != lastA || b.st.Last() != lastB || len(a.r.Sessions(ch)) != 0 {
		t.Fatal("something was exchanged")
	}
	if a.r.Banned(b.h.ID(), ch) || b.r.Banned(a.h.ID(), other.ID()) {
		t.Fatal("a peer that does not hold a channel is not a protocol violation")
	}
}

func TestConnectErrors(t *testing.T) {
	c := newChannel(t, "general")
	a := newNode(t, Limits{}, c)
	b := newNode(t, Limits{}, c)
	ctx := context.Background()
	if err := a.r.Connect(ctx, b.h.ID(), newChannel(t, "x").ID()); !errors.Is(err, feed.ErrUnknownChannel) {
		t.Fatalf("connect on an unjoined channel: %v", err)
	}
	if err := a.r.WaitSynced(ctx, c.ID(), b.h.ID()); !errors.Is(err, ErrNoSession) {
		t.Fatalf("wait synced without a session: %v", err)
	}
	a.r.Close()
	if err := a.r.Connect(ctx, b.h.ID(), c.ID()); !errors.Is(err, ErrClosed) {
		t.Fatalf("connect after close: %v", err)
	}
}

func TestSimultaneousConnect(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	a, b := newNode(t, Limits{}, c), newNode(t, Limits{}, c)
	fill(t, a.st, a.id, ch, 500)
	fill(t, b.st, b.id, ch, 500)
	// The hosts are connected first (as discovery would have them): this is
	// about two sync streams crossing, not two TCP dials crossing.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.h.Connect(ctx, peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs[0] = a.r.Connect(ctx, b.h.ID(), ch) }()
	go func() { defer wg.Done(); errs[1] = b.r.Connect(ctx, a.h.ID(), ch) }()
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	// Right away: whichever stream won, WaitSynced sees a session (or a
	// handshake in progress), never a gap between the two.
	a.waitSynced(ch, b)
	b.waitSynced(ch, a)
	// The session counts what it stored just after the store has it, so
	// the heads can match a moment before the count does.
	eventually(t, 10*time.Second, "one session each", func() bool {
		return len(a.r.Sessions(ch)) == 1 && len(b.r.Sessions(ch)) == 1 && sameHeads(t, ch, a, b) &&
			a.r.Stats().EntriesStored >= 500
	})
	// Nothing was sent twice over the lost stream, at most what the winner
	// had not yet covered.
	if s := a.r.Stats(); s.EntriesStored != 500 {
		t.Fatalf("a stored %d entries, want 500", s.EntriesStored)
	}
}

func TestReconnectResumes(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	a, b := newNode(t, Limits{}, c), newNode(t, Limits{}, c)
	fill(t, a.st, a.id, ch, 1500)
	a.connect(b, ch)
	a.waitSynced(ch, b)
	b.waitSynced(ch, a)
	if s := a.r.Stats(); s.EntriesSent != 1500 {
		t.Fatalf("a sent %d entries, want 1500", s.EntriesSent)
	}

	// Drop the connection; both sessions end, nobody is banned.
	if err := a.h.Network().ClosePeer(b.h.ID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "sessions to end", func() bool {
		return len(a.r.Sessions(ch)) == 0 && len(b.r.Sessions(ch)) == 0
	})
	if a.r.Banned(b.h.ID(), ch) || b.r.Banned(a.h.ID(), ch) {
		t.Fatal("a dropped connection got a peer banned")
	}
	// Both write while apart; then b reconnects.
	a.append(ch, 7, "while apart")
	b.append(ch, 3, "while apart")
	b.connect(a, ch)
	a.waitSynced(ch, b)
	b.waitSynced(ch, a)
	if !sameHeads(t, ch, a, b) {
		t.Fatal("heads differ after reconnect")
	}
	sa, sb := a.r.Stats(), b.r.Stats()
	if sa.EntriesSent != 1507 || sb.EntriesSent != 3 || sb.EntriesReceived != 1507 || sa.EntriesReceived != 3 {
		t.Fatalf("after reconnect a sent %d (want 1500+7), b sent %d (want 3), b received %d, a received %d",
			sa.EntriesSent, sb.EntriesSent, sb.EntriesReceived, sa.EntriesReceived)
	}
}

func TestForkIsNotAViolation(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	a, b := newNode(t, Limits{}, c), newNode(t, Limits{}, c)
	// x signs two different entries at seq 3; a holds one chain, b the other.
	x := newIdentity(t)
	common := makeEntries(t, x, ch, feed.Head{}, 3, "common")
	head := feed.Head{Len: 3, Hash: common[2].Hash()}
	chainA := append(append([]feed.Entry{}, common...), makeEntries(t, x, ch, head, 2, "version a")...)
	chainB := append(append([]feed.Entry{}, common...), makeEntries(t, x, ch, head, 4, "version b")...)
	if _, err := a.st.Apply(context.Background(), ch, x.ID(), chainA); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.Apply(context.Background(), ch, x.ID(), chainB); err != nil {
		t.Fatal(err)
	}
	fill(t, a.st, a.id, ch, 50)
	fill(t, b.st, b.id, ch, 60)

	a.connect(b, ch)
	eventually(t, 10*time.Second, "honest feeds to converge", func() bool {
		ha, hb := heads(t, a.st, ch), heads(t, b.st, ch)
		return ha[b.id.ID()].Len == 60 && hb[a.id.ID()].Len == 50
	}, a, b)
	a.waitSynced(ch, b)
	b.waitSynced(ch, a)
	forks := 0
	for _, n := range []*node{a, b} {
		fs, err := n.st.Forks(ch)
		if err != nil {
			t.Fatal(err)
		}
		forks += len(fs)
	}
	if forks == 0 {
		t.Fatal("no side recorded the fork")
	}
	if a.r.Banned(b.h.ID(), ch) || b.r.Banned(a.h.ID(), ch) || a.r.Stats().Violations+b.r.Stats().Violations != 0 {
		t.Fatal("relaying a forked feed is not the relay's fault")
	}
	if len(a.r.Sessions(ch)) != 1 {
		t.Fatal("the session ended")
	}
}

// ourGoroutines lists the goroutines running code of this package (not
// its tests).
func ourGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, line := range strings.Split(g, "\n") {
			line = strings.TrimSpace(line)
			if strings.Contains(line, "/replicate/") && strings.Contains(line, ".go:") && !strings.Contains(line, "_test.go:") {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

func TestNoGoroutineLeaks(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	a, b, cc := newNode(t, Limits{}, c), newNode(t, Limits{}, c), newNode(t, Limits{}, c)
	fill(t, a.st, a.id, ch, 300)
	a.connect(b, ch)
	cc.connect(b, ch)
	a.append(ch, 1, "live")
	eventually(t, 10*time.Second, "convergence", func() bool { return sameHeads(t, ch, a, b, cc) }, cc)
	// A Connect in flight and a hostile stream in flight must stop too.
	d := newNode(t, Limits{}, c)
	b.h.Peerstore().AddAddrs(d.h.ID(), d.h.Addrs(), time.Hour)
	if err := b.r.Connect(context.Background(), d.h.ID(), ch); err != nil {
		t.Fatal(err)
	}
	if len(ourGoroutines()) == 0 {
		t.Fatal("no replicator goroutines seen while running: the check would prove nothing")
	}
	for _, n := range []*node{a, b, cc, d} {
		if err := n.r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var left []string
	defer func() {
		if t.Failed() {
			t.Logf("%d goroutines left after Close:\n%s", len(left), strings.Join(left, "\n\n"))
		}
	}()
	testutil.Eventually(t, 5*time.Second, "the replicators' goroutines to end after Close", func() bool {
		left = ourGoroutines()
		return len(left) == 0
	})
}
