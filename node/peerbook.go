package node

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/perm"
	"github.com/kchat-p2p/kchat/replicate"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// The remembered peers: a node keeps, in <data>/peers.json, the peers it
// had a sync session with, their listen addresses (as identify told them)
// and the channels shared with them. On start it redials them with backoff,
// so that two nodes find each other again after a restart without
// discovery and without any flag, even when one of them came back on
// another port (the other redials it, and learns the new address).
//
// And whenever a session with a peer opens in one channel (the peer dialled
// us, --peer, /connect, kchat sync), sessions for the other channels shared
// with it open at once over the same connection, instead of waiting for
// discovery to find the peer in each.

// peersFile is the remembered peers' file in the data dir.
const peersFile = "peers.json"

const (
	maxRemembered   = 256                 // peers kept, the most recently seen
	maxPeerAddrs    = 8                   // addresses kept per peer
	forgetAfter     = 30 * 24 * time.Hour // a peer not seen for this long is forgotten
	redialMin       = time.Second
	redialMax       = 5 * time.Minute
	spreadRetry     = time.Minute // a channel a peer refused is tried again after this
	peerbookSaveGap = 2 * time.Second
	rememberGap     = 250 * time.Millisecond
	keepGap         = time.Second // how often a live remembered peer is checked
)

// rememberedPeer is one peer in peers.json.
type rememberedPeer struct {
	ID       string    `json:"id"`
	Addrs    []string  `json:"addrs"`    // multiaddrs without /p2p/
	Channels []string  `json:"channels"` // discovery ids (hex) of channels with a session
	LastSeen time.Time `json:"last_seen"`
}

// peerBook is the in-memory form of peers.json. Safe for concurrent use.
type peerBook struct {
	path string

	mu    sync.Mutex
	peers map[peer.ID]*rememberedPeer
	dirty bool
}

func loadPeerBook(dir string) (*peerBook, error) {
	b := &peerBook{path: filepath.Join(dir, peersFile), peers: map[peer.ID]*rememberedPeer{}}
	data, err := os.ReadFile(b.path)
	if errors.Is(err, os.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return b, fmt.Errorf("remembered peers: %w", err)
	}
	var list []rememberedPeer
	if err := json.Unmarshal(data, &list); err != nil {
		return b, fmt.Errorf("remembered peers %s: %w", b.path, err)
	}
	now := time.Now()
	for i := range list {
		rp := list[i]
		id, err := peer.Decode(rp.ID)
		if err != nil || now.Sub(rp.LastSeen) > forgetAfter {
			continue
		}
		b.peers[id] = &rp
	}
	return b, nil
}

// seen records a session with p in channel d, and p's addresses (if any).
func (b *peerBook) seen(p peer.ID, d feed.DiscoveryID, addrs []string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rp := b.peers[p]
	if rp == nil {
		rp = &rememberedPeer{ID: p.String()}
		b.peers[p] = rp
		b.dirty = true
	}
	if ch := d.String(); !slices.Contains(rp.Channels, ch) {
		rp.Channels = append(rp.Channels, ch)
		b.dirty = true
	}
	if len(addrs) > 0 && !slices.Equal(addrs, rp.Addrs) {
		rp.Addrs = addrs
		b.dirty = true
	}
	if now.Sub(rp.LastSeen) > time.Minute {
		b.dirty = true // last seen, at minute precision on disk
	}
	rp.LastSeen = now
}

// shares reports whether p had a session in channel d.
func (b *peerBook) shares(p peer.ID, d feed.DiscoveryID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	rp := b.peers[p]
	return rp != nil && slices.Contains(rp.Channels, d.String())
}

