package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/kchat-p2p/kchat/discovery"
	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/notify"
	"github.com/kchat-p2p/kchat/replicate"
	lpnet "github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// NetOptions configure the network side of a node.
type NetOptions struct {
	Listen    []string // multiaddrs to listen on (nil: all interfaces, TCP and QUIC)
	Peers     []string // multiaddrs to dial for every joined channel (manual peers)
	Bootstrap []string // nil: the public DHT's list; ["none"]: empty
	NoMDNS    bool
	NoDHT     bool
	NoNAT     bool
	Seed      bool // DHT server + relay service
	// Redial: redial the remembered peers (peers.json in the data dir:
	// the peers this node had sync sessions with, at the addresses they
	// listen on) with backoff whenever none of their sessions is live, so
	// that nodes find each other again after a restart without discovery.
	// For long-running nodes (UI, seed); off, only the connections that
	// discovery, --peer and Connect make are used.
	Redial bool
}

// network is the node's libp2p side: discovery finds peers of joined
// channels, replication syncs with each of them. It owns the goroutines that
// connect found peers; all stop on close.
type network struct {
	n           *Node
	disc        *discovery.Node
	rep         *replicate.Replicator
	peers       []string
	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	dials       chan struct{} // bounds concurrent session attempts
	found       chan struct{} // foundLoop -> meshLoop: new peers in the book
	book        *peerBook     // remembered peers (peerbook.go)
	redialOn    bool          // NetOptions.Redial
	noDiscovery bool          // neither DHT nor mDNS: only addresses given or remembered

	mu          sync.Mutex
	manual      map[feed.DiscoveryID]context.CancelFunc    // stops a channel's manual-peer loops
	keeping     map[peer.ID]bool                           // remembered peers with a keepRemembered loop
	dialing     map[feed.DiscoveryID]map[peer.ID]bool      // mesh dials in progress
	busy        map[feed.DiscoveryID]map[peer.ID]time.Time // peers the mesh rotated away from, until
	rotateEvery time.Duration
	dialFault   func(peer.ID) error // tests: declines a mesh dial before it is made
	keepBeat    notify.Beat         // keepRemembered loops' shared check (run by keepBeat.Run)
}

// MeshOut is how many sync sessions per channel a node opens itself to
// peers that discovery found (manual peers and `kchat sync` come on top).
// Peers found beyond it stay in the peer book and fill the mesh when a
// session ends. Each node dials at most MeshOut and answers whoever dials
// it, so sessions per node average 2 x MeshOut whatever the channel's size,
// and an entry reaches everyone in O(log N) hops of gossip (docs/architecture.md).
const MeshOut = 4

// meshRotate is how often a node with a full mesh replaces its oldest
// mesh session by one with a peer it has no session with (jittered), so
// that a channel's mesh does not freeze into cliques, and a peer that
// stays quiet or partial is not one of a node's few links for good.
var meshRotate = 10 * time.Minute

// meshRetry is how soon a mesh left short is topped up again without any
// other change: a declined peer's hold may have ended, a failed dial may
// work now.
const meshRetry = 5 * time.Second

// meshDialFault, when set (tests), is asked before each mesh dial; an
// error is taken as the dial's outcome instead of dialling (a
// *replicate.BusyError as a busy peer's decline, any other error as a
// failed dial).
var meshDialFault func(peer.ID) error

// shedEvery and shedAge: how often a node looks for inbound mesh sessions
// beyond its bound, and how long an initiator's first session lives before
// it may be shed (replicate.ShedMesh).
const (
	shedEvery = 10 * time.Second
	shedAge   = 30 * time.Second
)

// errRotated ends a mesh session the mesh replaces.
var errRotated = errors.New("mesh rotation")

