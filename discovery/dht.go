package discovery

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
)

// TopicNamespace is the DHT rendezvous namespace of a topic: "kchat/" + hex(topic).
// It is hashed exactly like go-libp2p's routing discovery (SHA2-256 multihash,
// CIDv1 raw), so the provider key is interoperable with
// p2p/discovery/routing.RoutingDiscovery on the same namespace.
func TopicNamespace(topic [32]byte) string {
	return "kchat/" + hex.EncodeToString(topic[:])
}

func topicCID(topic [32]byte) cid.Cid {
	h, err := mh.Sum([]byte(TopicNamespace(topic)), mh.SHA2_256, -1)
	if err != nil {
		panic(err) // SHA2-256 of a short byte string cannot fail
	}
	return cid.NewCidV1(cid.Raw, h)
}

func shortTopic(topic [32]byte) string { return hex.EncodeToString(topic[:8]) }

// advertiseLoop provides the topic's key on the DHT once the routing table has
// peers, retries with backoff on failure, and re-advertises at 7/8 of advertiseTTL.
func (n *Node) advertiseLoop(ts *topicState, d *dht.IpfsDHT) {
	ctx := ts.ctx
	c := topicCID(ts.topic)
	log := n.log.With("topic", shortTopic(ts.topic))
	if n.cfg.Seed {
		// A DHT server answers provider queries from its own store: record itself
		// at once, so even a lone first seed (empty routing table) is findable.
		if err := d.Provide(ctx, c, false); err != nil && ctx.Err() == nil {
			log.Warn("local provide failed", "err", err)
		}
	}
	// Our addresses go into the provider record: when they change (a relay
	// reservation, a port mapping, a newly confirmed public address) advertise
	// again, at most every readvertiseGap.
	var addrEvents <-chan any
	if sub, err := n.host.EventBus().Subscribe(new(event.EvtLocalAddressesUpdated)); err == nil {
		defer sub.Close()
		addrEvents = sub.Out()
	}
	wait := advertiseBackoff.min
	for {
		if err := n.waitRoutingTable(ctx, d); err != nil {
			return
		}
		advertisedAddrs := addrSetKey(n.host.Addrs())
		start := timeNow()
		pctx, cancel := context.WithTimeout(ctx, provideTimeout)
		err := d.Provide(pctx, c, true)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Debug("DHT advertise failed; retrying", "err", err, "retry", wait)
			if !sleepCtx(ctx, jitter(wait)) {
				return
			}
			wait = advertiseBackoff.next(wait)
			continue
		}
		wait = advertiseBackoff.min
		log.Debug("advertised on DHT", "took", timeNow().Sub(start))
		if h := n.hooks; h != nil && h.advertised != nil {
			h.advertised(ts.topic)
		}
		if !n.waitReadvertise(ctx, start, advertisedAddrs, addrEvents) {
			return
		}
	}
}

// waitReadvertise waits until the provider record should be renewed: 7/8 of
// advertiseTTL after the last advertisement, or soon after our addresses changed.
// It returns false when ctx is done.
func (n *Node) waitReadvertise(ctx context.Context, last time.Time, advertised string, addrEvents <-chan any) bool {
	ttl := time.NewTimer(advertiseTTL * 7 / 8)
	defer ttl.Stop()
	var soon <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return false
		case <-ttl.C:
			return true
		case <-soon:
			return true
		case _, ok := <-addrEvents:
			if !ok {
				addrEvents = nil
				continue
			}
			if soon == nil && addrSetKey(n.host.Addrs()) != advertised {
				t := time.NewTimer(max(time.Until(last.Add(readvertiseGap)), 0))
				defer t.Stop()
				soon = t.C
			}
		}
	}
}

// addrSetKey is an order-independent key of a set of addresses.
func addrSetKey(addrs []multiaddr.Multiaddr) string {
	ss := make([]string, len(addrs))
	for i, a := range addrs {
		ss[i] = a.String()
	}
	slices.Sort(ss)
	return strings.Join(ss, " ")
}

