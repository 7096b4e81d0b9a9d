package discovery

import (
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// PeerInfo is what the Book knows about one peer in one topic (channel).
type PeerInfo struct {
	ID        peer.ID
	Source    Source                // how it was found (first report of the current connection)
	Addrs     []multiaddr.Multiaddr // remote addresses of the connections at the time of the report
	FirstSeen time.Time             // first report in this topic since Join
	LastSeen  time.Time             // last report, connection event, or Book.Seen
	Connected bool                  // at least one connection open (and not dropped from the topic)
	Limited   bool                  // connected only through a relay (limited connection)
	Dropped   string                // why the peer was last dropped; "" while connected
}

// Book is the peer bookkeeping of a Node: per topic, the peers found or seen, how,
// when, and why they were dropped. All methods are safe for concurrent use.
type Book struct {
	mu     sync.Mutex
	topics map[[32]byte]map[peer.ID]*bookEntry
	holds  map[topicPeer]time.Time

	// Hooks set by the Node; nil in a standalone Book.
	connectedness func(peer.ID) network.Connectedness
	onDrop        func(topic [32]byte, p peer.ID)
}

type bookEntry struct {
	PeerInfo
	explicitDrop bool // dropped by MarkDropped: a new connection alone does not revive it
}

type topicPeer struct {
	topic [32]byte
	peer  peer.ID
}

func newBook() *Book {
	return &Book{
		topics: make(map[[32]byte]map[peer.ID]*bookEntry),
		holds:  make(map[topicPeer]time.Time),
	}
}

// Peers returns a snapshot of the peers of topic, connected ones first, then by
// first-seen time.
func (b *Book) Peers(topic [32]byte) []PeerInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.topics[topic]
	out := make([]PeerInfo, 0, len(m))
	for _, e := range m {
		pi := e.PeerInfo
		pi.Addrs = slices.Clone(pi.Addrs)
		out = append(out, pi)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Connected != out[j].Connected {
			return out[i].Connected
		}
		if !out[i].FirstSeen.Equal(out[j].FirstSeen) {
			return out[i].FirstSeen.Before(out[j].FirstSeen)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Connected returns the number of connected peers of topic.
func (b *Book) Connected(topic [32]byte) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, e := range b.topics[topic] {
		if e.Connected {
			n++
		}
	}
	return n
}

// Seen records traffic from p in topic (replication calls it when a peer proves the
// channel key or sends data). A peer the Book did not know yet (one that dialled us)
// is added with Source "inbound".
func (b *Book) Seen(topic [32]byte, p peer.ID) {
	now := timeNow()
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entry(topic, p, now, SourceInbound)
	e.LastSeen = now
	if !e.explicitDrop {
		b.refresh(e)
	}
}

// MarkDropped records that p was dropped from topic and why (e.g. "invalid batch",
// "wrong channel key"). The peer stays listed, marked not connected, loses the
// connection manager protection for this topic, and is reported again by Found only
// after a new discovery of it (see also HoldOff). MarkDropped does not close the
// connection: the caller decides that (host.Network().ClosePeer).
func (b *Book) MarkDropped(topic [32]byte, p peer.ID, reason string) {
	now := timeNow()
	b.mu.Lock()
	e := b.entry(topic, p, now, SourceInbound)
	e.Connected = false
	e.Limited = false
	e.Dropped = reason
	e.explicitDrop = true
	hook := b.onDrop
	b.mu.Unlock()
	if hook != nil {
		hook(topic, p)
	}
}

// HoldOff stops discovery from dialling or reporting p for topic during d (a peer
// that sent invalid data is not redialled for a while). d <= 0 lifts the hold.
func (b *Book) HoldOff(topic [32]byte, p peer.ID, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := topicPeer{topic, p}
	if d <= 0 {
		delete(b.holds, k)
		return
	}
	b.holds[k] = timeNow().Add(d)
}

// heldOff reports whether p is held off for topic.
func (b *Book) heldOff(topic [32]byte, p peer.ID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := topicPeer{topic, p}
	until, ok := b.holds[k]
	if !ok {
		return false
	}
	if timeNow().After(until) {
		delete(b.holds, k)
		return false
	}
	return true
}

// entry returns (creating) the entry of p in topic. Caller holds b.mu.
func (b *Book) entry(topic [32]byte, p peer.ID, now time.Time, src Source) *bookEntry {
	m := b.topics[topic]
	if m == nil {
		m = make(map[peer.ID]*bookEntry)
		b.topics[topic] = m
	}
	e := m[p]
	if e == nil {
		e = &bookEntry{PeerInfo: PeerInfo{ID: p, Source: src, FirstSeen: now, LastSeen: now}}
		m[p] = e
	}
	return e
}

// refresh sets Connected/Limited of e from the host's current connectedness.
// Caller holds b.mu.
func (b *Book) refresh(e *bookEntry) {
	if b.connectedness == nil {
		return
	}
	switch b.connectedness(e.ID) {
	case network.Connected:
		e.Connected, e.Limited, e.Dropped = true, false, ""
	case network.Limited:
		e.Connected, e.Limited, e.Dropped = true, true, ""
	default:
		if e.Connected {
			e.Dropped = "connection closed"
		}
		e.Connected, e.Limited = false, false
	}
}

// reported records a Found report of p in topic.
func (b *Book) reported(topic [32]byte, p peer.ID, src Source, addrs []multiaddr.Multiaddr) {
	now := timeNow()
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entry(topic, p, now, src)
	e.Source = src
	e.Addrs = addrs
	e.LastSeen = now
	e.explicitDrop = false
	b.refresh(e)
}

// connChanged is called (from the network notifiee) when a connection of p opened
// or closed. The Node holds its own lock around it so that connectedness is read
// in the order of events.
func (b *Book) connChanged(p peer.ID) {
	now := timeNow()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.topics {
		e := m[p]
		if e == nil || e.explicitDrop {
			continue
		}
		was := e.Connected
		b.refresh(e)
		if e.Connected || was {
			e.LastSeen = now
		}
	}
}

// forget drops the peers of topic (on Leave). Hold-offs stay until they expire.
func (b *Book) forget(topic [32]byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.topics, topic)
}