// forChannels lists the remembered peers sharing a channel of joined, the
// most recently seen first.
func (b *peerBook) forChannels(joined map[feed.DiscoveryID]bool) []rememberedPeer {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []rememberedPeer
	for _, rp := range b.peers {
		for _, ch := range rp.Channels {
			if d, ok := parseDiscoveryID(ch); ok && joined[d] {
				c := *rp
				c.Addrs, c.Channels = slices.Clone(rp.Addrs), slices.Clone(rp.Channels)
				out = append(out, c)
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastSeen.After(out[j].LastSeen) })
	return out
}

// addrs is p's remembered addresses, each with /p2p/p.
func (b *peerBook) addrs(p peer.ID) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	rp := b.peers[p]
	if rp == nil {
		return nil
	}
	out := make([]string, 0, len(rp.Addrs))
	for _, a := range rp.Addrs {
		out = append(out, a+"/p2p/"+p.String())
	}
	return out
}

// save writes peers.json if something changed (a temporary file renamed
// over it; mode 0600).
func (b *peerBook) save() error {
	b.mu.Lock()
	if !b.dirty {
		b.mu.Unlock()
		return nil
	}
	list := make([]rememberedPeer, 0, len(b.peers))
	for _, rp := range b.peers {
		list = append(list, *rp)
	}
	b.dirty = false
	b.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].LastSeen.After(list[j].LastSeen) })
	if len(list) > maxRemembered {
		list = list[:maxRemembered]
	}
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return fmt.Errorf("remembered peers: %w", err)
	}
	return perm.WritePrivate("remembered peers", b.path, data)
}

func parseDiscoveryID(s string) (feed.DiscoveryID, bool) {
	var d feed.DiscoveryID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(d) {
		return d, false
	}
	copy(d[:], b)
	return d, true
}

// listenAddrs is what identify told of p's listen addresses (without
// /p2p/), at most maxPeerAddrs, relay addresses last.
func (nw *network) listenAddrs(p peer.ID) []string {
	var direct, relayed []string
	for _, a := range nw.disc.Host().Peerstore().Addrs(p) {
		s := a.String()
		if _, err := a.ValueForProtocol(multiaddr.P_CIRCUIT); err == nil {
			relayed = append(relayed, s)
		} else {
			direct = append(direct, s)
		}
	}
	sort.Strings(direct)
	sort.Strings(relayed)
	out := append(direct, relayed...)
	if len(out) > maxPeerAddrs {
		out = out[:maxPeerAddrs]
	}
	return out
}

// joinedSet is the set of joined channels.
func (nw *network) joinedSet() map[feed.DiscoveryID]bool {
	chans, err := nw.n.store.Channels()
	if err != nil {
		return nil
	}
	out := make(map[feed.DiscoveryID]bool, len(chans))
	for _, c := range chans {
		out[c.ID()] = true
	}
	return out
}

// rememberLoop records the peers with a session in peers.json and opens
// sessions for the other channels shared with them (spread). It runs on
// the replicator's change signal and saves at most every peerbookSaveGap.
func (nw *network) rememberLoop() {
	defer nw.wg.Done()
	sub := nw.rep.SubscribeSessions()
	defer sub.Close()
	save := time.NewTicker(peerbookSaveGap)
	defer save.Stop()
	// The sessions are looked at at once after a change, then at most
	// every rememberGap.
	tick := newSettle(rememberGap, true)
	defer tick.stop()
	tried := map[sessKey]time.Time{} // spread attempts
	for {
		select {
		case <-nw.ctx.Done():
			if err := nw.book.save(); err != nil {
				nw.n.log.Warn("remembered peers", "err", err)
			}
			return
		case <-save.C:
			if err := nw.book.save(); err != nil {
				nw.n.log.Warn("remembered peers", "err", err)
			}
			continue
		case <-sub.C():
			tick.touch()
			continue
		case <-tick.c():
			tick.fired()
		}
		joined := nw.joinedSet()
		now := time.Now()
		live := map[peer.ID]map[feed.DiscoveryID]bool{}
		for d := range joined {
			for _, s := range nw.rep.Sessions(d) {
				if live[s.Peer] == nil {
					live[s.Peer] = map[feed.DiscoveryID]bool{}
				}
				live[s.Peer][d] = true
				nw.book.seen(s.Peer, d, nw.listenAddrs(s.Peer), now)
				nw.keep(s.Peer)
			}
		}
		for p, in := range live {
			for d := range joined {
				k := sessKey{p, d}
				if in[d] || !nw.book.shares(p, d) || now.Sub(tried[k]) < spreadRetry || nw.rep.Banned(p, d) {
					continue
				}
				tried[k] = now
				nw.spread(d, p)
			}
		}
		for k, at := range tried {
			if now.Sub(at) > spreadRetry {
				delete(tried, k)
			}
		}
	}
}