func startNetwork(ctx context.Context, n *Node, o NetOptions) (*network, error) {
	disc, err := discovery.Start(ctx, discovery.Config{
		HostKeyPath: filepath.Join(n.dir, "hostkey"),
		Listen:      o.Listen,
		Bootstrap:   o.Bootstrap,
		NoMDNS:      o.NoMDNS,
		NoDHT:       o.NoDHT,
		NoNAT:       o.NoNAT,
		Seed:        o.Seed,
		Logger:      n.log,
	})
	if err != nil {
		return nil, err
	}
	nctx, cancel := context.WithCancel(context.Background())
	nw := &network{n: n, disc: disc, peers: o.Peers, ctx: nctx, cancel: cancel, dials: make(chan struct{}, 16),
		found:  make(chan struct{}, 1),
		manual: map[feed.DiscoveryID]context.CancelFunc{}, keeping: map[peer.ID]bool{}, dialing: map[feed.DiscoveryID]map[peer.ID]bool{},
		busy: map[feed.DiscoveryID]map[peer.ID]time.Time{}, rotateEvery: meshRotate,
		dialFault: meshDialFault}
	// Seeds too: a node with no other session of a channel is always
	// served, so a seed's NATed clients are never turned away.
	nw.rep = replicate.New(disc.Host(), n.store, replicate.Config{Logger: n.log})
	nw.redialOn = o.Redial
	nw.noDiscovery = o.NoDHT && o.NoMDNS
	if nw.book, err = loadPeerBook(n.dir); err != nil {
		// A damaged file costs the remembered peers, not the node.
		n.log.Warn("remembered peers", "err", err)
	}
	chans, err := n.store.Channels()
	if err != nil {
		nw.close()
		return nil, err
	}
	for _, c := range chans {
		nw.join(c)
	}
	nw.wg.Add(4)
	go func() { defer nw.wg.Done(); nw.keepBeat.Run(nw.ctx, keepGap) }()
	go nw.foundLoop()
	go nw.meshLoop()
	go nw.rememberLoop()
	nw.redialRemembered()
	return nw, nil
}

func (nw *network) close() error {
	nw.cancel()
	nw.wg.Wait()
	err := errors.Join(nw.rep.Close(), nw.disc.Close())
	// Received against stored says how many copies the mesh pushed.
	st := nw.rep.Stats()
	nw.n.log.Info("replication totals", "entries_sent", st.EntriesSent, "entries_received", st.EntriesReceived,
		"entries_stored", st.EntriesStored, "frames_sent", st.FramesSent, "frames_received", st.FramesReceived,
		"bytes_sent", st.BytesSent, "bytes_received", st.BytesReceived, "violations", st.Violations)
	return err
}

// join starts finding peers of c and keeps a session with each manual peer.
func (nw *network) join(c feed.Channel) {
	d := c.ID()
	nw.disc.Join(d)
	if len(nw.peers) == 0 {
		return
	}
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if _, ok := nw.manual[d]; ok {
		return
	}
	ctx, cancel := context.WithCancel(nw.ctx)
	nw.manual[d] = cancel
	for _, addr := range nw.peers {
		nw.wg.Add(1)
		go func() {
			defer nw.wg.Done()
			nw.keepManual(ctx, c, addr)
		}()
	}
}