// findLoop looks for the topic's providers, dials new ones, and repeats: quickly
// while it keeps finding new peers, backing off to findMaxInterval otherwise.
func (n *Node) findLoop(ts *topicState, d *dht.IpfsDHT) {
	ctx := ts.ctx
	c := topicCID(ts.topic)
	interval := findMinInterval
	for {
		if err := n.waitRoutingTable(ctx, d); err != nil {
			return
		}
		fctx, cancel := context.WithTimeout(ctx, findTimeout)
		start := timeNow()
		fresh := 0
		var providers []peer.ID
		for ai := range d.FindProvidersAsync(fctx, c, findLimit) {
			if ai.ID != n.self {
				providers = append(providers, ai.ID)
			}
			if !n.shouldDial(ts.topic, ai) {
				continue
			}
			fresh++
			ai := ai
			n.spawn(ts, func() { n.handleFound(ctx, ts.topic, ai, SourceDHT) })
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		n.log.Debug("DHT find round", "topic", shortTopic(ts.topic), "providers", len(providers),
			"new", fresh, "took", timeNow().Sub(start), "routing_table", d.RoutingTable().Size())
		if h := n.hooks; h != nil && h.findRound != nil {
			h.findRound(ts.topic, providers)
		}
		if fresh > 0 {
			interval = findMinInterval
		}
		if !sleepCtx(ctx, jitter(interval)) {
			return
		}
		switch {
		case fresh == 0 && len(providers) >= enoughProviders:
			// Nothing new in a channel with peers enough: every round
			// costs each provider-holding node a reply listing them all.
			interval = findMaxInterval
		case fresh == 0:
			interval = min(2*interval, findMaxInterval)
		}
	}
}

// waitRoutingTable returns once the DHT routing table has a peer. Advertising or
// looking up with an empty table fails, so the loops wait here: woken by identify /
// protocol events (a DHT server identified is what fills the table), with a short
// poll because the table is filled asynchronously after identify. While the table
// stays empty the bootstrap peers are redialled with backoff (kad-dht itself only
// retries every 2 minutes).
func (n *Node) waitRoutingTable(ctx context.Context, d *dht.IpfsDHT) error {
	if d.RoutingTable().Size() > 0 {
		return nil
	}
	var events <-chan any
	sub, err := n.host.EventBus().Subscribe([]any{
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerProtocolsUpdated),
	})
	if err == nil {
		defer sub.Close()
		events = sub.Out()
	}
	poll := 20 * time.Millisecond
	t := time.NewTimer(poll)
	defer t.Stop()
	for {
		if d.RoutingTable().Size() > 0 {
			n.mu.Lock()
			n.redialWait = redialBackoff.min
			n.mu.Unlock()
			return nil
		}
		n.maybeRedialBootstrap()
		select {
		case <-events:
			poll = 20 * time.Millisecond
		case <-t.C:
			poll = min(2*poll, time.Second)
		case <-ctx.Done():
			return ctx.Err()
		}
		t.Reset(poll)
	}
}

// maybeRedialBootstrap dials the bootstrap peers we are not connected to, at most
// once per backoff period (shared by all topics).
func (n *Node) maybeRedialBootstrap() {
	if len(n.bootstrap) == 0 {
		return
	}
	now := timeNow()
	n.mu.Lock()
	if now.Before(n.nextRedial) {
		n.mu.Unlock()
		return
	}
	n.nextRedial = now.Add(jitter(n.redialWait))
	n.redialWait = redialBackoff.next(n.redialWait)
	n.mu.Unlock()
	for _, ai := range n.bootstrap {
		if ai.ID == n.self || n.host.Network().Connectedness(ai.ID) != network.NotConnected {
			continue
		}
		ai := ai
		n.spawn(nil, func() {
			if err := n.connect(n.ctx, ai); err != nil && n.ctx.Err() == nil {
				n.log.Debug("bootstrap dial failed", "peer", ai.ID, "err", err)
			}
		})
	}
}

// backoffRange is an exponential backoff between min and max.
type backoffRange struct{ min, max time.Duration }

func (b backoffRange) next(cur time.Duration) time.Duration {
	return max(b.min, min(2*cur, b.max))
}

// jitter spreads d by ±20%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	span := int64(d) * 2 / 5
	if span <= 0 {
		return d
	}
	return d - time.Duration(span/2) + time.Duration(rand.Int64N(span))
}

// sleepCtx waits d or until ctx is done; false if ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