// sessKey names a (peer, channel) pair.
type sessKey struct {
	p peer.ID
	d feed.DiscoveryID
}

// spread opens a mesh session with p for channel d over the connection
// that exists (never a new dial), in a goroutine: as a mesh pick, so it
// counts against d's mesh bound, a busy p may decline it, and a peer the
// mesh rotated away from is left alone for its period.
func (nw *network) spread(d feed.DiscoveryID, p peer.ID) {
	if nw.heldOff(d, p) {
		return
	}
	nw.dial(d, p)
}

// redialRemembered starts, for each remembered peer that shares a joined
// channel, a loop that dials it whenever it has no session in any channel
// shared with it (with backoff), until the network closes. Only with
// NetOptions.Redial.
func (nw *network) redialRemembered() {
	rps := nw.book.forChannels(nw.joinedSet())
	if len(rps) > maxRedialed {
		rps = rps[:maxRedialed]
	}
	for _, rp := range rps {
		if id, err := peer.Decode(rp.ID); err == nil {
			nw.keep(id)
		}
	}
}

// keep starts keepRemembered for p unless it runs (or redial is off).
func (nw *network) keep(p peer.ID) {
	if !nw.redialOn || p == nw.disc.Host().ID() {
		return
	}
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.keeping[p] || len(nw.keeping) >= maxRedialed || nw.ctx.Err() != nil {
		return
	}
	nw.keeping[p] = true
	nw.wg.Add(1)
	go func() {
		defer nw.wg.Done()
		defer func() {
			nw.mu.Lock()
			delete(nw.keeping, p)
			nw.mu.Unlock()
		}()
		nw.keepRemembered(p)
	}()
}

// maxRedialed: at most this many remembered peers are redialled (the most
// recently seen); discovery and their gossip find the others.
const maxRedialed = 32

// keepRemembered keeps p, a remembered peer, connected: while p has a
// session in a channel shared with it, it waits; otherwise it dials p's
// remembered addresses and opens mesh sessions for the channels shared with
// it whose mesh has room (a full mesh does not need p; a busy p or one the
// mesh rotated away from is left alone), backing off from redialMin to
// redialMax between failed attempts.
func (nw *network) keepRemembered(p peer.ID) {
	backoff := redialMin
	for {
		joined := nw.joinedSet()
		var shared, needy []feed.DiscoveryID
		live := false
		for d := range joined {
			if !nw.book.shares(p, d) {
				continue
			}
			shared = append(shared, d)
			live = live || nw.hasSession(d, p)
		}
		if len(shared) == 0 {
			return // every channel shared with p was left
		}
		for _, d := range shared {
			if !live && nw.outbound(d) < MeshOut && !nw.heldOff(d, p) {
				needy = append(needy, d)
			}
		}
		if live || len(needy) == 0 {
			backoff = redialMin
			select {
			case <-nw.ctx.Done():
				return
			case <-nw.keepBeat.C(): // one wake-up a second for all of them
			}
			continue
		}
		if err := nw.redialCtx(nw.ctx, p, needy, true); err != nil {
			nw.n.log.Debug("remembered peer", "peer", p, "err", err, "retry in", backoff)
		} else {
			backoff = redialMin
		}
		t := time.NewTimer(backoff)
		select {
		case <-nw.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, redialMax)
	}
}