// keepManual keeps a sync session with the peer at addr for channel c: it
// dials, waits while the session lives, and redials with backoff when it
// ends (the peer restarted, the network dropped), until ctx ends.
func (nw *network) keepManual(ctx context.Context, c feed.Channel, addr string) {
	d := c.ID()
	sub := nw.rep.SubscribeSessions()
	defer sub.Close()
	const minBackoff, maxBackoff = time.Second, time.Minute
	backoff := minBackoff
	for {
		id, err := nw.connectAddr(ctx, d, addr)
		if err == nil {
			backoff = minBackoff
			for nw.hasSession(d, id) {
				select {
				case <-ctx.Done():
					return
				case <-sub.C():
				}
			}
			nw.n.log.Info("manual peer session ended; redialling", "addr", addr, "channel", c.Name)
		} else if ctx.Err() == nil {
			nw.n.log.Warn("manual peer", "addr", addr, "channel", c.Name, "err", err, "retry in", backoff)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (nw *network) hasSession(d feed.DiscoveryID, p peer.ID) bool {
	return nw.rep.HasSession(p, d)
}

func (nw *network) leave(d feed.DiscoveryID) {
	nw.mu.Lock()
	if cancel, ok := nw.manual[d]; ok {
		cancel()
		delete(nw.manual, d)
	}
	delete(nw.busy, d)
	nw.mu.Unlock()
	nw.disc.Leave(d)
	nw.rep.CloseChannel(d)
}

// foundLoop hands the peers discovery reports to the mesh: they are in the
// peer book now, and meshLoop picks among them at random. (Dialling each as
// it is reported would make every node dial the first peers found, such as
// a bootstrap seed, so that those would end up with a session to everyone.)
func (nw *network) foundLoop() {
	defer nw.wg.Done()
	for {
		select {
		case <-nw.ctx.Done():
			return
		case _, ok := <-nw.disc.Found():
			if !ok {
				return
			}
			select {
			case nw.found <- struct{}{}:
			default:
			}
		}
	}
}

// dial opens a mesh session with p for d, in a goroutine, unless d's mesh
// is full or p is being dialled. It reports whether it started a dial.
func (nw *network) dial(d feed.DiscoveryID, p peer.ID) bool {
	nw.mu.Lock()
	if nw.dialing[d] == nil {
		nw.dialing[d] = map[peer.ID]bool{}
	}
	if nw.dialing[d][p] || nw.outbound(d)+len(nw.dialing[d]) >= MeshOut {
		nw.mu.Unlock()
		return false
	}
	nw.dialing[d][p] = true
	nw.mu.Unlock()
	nw.wg.Add(1)
	go func() {
		defer nw.wg.Done()
		defer func() {
			nw.mu.Lock()
			delete(nw.dialing[d], p)
			nw.mu.Unlock()
		}()
		select {
		case nw.dials <- struct{}{}:
		case <-nw.ctx.Done():
			return
		}
		defer func() { <-nw.dials }()
		if nw.dialFault != nil {
			if err := nw.dialFault(p); err != nil {
				nw.meshDialed(d, p, err)
				return
			}
		}
		// Over the connection discovery made, never a new dial: a peer
		// whose connection just closed is not redialled by the mesh.
		nw.connectMesh(lpnet.WithNoDial(nw.ctx, "kchat mesh"), d, p)
	}()
	return true
}

// outbound counts the live sessions of d that this node opened.
func (nw *network) outbound(d feed.DiscoveryID) int {
	n := 0
	for _, s := range nw.rep.Sessions(d) {
		if s.Outbound {
			n++
		}
	}
	return n
}

// meshLoop tops each channel's mesh up to MeshOut from the peer book when
// sessions end (at most once a second).
func (nw *network) meshLoop() {
	defer nw.wg.Done()
	sub := nw.rep.SubscribeSessions()
	defer sub.Close()
	// Top-ups at most once a second, after a change.
	tick := newSettle(time.Second, false)
	defer tick.stop()
	// A mesh left short (dials declined or failed, peers held off) is
	// looked at again after meshRetry: nothing else may change to wake
	// the loop (the peers were found once, no session came or went).
	retry := newSettle(meshRetry, false)
	defer retry.stop()
	rotate := time.NewTimer(jitter(nw.rotateEvery))
	defer rotate.Stop()
	shed := time.NewTicker(shedEvery)
	defer shed.Stop()
	for {
		select {
		case <-nw.ctx.Done():
			return
		case <-sub.C():
			tick.touch()
			continue
		case <-nw.found:
			tick.touch()
			continue
		case <-shed.C:
			if chans, err := nw.n.store.Channels(); err == nil {
				for _, c := range chans {
					nw.rep.ShedMesh(c.ID(), shedAge)
				}
			}
			continue
		case <-rotate.C:
			rotate.Reset(jitter(nw.rotateEvery))
			if chans, err := nw.n.store.Channels(); err == nil {
				for _, c := range chans {
					nw.rotate(c.ID())
				}
			}
			tick.touch()
			continue
		case <-tick.c():
			tick.fired()
		case <-retry.c():
			retry.fired()
		}
		chans, err := nw.n.store.Channels()
		if err != nil {
			continue
		}
		for _, c := range chans {
			if nw.fill(c.ID()) {
				retry.touch()
			}
		}
	}
}

// settle is a timer that runs only after a change: touch arms it to fire
// gap later unless it is armed already, so a burst of changes is looked at
// once per gap, and an idle node is not woken at all. Owned by one loop.
type settle struct {
	t     *time.Timer
	gap   time.Duration
	armed bool
}

// newSettle returns a settle timer, firing at once if now.
func newSettle(gap time.Duration, now bool) *settle {
	s := &settle{t: time.NewTimer(0), gap: gap, armed: true}
	if !now {
		s.t.Stop()
		s.armed = false
	}
	return s
}

func (s *settle) touch() {
	if !s.armed {
		s.t.Reset(s.gap)
		s.armed = true
	}
}

func (s *settle) c() <-chan time.Time { return s.t.C }

// fired is called after receiving from c.
func (s *settle) fired() { s.armed = false }

func (s *settle) stop() { s.t.Stop() }

// jitter spreads d by ±20%.
func jitter(d time.Duration) time.Duration {
	return d - d/5 + rand.N(2*d/5+1)
}

// rotate ends the oldest mesh session this node opened for d when the mesh
// is full and another connected peer could take its place; fill then picks
// a new one (not the same peer, which is held off for a rotation period).
func (nw *network) rotate(d feed.DiscoveryID) {
	var oldest *replicate.SessionInfo
	in := map[peer.ID]bool{}
	mesh := 0
	ss := nw.rep.Sessions(d)
	for i, s := range ss {
		in[s.Peer] = true
		if s.Outbound && s.Mesh {
			mesh++
			if oldest == nil || s.Since.Before(oldest.Since) {
				oldest = &ss[i]
			}
		}
	}
	if oldest == nil || mesh < MeshOut {
		return
	}
	spare := false
	for _, p := range nw.disc.Book().Peers(d) {
		if p.Connected && !in[p.ID] && !nw.rep.Banned(p.ID, d) {
			spare = true
			break
		}
	}
	if !spare {
		return
	}
	nw.hold(d, oldest.Peer, nw.rotateEvery)
	nw.n.log.Debug("mesh rotation", "peer", oldest.Peer, "channel", d.Short())
	nw.rep.Disconnect(oldest.Peer, d, errRotated)
}

// hold keeps the mesh from asking p for a session of d during dur.
func (nw *network) hold(d feed.DiscoveryID, p peer.ID, dur time.Duration) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.busy[d] == nil {
		nw.busy[d] = map[peer.ID]time.Time{}
	}
	nw.busy[d][p] = time.Now().Add(dur)
}

// heldOff reports whether p declined or shed a mesh session of d (busy),
// the mesh rotated away from it, or a mesh dial to it failed, recently.
func (nw *network) heldOff(d feed.DiscoveryID, p peer.ID) bool {
	if nw.rep.Busy(p, d) {
		return true
	}
	nw.mu.Lock()
	defer nw.mu.Unlock()
	until, ok := nw.busy[d][p]
	if ok && !time.Now().Before(until) {
		delete(nw.busy[d], p)
		return false
	}
	return ok
}

// fill dials found peers of d without a session, in random order, until
// the mesh is full. It reports whether the mesh is short while connected
// peers without a session are left to ask (now, or once their hold ends).
func (nw *network) fill(d feed.DiscoveryID) (short bool) {
	if nw.outbound(d) >= MeshOut {
		return false
	}
	in := map[peer.ID]bool{}
	for _, s := range nw.rep.Sessions(d) {
		in[s.Peer] = true
	}
	// A node with no session of d ignores busy holds: it asks as a first
	// session (mesh = 1), which is never declined.
	lone := len(in) == 0
	var cands []peer.ID
	for _, p := range nw.disc.Book().Peers(d) {
		if p.Connected && !in[p.ID] && !nw.rep.Banned(p.ID, d) {
			short = true // now or once its hold ends
			if lone || !nw.heldOff(d, p.ID) {
				cands = append(cands, p.ID)
			}
		}
	}
	rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	for _, p := range cands {
		nw.dial(d, p)
	}
	return short
}

// connectMesh opens a mesh session; a peer that declines it (busy) is
// left alone for the time it asks.
func (nw *network) connectMesh(ctx context.Context, d feed.DiscoveryID, p peer.ID) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := nw.rep.ConnectMesh(ctx, p, d)
	nw.meshDialed(d, p, err)
	return err
}

// meshFailHold is how long the mesh leaves a peer alone after a mesh dial
// to it failed without a refusal (a timeout, a reset stream: a peer busy
// with other work). The peer stays a candidate: dropping it from the peer
// book, as a refusal does, would keep it out of the mesh until discovery
// found it again, although its connection is live.
const meshFailHold = 15 * time.Second

// meshDialed handles the outcome of a mesh dial to p for d.
func (nw *network) meshDialed(d feed.DiscoveryID, p peer.ID, err error) {
	var busy *replicate.BusyError
	switch {
	case err == nil:
	case errors.As(err, &busy):
		// The replicator holds p off for the time it asked (rep.Busy).
		nw.n.log.Debug("mesh session declined", "peer", p, "channel", d.Short(), "retry", busy.Retry)
	case nw.rep.Banned(p, d) || errors.Is(err, feed.ErrUnknownChannel) || errors.Is(err, replicate.ErrBanned) ||
		errors.Is(err, replicate.ErrClosed) || nw.ctx.Err() != nil:
		nw.sessionFailed(d, p, err)
	default:
		nw.hold(d, p, meshFailHold)
		nw.n.log.Info("mesh session failed; asking again later", "peer", p, "channel", d.Short(), "err", err, "after", meshFailHold)
	}
}

func (nw *network) connect(ctx context.Context, d feed.DiscoveryID, p peer.ID) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := nw.rep.Connect(ctx, p, d); err != nil {
		nw.sessionFailed(d, p, err)
		return err
	}
	return nil
}

