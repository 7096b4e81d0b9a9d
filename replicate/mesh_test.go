package replicate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/testutil"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

// connectMesh makes n ask o for a mesh session on ch.
func (n *node) connectMesh(o *node, ch [32]byte) error {
	n.t.Helper()
	n.h.Peerstore().AddAddrs(o.h.ID(), o.h.Addrs(), peerstore.PermanentAddrTTL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return n.r.ConnectMesh(ctx, o.h.ID(), ch)
}

// waitInboundMesh waits until n holds want inbound mesh sessions of ch.
// ConnectMesh returns once the initiator has checked the responder's
// proof; the responder registers the session when it has checked the
// initiator's, a moment later.
func (n *node) waitInboundMesh(ch [32]byte, want int) {
	n.t.Helper()
	testutil.Eventually(n.t, 10*time.Second, "inbound mesh sessions", func() bool {
		got := 0
		for _, si := range n.r.Sessions(ch) {
			if !si.Outbound && si.Mesh {
				got++
			}
		}
		return got == want
	})
}

// TestBusyDeclinesExtraMeshSessions: a node with MeshIn 1 takes one inbound
// mesh session per channel; a second mesh session from a peer that has
// other sessions is declined with a busy frame (no violation, no ban), while
// a session the user asked for and a mesh session from a peer with no other
// session are always accepted.
func TestBusyDeclinesExtraMeshSessions(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	hub := newNode(t, Limits{}, c)
	hub.r.Close()
	hub.r = New(hub.h, hub.st, Config{Logger: testLogger(), MeshIn: 1})
	t.Cleanup(func() { hub.r.Close() })
	hub.append(ch, 3, "hub")
	a, b, other := newNode(t, Limits{}, c), newNode(t, Limits{}, c), newNode(t, Limits{}, c)
	a.connect(other, ch)
	b.connect(other, ch)

	if err := a.connectMesh(hub, ch); err != nil {
		t.Fatalf("first mesh session: %v", err)
	}
	hub.waitInboundMesh(ch, 1)
	err := b.connectMesh(hub, ch)
	var busy *BusyError
	if !errors.As(err, &busy) || !errors.Is(err, ErrBusy) || busy.Retry <= 0 {
		t.Fatalf("second mesh session from a peer with other sessions: got %v, want a BusyError", err)
	}
	if !b.r.Busy(hub.h.ID(), ch) {
		t.Fatal("b does not hold off the busy hub")
	}
	if b.r.Banned(hub.h.ID(), ch) || hub.r.Banned(b.h.ID(), ch) ||
		b.r.Stats().Violations != 0 || hub.r.Stats().Violations != 0 {
		t.Fatal("a declined mesh session counted as a violation")
	}
	for _, si := range b.r.Sessions(ch) {
		if si.Peer == hub.h.ID() {
			t.Fatal("b holds a session with the hub after busy")
		}
	}

	// A peer with no other session of the channel is never left alone.
	lone := newNode(t, Limits{}, c)
	if err := lone.connectMesh(hub, ch); err != nil {
		t.Fatalf("mesh session of a peer with no other session: %v", err)
	}
	lone.waitSynced(ch, hub)
	// A session the user asked for is always accepted.
	b.connect(hub, ch)
	b.waitSynced(ch, hub)
	if h, _ := b.st.Head(ch, hub.id.ID()); h.Len != 3 {
		t.Fatalf("b holds %d of the hub's 3 entries", h.Len)
	}
}

// overTheBound: a hub that takes one inbound mesh session (MeshIn 1) and
// has two, both first sessions (never declined): a's, the older, and b's.
func overTheBound(t *testing.T) (c feed.Channel, hub, a, b *node) {
	t.Helper()
	c = newChannel(t, "general")
	ch := c.ID()
	hub = newNode(t, Limits{}, c)
	hub.r.Close()
	hub.r = New(hub.h, hub.st, Config{Logger: testLogger(), MeshIn: 1})
	t.Cleanup(func() { hub.r.Close() })
	a, b = newNode(t, Limits{}, c), newNode(t, Limits{}, c)
	if err := a.connectMesh(hub, ch); err != nil {
		t.Fatal(err)
	}
	hub.waitInboundMesh(ch, 1) // a's is the older session
	if err := b.connectMesh(hub, ch); err != nil {
		t.Fatalf("a first mesh session was declined: %v", err)
	}
	hub.waitInboundMesh(ch, 2)
	return c, hub, a, b
}

// TestShedFirstSessionsOverTheBound: first mesh sessions (mesh = 1) are
// never declined, so a node can end up over its bound; ShedMesh ends the
// excess (the oldest first) with a busy frame: the initiator holds the
// peer off, with no violation, and the newer session stays.
func TestShedFirstSessionsOverTheBound(t *testing.T) {
	c, hub, a, b := overTheBound(t)
	ch := c.ID()
	if n := hub.r.ShedMesh(ch, time.Hour); n != 0 {
		t.Fatalf("shed %d sessions younger than the minimum age", n)
	}
	if n := hub.r.ShedMesh(ch, 0); n != 1 {
		t.Fatalf("shed %d sessions, want the 1 over the bound", n)
	}
	testutil.Eventually(t, 10*time.Second, "a's session with the hub to end with busy", func() bool {
		return a.r.Busy(hub.h.ID(), ch) && len(a.r.Sessions(ch)) == 0
	})
	if a.r.Stats().Violations != 0 || hub.r.Stats().Violations != 0 || a.r.Banned(hub.h.ID(), ch) {
		t.Fatal("shedding counted as a violation")
	}
	if ss := b.r.Sessions(ch); len(ss) != 1 || b.r.Busy(hub.h.ID(), ch) {
		t.Fatalf("the newer session was shed too: %+v", ss)
	}
	if n := hub.r.ShedMesh(ch, 0); n != 0 {
		t.Fatalf("shed %d more at the bound", n)
	}
	// b leaves; a had no other peer: it comes back at once as a first
	// session, which is accepted, then c does. Over the bound again, the
	// hub sheds c, not a, which it shed a moment ago, although a is older.
	b.r.Disconnect(hub.h.ID(), ch, errors.New("leaving"))
	testutil.Eventually(t, 10*time.Second, "the hub to see b leave", func() bool {
		return len(hub.r.Sessions(ch)) == 0
	})
	if err := a.connectMesh(hub, ch); err != nil {
		t.Fatalf("a lone peer asking again: %v", err)
	}
	hub.waitInboundMesh(ch, 1)
	c2 := newNode(t, Limits{}, c)
	if err := c2.connectMesh(hub, ch); err != nil {
		t.Fatal(err)
	}
	hub.waitInboundMesh(ch, 2)
	if n := hub.r.ShedMesh(ch, 0); n != 1 {
		t.Fatalf("shed %d, want one", n)
	}
	testutil.Eventually(t, 10*time.Second, "the newer peer's session to be shed", func() bool {
		return c2.r.Busy(hub.h.ID(), ch) && len(c2.r.Sessions(ch)) == 0
	})
	if len(a.r.Sessions(ch)) != 1 {
		t.Fatal("a was shed twice in a row")
	}
}

// TestShedDoesNotWaitForABlockedWriter: a session whose writer is stuck in
// a write (a peer that stopped reading holds it until IdleTimeout) must
// not stall ShedMesh, which the mesh loop calls for every channel: the
// busy frame goes out when the writer is free, and the session ends then.
func TestShedDoesNotWaitForABlockedWriter(t *testing.T) {
	c, hub, a, b := overTheBound(t)
	ch := c.ID()
	hub.r.mu.Lock()
	sa := hub.r.sessions[sessKey{a.h.ID(), ch}]
	hub.r.mu.Unlock()
	if sa == nil {
		t.Fatal("no hub session with a")
	}
	sa.wmu.Lock() // a writer in the middle of a write that does not end
	done := make(chan int, 1)
	go func() { done <- hub.r.ShedMesh(ch, 0) }()
	select {
	case n := <-done:
		if n != 1 {
			sa.wmu.Unlock()
			t.Fatalf("shed %d sessions, want the 1 over the bound", n)
		}
	case <-time.After(30 * time.Second):
		sa.wmu.Unlock()
		t.Fatal("ShedMesh waited for a session's blocked writer")
	}
	if n := hub.r.ShedMesh(ch, 0); n != 0 {
		sa.wmu.Unlock()
		t.Fatalf("shed %d more while the first shed is pending", n)
	}
	sa.wmu.Unlock() // the write ends: now the busy frame goes out
	testutil.Eventually(t, 10*time.Second, "a's session with the hub to end with busy", func() bool {
		return a.r.Busy(hub.h.ID(), ch) && len(a.r.Sessions(ch)) == 0
	})
	if ss := b.r.Sessions(ch); len(ss) != 1 {
		t.Fatalf("b's session was shed too: %+v", ss)
	}
}