// redialCtx dials p at its remembered addresses and opens a session in each
// channel of shared: mesh sessions (bounded, declinable) when the node
// redials on its own, sessions the user asked for otherwise (kchat sync).
func (nw *network) redialCtx(ctx context.Context, p peer.ID, shared []feed.DiscoveryID, mesh bool) error {
	addrs := nw.book.addrs(p)
	if len(addrs) == 0 {
		return errors.New("no address known")
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var errs []error
	dialled := false
	for _, a := range addrs {
		if _, err := nw.disc.AddManual(ctx, shared[0], a); err != nil {
			errs = append(errs, err)
			continue
		}
		dialled = true
		break
	}
	if !dialled {
		return errors.Join(errs...)
	}
	ok := 0
	for _, d := range shared {
		connect := nw.connect
		if mesh {
			connect = nw.connectMesh
		}
		if err := connect(ctx, d, p); err == nil {
			ok++
		} else {
			errs = append(errs, err)
		}
	}
	if ok == 0 {
		return errors.Join(errs...)
	}
	return nil
}

// syncRemembered dials the remembered peers of channel d (the MeshOut most
// recently seen, at once, for at most 10 s) and returns those it has a
// session with now.
func (nw *network) syncRemembered(ctx context.Context, d feed.DiscoveryID) []peer.ID {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	var ids []peer.ID
	tried := 0
	for _, rp := range nw.book.forChannels(map[feed.DiscoveryID]bool{d: true}) {
		p, err := peer.Decode(rp.ID)
		if err != nil || p == nw.disc.Host().ID() {
			continue
		}
		if tried++; tried > MeshOut {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !nw.hasSession(d, p) {
				if err := nw.redialCtx(ctx, p, []feed.DiscoveryID{d}, false); err != nil {
					nw.n.log.Info("remembered peer did not answer", "peer", p, "err", err)
					return
				}
			}
			mu.Lock()
			ids = append(ids, p)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return ids
}

// probe opens a session with p for d, p not known to hold d: a refusal
// (p has not joined d) leaves no trace in the discovery book, unlike
// connect; a protocol violation is handled as there.
func (nw *network) probe(ctx context.Context, d feed.DiscoveryID, p peer.ID) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := nw.rep.Connect(ctx, p, d)
	if err != nil && nw.rep.Banned(p, d) {
		nw.disc.Book().MarkDropped(d, p, err.Error())
		nw.disc.Book().HoldOff(d, p, replicate.DefaultLimits().BanDuration)
	}
	return err
}

// ConnectResult says what Connect reached.
type ConnectResult struct {
	Peer     string   // the peer id
	Channels []string // names of the channels now in sync with it
}

// Connect dials the peer at addr (a multiaddr ending in /p2p/PEERID) and
// opens a sync session with it in every joined channel it shares (those it
// does not hold refuse at once). The peer is remembered: it is redialled
// after a restart.
func (n *Node) Connect(ctx context.Context, addr string) (ConnectResult, error) {
	if n.net == nil {
		return ConnectResult{}, ErrOffline
	}
	nw := n.net
	chans, err := n.store.Channels()
	if err != nil {
		return ConnectResult{}, err
	}
	if len(chans) == 0 {
		return ConnectResult{}, errors.New("no channel joined: join one first, then connect to a peer of it")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ai, err := nw.disc.AddManual(ctx, chans[0].ID(), strings.TrimSpace(addr))
	if err != nil {
		return ConnectResult{}, err
	}
	res := ConnectResult{Peer: ai.ID.String()}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := nw.probe(ctx, c.ID(), ai.ID); err != nil {
				return
			}
			nw.book.seen(ai.ID, c.ID(), nw.listenAddrs(ai.ID), time.Now())
			mu.Lock()
			res.Channels = append(res.Channels, c.Name)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Strings(res.Channels)
	if len(res.Channels) == 0 {
		return res, fmt.Errorf("connected to %s, but it shares none of your channels", ai.ID)
	}
	if err := nw.book.save(); err != nil {
		n.log.Warn("remembered peers", "err", err)
	}
	return res, nil
}