func (nw *network) sessionFailed(d feed.DiscoveryID, p peer.ID, err error) {
	nw.disc.Book().MarkDropped(d, p, err.Error())
	if nw.rep.Banned(p, d) {
		// It broke the protocol: discovery must not redial it at once.
		nw.disc.Book().HoldOff(d, p, replicate.DefaultLimits().BanDuration)
	}
	nw.n.log.Info("sync session failed", "peer", p, "channel", d.Short(), "err", err)
}

// connectAddr dials addr and opens a sync session for channel d.
func (nw *network) connectAddr(ctx context.Context, d feed.DiscoveryID, addr string) (peer.ID, error) {
	ai, err := nw.disc.AddManual(ctx, d, addr)
	if err != nil {
		return "", fmt.Errorf("dial %s: %w", addr, err)
	}
	if err := nw.connect(ctx, d, ai.ID); err != nil {
		return ai.ID, fmt.Errorf("sync with %s: %w", ai.ID, err)
	}
	nw.book.seen(ai.ID, d, nw.listenAddrs(ai.ID), time.Now()) // remembered at once, also by a short-lived `kchat sync`
	return ai.ID, nil
}

// ErrOffline is returned by network operations of a node without network.
var ErrOffline = errors.New("node is offline (started without network)")

// Addrs are the node's full multiaddrs (with /p2p/), to give to peers.
func (n *Node) Addrs() []string {
	if n.net == nil {
		return nil
	}
	var out []string
	for _, a := range n.net.disc.Addrs() {
		out = append(out, a.String())
	}
	return out
}

// PeerStatus is one peer of a channel as the CLI and UI show it.
type PeerStatus struct {
	ID        string
	Source    string   // mdns, dht, relay, manual, inbound
	Addrs     []string // its multiaddrs: from the peer book, else its open connections
	Connected bool
	Syncing   bool // a session is live
	Outbound  bool // this node opened it
	Synced    bool // same heads on both sides
	Want      uint64
	Sent      uint64
	Received  uint64
	LastSeen  time.Time
	Dropped   string
}

// Peers lists the peers of channel ch: connected ones first.
func (n *Node) Peers(ch feed.DiscoveryID) []PeerStatus {
	if n.net == nil {
		return nil
	}
	byID := map[peer.ID]*PeerStatus{}
	var out []*PeerStatus
	for _, p := range n.net.disc.Book().Peers(ch) {
		ps := &PeerStatus{ID: p.ID.String(), Source: string(p.Source), Connected: p.Connected, LastSeen: p.LastSeen, Dropped: p.Dropped}
		for _, a := range p.Addrs {
			ps.Addrs = append(ps.Addrs, a.String())
		}
		byID[p.ID] = ps
		out = append(out, ps)
	}
	for _, s := range n.net.rep.Sessions(ch) {
		ps := byID[s.Peer]
		if ps == nil {
			ps = &PeerStatus{ID: s.Peer.String(), Source: "inbound", Connected: true, LastSeen: time.Now()}
			out = append(out, ps)
		}
		ps.Syncing, ps.Synced, ps.Want, ps.Sent, ps.Received = true, s.Synced, s.Want, s.Sent, s.Received
		ps.Outbound = s.Outbound
	}
	for _, ps := range out {
		if len(ps.Addrs) > 0 {
			continue
		}
		// Not reported with addresses (e.g. it dialled us): where it is connected from.
		id, err := peer.Decode(ps.ID)
		if err != nil {
			continue
		}
		for _, c := range n.net.disc.Host().Network().ConnsToPeer(id) {
			ps.Addrs = append(ps.Addrs, c.RemoteMultiaddr().String())
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Syncing && !out[j].Syncing })
	res := make([]PeerStatus, len(out))
	for i, p := range out {
		res[i] = *p
	}
	return res
}

// NetChanged is a coalescing signal that peers or sync status changed,
// progress included: it signals on every stored batch.
// It returns nil (never ready) for an offline node.
func (n *Node) NetChanged() *replicate.Subscription {
	if n.net == nil {
		return nil
	}
	return n.net.rep.Subscribe()
}

// ErrNoWayToPeers: Sync was given no address, no remembered peer of the
// channel answered, and discovery is off: nothing could ever be found.
var ErrNoWayToPeers = errors.New("no way to find a peer of this channel: no --peer given, no remembered peer answered, and discovery is off (--no-dht --no-mdns): give --peer MADDR (from `kchat peers` on the other side)")

// SyncSummary is what `kchat sync` reports.
type SyncSummary struct {
	Peers    int
	Received uint64 // new entries stored
	Sent     uint64
	Elapsed  time.Duration
	LeftOut  []string // feeds that could not be brought in step, and why ("1a2b3c4d: throttled by the peer")
}

// Sync replicates channel ch with the peers at addrs (or, with none, with
// the peers discovery finds) until both sides hold the same heads.
func (n *Node) Sync(ctx context.Context, ch feed.DiscoveryID, addrs []string) (SyncSummary, error) {
	start := time.Now()
	if n.net == nil {
		return SyncSummary{}, ErrOffline
	}
	before := n.net.rep.Stats()
	sum := func() SyncSummary {
		st := n.net.rep.Stats()
		return SyncSummary{Peers: len(n.net.rep.Sessions(ch)), Received: st.EntriesStored - before.EntriesStored,
			Sent: st.EntriesSent - before.EntriesSent, Elapsed: time.Since(start)}
	}
	var ids []peer.ID
	for _, a := range addrs {
		id, err := n.net.connectAddr(ctx, ch, a)
		if err != nil {
			return sum(), err
		}
		ids = append(ids, id)
	}
	if len(addrs) == 0 {
		// The remembered peers of the channel first (peers.json).
		ids = n.net.syncRemembered(ctx, ch)
		if len(ids) == 0 && n.net.noDiscovery {
			return sum(), ErrNoWayToPeers
		}
	}
	if err := n.net.rep.WaitSynced(ctx, ch, ids...); err != nil {
		return sum(), fmt.Errorf("not caught up: %w", err)
	}
	if err := n.WaitIndexed(ctx); err != nil {
		return sum(), err
	}
	s := sum()
	s.Peers = max(s.Peers, len(ids))
	for _, si := range n.net.rep.Sessions(ch) {
		for _, r := range si.Refused {
			by := ""
			if r.ByPeer {
				by = " by " + si.Peer.ShortString()
			}
			s.LeftOut = append(s.LeftOut, fmt.Sprintf("%s: %s%s", r.Author.Short(), r.Why, by))
		}
	}
	sort.Strings(s.LeftOut)
	return s, nil
}
