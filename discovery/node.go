package discovery

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/amino"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Source says how a peer was found.
type Source string

const (
	SourceMDNS   Source = "mdns"   // LAN multicast DNS
	SourceDHT    Source = "dht"    // Kademlia DHT rendezvous on the topic
	SourceRelay  Source = "relay"  // found through the DHT but reachable only through a circuit relay (limited connection)
	SourceManual Source = "manual" // --peer MADDR (AddManual)
	// SourceInbound marks Book entries of peers that dialled us (added by Book.Seen);
	// Found never reports it.
	SourceInbound Source = "inbound"
)

// DefaultListen are the listen addresses used when Config.Listen is nil.
var DefaultListen = []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}

// Config configures Start. The zero value is a full internet node (public Amino DHT,
// mDNS, NAT traversal) with an ephemeral host key.
type Config struct {
	// HostKeyPath is the persisted libp2p host key, created (mode 0600) on first use.
	// It is not the user's author identity. A corrupt file is an error
	// (ErrCorruptHostKey), never silently replaced. Empty: an ephemeral key.
	HostKeyPath string
	// Listen are multiaddrs to listen on. Empty: DefaultListen.
	Listen []string
	// Bootstrap are DHT bootstrap peers (full multiaddrs with /p2p/). nil: the public
	// Amino bootstrap list (dht.DefaultBootstrapPeers) with the public-address filters
	// of the Amino DHT. Non-nil: exactly these peers (an empty slice or ["none"]
	// starts a first node), and no address filters, so loopback and private
	// addresses work (own seeds on a LAN, tests on 127.0.0.1).
	Bootstrap []string
	// NoMDNS disables LAN discovery; NoDHT disables the DHT (no rendezvous, no
	// relay candidates from it).
	NoMDNS, NoDHT bool
	// NoNAT disables port mapping (UPnP / NAT-PMP). Hole punching, AutoNAT v2 and the
	// auto-relay client stay on: they only talk to peers already connected.
	NoNAT bool
	// Seed runs a DHT server and a circuit relay v2 service (kchat seed) and treats the
	// node as publicly reachable. Otherwise the DHT is a client unless AutoNAT finds
	// the node publicly reachable (dht.ModeAuto), and the auto-relay client is on.
	Seed bool
	// Logger receives discovery's own logs and, process-wide, those of go-libp2p,
	// kad-dht and zeroconf (see the package doc). nil: discarded.
	Logger *slog.Logger
}

// Found is one discovered, dialled peer of a topic.
type Found struct {
	Topic  [32]byte
	Peer   peer.AddrInfo
	Source Source
}

// Timing knobs (variables so tests can shorten them).
var (
	dialTimeout          = 20 * time.Second
	directUpgradeTimeout = 5 * time.Second
	provideTimeout       = 60 * time.Second
	findTimeout          = 60 * time.Second
	advertiseTTL         = 3 * time.Hour // re-advertised at 7/8 of it; provider records live 48h on Amino
	findMinInterval      = time.Second
	findMaxInterval      = time.Minute
	advertiseBackoff     = backoffRange{time.Second, 2 * time.Minute}
	readvertiseGap       = 10 * time.Second // least time between advertisements caused by address changes
	redialBackoff        = backoffRange{2 * time.Second, time.Minute}
	dialFailBackoff      = backoffRange{5 * time.Second, 10 * time.Minute}
	timeNow              = time.Now
)

const (
	connLowWater  = 100
	connHighWater = 400
	connGrace     = time.Minute
	foundBuffer   = 128
	findLimit     = 100
	// enoughProviders: a find round that brings nothing new while this
	// many providers are known backs off to findMaxInterval at once.
	enoughProviders = 8
	protectPrefix   = "kchat/"
)

// Node owns the libp2p host, the DHT, the mDNS services and the discovery loops.
type Node struct {
	cfg       Config
	self      peer.ID
	log       *slog.Logger
	host      host.Host
	dht       atomic.Pointer[dht.IpfsDHT]
	bootstrap []peer.AddrInfo
	explicit  bool // bootstrap list given by the user (seed nodes: also relay candidates)
	book      *Book
	found     chan Found
	notifiee  *network.NotifyBundle

	ctx    context.Context
	cancel context.CancelFunc

	joinMu    sync.Mutex // serialises Join, Leave, Close
	closeOnce sync.Once
	closeErr  error

	mu         sync.Mutex
	wg         sync.WaitGroup
	closed     bool
	topics     map[[32]byte]*topicState
	dialing    map[topicPeer]struct{}
	reported   map[peer.ID]map[[32]byte]struct{}
	dialFails  map[peer.ID]*failState
	nextRedial time.Time
	redialWait time.Duration

	hooks *testHooks // nil outside tests; set before Join
}

// testHooks observe the DHT loops in tests.
type testHooks struct {
	advertised func(topic [32]byte)                      // a Provide succeeded
	findRound  func(topic [32]byte, providers []peer.ID) // a lookup finished (providers other than self)
}

type topicState struct {
	topic  [32]byte
	ctx    context.Context
	cancel context.CancelFunc
	left   bool // guarded by Node.mu
	wg     sync.WaitGroup
	mdns   interface{ Close() error }
}

type failState struct {
	until time.Time
	wait  time.Duration
	addrs string // the addresses that failed (addrSetKey)
}

// Start creates the host (and the DHT unless NoDHT) and returns a running Node.
// ctx bounds start-up only; the Node runs until Close.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	var sk crypto.PrivKey
	var err error
	if cfg.HostKeyPath != "" {
		sk, err = LoadOrCreateHostKey(cfg.HostKeyPath)
	} else {
		sk, _, err = crypto.GenerateEd25519Key(rand.Reader)
	}
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	self, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return nil, fmt.Errorf("discovery: host key: %w", err)
	}

	bootstrap, err := parseBootstrap(cfg.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}

	cm, err := connmgr.NewConnManager(connLowWater, connHighWater, connmgr.WithGracePeriod(connGrace))
	if err != nil {
		return nil, fmt.Errorf("discovery: connection manager: %w", err)
	}

	n := &Node{
		cfg:        cfg,
		self:       self,
		log:        logger.With("component", "discovery"),
		bootstrap:  bootstrap,
		explicit:   cfg.Bootstrap != nil,
		book:       newBook(),
		found:      make(chan Found, foundBuffer),
		topics:     make(map[[32]byte]*topicState),
		dialing:    make(map[topicPeer]struct{}),
		reported:   make(map[peer.ID]map[[32]byte]struct{}),
		dialFails:  make(map[peer.ID]*failState),
		redialWait: redialBackoff.min,
		nextRedial: timeNow().Add(redialBackoff.min),
	}
	n.ctx, n.cancel = context.WithCancel(context.WithoutCancel(ctx))

	listen := cfg.Listen
	if len(listen) == 0 {
		listen = DefaultListen
	}
	rm, err := resourceManager()
	if err != nil {
		_ = cm.Close()
		n.cancel()
		return nil, fmt.Errorf("discovery: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(sk),
		libp2p.ResourceManager(rm),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(tls.ID, tls.New),
		libp2p.Muxer(yamux.ID, muxer()),
		libp2p.ConnectionManager(cm),
		libp2p.UserAgent("kchat"),
		libp2p.DisableMetrics(),
		libp2p.EnableHolePunching(holepunch.WithTracer(holePunchLogger{n})),
		libp2p.EnableAutoNATv2(),
	}
	opts = append(opts, libp2p.ListenAddrStrings(listen...))
	if !cfg.NoNAT {
		opts = append(opts, libp2p.NATPortMap())
	}
	if cfg.Seed {
		opts = append(opts,
			libp2p.EnableRelayService(relayv2.WithLimit(&relayv2.RelayLimit{
				Duration: 10 * time.Minute,
				Data:     16 << 20,
			})),
			libp2p.ForceReachabilityPublic(),
			libp2p.EnableNATService(),
		)
	} else {
		var arOpts []autorelay.Option
		if n.explicit {
			// Own seeds: one relay candidate is enough to reserve a slot at once
			// (the default waits up to 3 minutes for 4 candidates).
			arOpts = append(arOpts, autorelay.WithMinCandidates(1))
		}
		opts = append(opts, libp2p.EnableAutoRelayWithPeerSource(n.relayCandidates, arOpts...))
	}
	if !cfg.NoDHT {
		opts = append(opts, libp2p.Routing(func(h host.Host) (routing.PeerRouting, error) {
			d, err := dht.New(h, n.dhtOptions(h)...)
			if err != nil {
				return nil, err
			}
			n.dht.Store(d)
			return d, nil
		}))
	}

	h, err := libp2p.New(opts...)
	if err != nil {
		if d := n.dht.Load(); d != nil {
			_ = d.Close()
		}
		_ = cm.Close()
		_ = rm.Close()
		n.cancel()
		return nil, fmt.Errorf("discovery: start libp2p host: %w", err)
	}
	n.host = h
	n.book.connectedness = h.Network().Connectedness
	n.book.onDrop = n.dropped
	n.notifiee = &network.NotifyBundle{
		ConnectedF:    func(_ network.Network, c network.Conn) { n.connChanged(c.RemotePeer()) },
		DisconnectedF: func(_ network.Network, c network.Conn) { n.connChanged(c.RemotePeer()) },
	}
	h.Network().Notify(n.notifiee)

	n.log.Info("libp2p host started", "peer", h.ID(), "addrs", n.Addrs(),
		"dht", !cfg.NoDHT, "mdns", !cfg.NoMDNS, "seed", cfg.Seed, "bootstrap", len(bootstrap))
	return n, nil
}

func parseBootstrap(list []string) ([]peer.AddrInfo, error) {
	if list == nil {
		return dht.GetDefaultBootstrapPeerAddrInfos(), nil
	}
	var addrs []multiaddr.Multiaddr
	for _, s := range list {
		if s == "none" || s == "" {
			continue
		}
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("bootstrap peer %q: %w", s, err)
		}
		if _, err := peer.AddrInfoFromP2pAddr(a); err != nil {
			return nil, fmt.Errorf("bootstrap peer %q: %w (a bootstrap address must end in /p2p/PEERID)", s, err)
		}
		addrs = append(addrs, a)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil {
		return nil, fmt.Errorf("bootstrap peers: %w", err)
	}
	return infos, nil
}

func (n *Node) dhtOptions(h host.Host) []dht.Option {
	mode := dht.ModeAuto
	if n.cfg.Seed {
		mode = dht.ModeServer
	}
	opts := []dht.Option{
		dht.Mode(mode),
		dht.BootstrapPeers(n.bootstrap...),
	}
	if !n.explicit {
		// The public Amino DHT: the same filters the dual DHT's WAN half uses.
		opts = append(opts,
			dht.QueryFilter(dht.PublicQueryFilter),
			dht.RoutingTableFilter(dht.PublicRoutingTableFilter),
			dht.RoutingTablePeerDiversityFilter(dht.NewRTPeerDiversityFilter(h,
				amino.DefaultMaxPeersPerIPGroupPerCpl, amino.DefaultMaxPeersPerIPGroup)),
			dht.AddressFilter(func(addrs []multiaddr.Multiaddr) []multiaddr.Multiaddr {
				return multiaddr.FilterAddrs(addrs, manet.IsPublicAddr)
			}),
		)
	}
	return opts
}

// Host returns the libp2p host (a routed host when the DHT is on: Connect to a
// peer id without addresses looks it up in the DHT).
func (n *Node) Host() host.Host { return n.host }

// Addrs returns the host's addresses with /p2p/<peer id>, ready to print and to
// pass to --peer or --bootstrap.
func (n *Node) Addrs() []multiaddr.Multiaddr {
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()})
	if err != nil {
		return nil
	}
	return addrs
}

// Book returns the peer bookkeeping.
func (n *Node) Book() *Book { return n.book }

// Found delivers discovered, connected peers: once per (topic, peer) per connection
// lifetime (a peer that disconnected and is found again is reported again). The
// channel is closed by Close. Consumers must keep draining it: discovery workers
// block (until Leave/Close) when it is full.
func (n *Node) Found() <-chan Found { return n.found }

// Join starts discovery for topic (a channel's 32-byte discovery id): an mDNS
// service named after it (unless NoMDNS; a failure to start it is logged, not
// fatal) and DHT advertise + find on the namespace "kchat/<hex topic>" (unless
// NoDHT). Joining a joined topic does nothing.
func (n *Node) Join(topic [32]byte) {
	n.joinMu.Lock()
	defer n.joinMu.Unlock()
	n.mu.Lock()
	if n.closed || n.topics[topic] != nil {
		n.mu.Unlock()
		return
	}
	ts := &topicState{topic: topic}
	ts.ctx, ts.cancel = context.WithCancel(n.ctx)
	n.topics[topic] = ts
	n.mu.Unlock()

	log := n.log.With("topic", shortTopic(topic))
	if !n.cfg.NoMDNS {
		svc, err := n.startMDNS(ts)
		if err != nil {
			log.Warn("mDNS not started; LAN discovery off for this channel", "err", err)
		} else {
			ts.mdns = svc
		}
	}
	if d := n.dht.Load(); d != nil {
		n.spawn(ts, func() { n.advertiseLoop(ts, d) })
		n.spawn(ts, func() { n.findLoop(ts, d) })
	}
	log.Info("joined topic", "mdns", ts.mdns != nil, "dht", n.dht.Load() != nil)
}

// Leave stops discovery for topic, unprotects its peers and forgets them in the
// Book. Connections stay open (other topics may use them); the connection manager
// may trim them later.
func (n *Node) Leave(topic [32]byte) {
	n.joinMu.Lock()
	defer n.joinMu.Unlock()
	n.mu.Lock()
	ts := n.topics[topic]
	if ts == nil {
		n.mu.Unlock()
		return
	}
	delete(n.topics, topic)
	ts.left = true
	n.mu.Unlock()

	n.stopTopic(ts)

	n.mu.Lock()
	tag := protectTag(topic)
	for p, m := range n.reported {
		if _, ok := m[topic]; ok {
			delete(m, topic)
			n.host.ConnManager().Unprotect(p, tag)
			if len(m) == 0 {
				delete(n.reported, p)
			}
		}
	}
	n.mu.Unlock()
	n.book.forget(topic)
}

func (n *Node) stopTopic(ts *topicState) {
	ts.cancel()
	if ts.mdns != nil {
		_ = ts.mdns.Close()
	}
	ts.wg.Wait()
}

// AddManual dials addr (a full multiaddr ending in /p2p/PEERID, as given to --peer)
// and reports it on Found for topic with Source "manual" (once per connection
// lifetime, like every Found). It works whether or not topic is joined and
// ignores Book.HoldOff. Without a deadline on ctx the dial times out after 20 s.
func (n *Node) AddManual(ctx context.Context, topic [32]byte, addr string) (peer.AddrInfo, error) {
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("peer address %q: %w (expected a multiaddr ending in /p2p/PEERID)", addr, err)
	}
	if ai.ID == n.self {
		return *ai, fmt.Errorf("peer address %q is this node", addr)
	}
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return *ai, errors.New("discovery: node closed")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, dialTimeout)
		defer cancel()
	}
	if err := n.connect(ctx, *ai); err != nil {
		return *ai, fmt.Errorf("dial %s: %w", addr, err)
	}
	if f, ok := n.markReported(topic, *ai, SourceManual); ok {
		// Deliver from a goroutine: the caller may be the one draining Found.
		n.spawn(nil, func() { n.deliver(n.ctx, f) })
	}
	return *ai, nil
}

// Close stops every discovery goroutine, the mDNS services, the DHT and the host,
// then closes the Found channel. It is safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.joinMu.Lock()
		defer n.joinMu.Unlock()
		n.mu.Lock()
		n.closed = true
		topics := make([]*topicState, 0, len(n.topics))
		for _, ts := range n.topics {
			ts.left = true
			topics = append(topics, ts)
		}
		n.topics = make(map[[32]byte]*topicState)
		n.mu.Unlock()

		n.cancel()
		for _, ts := range topics {
			n.stopTopic(ts)
		}
		n.wg.Wait()
		n.host.Network().StopNotify(n.notifiee)
		var errs []error
		if d := n.dht.Load(); d != nil {
			if err := d.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close dht: %w", err))
			}
		}
		if err := n.host.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close host: %w", err))
		}
		close(n.found)
		n.closeErr = errors.Join(errs...)
		n.log.Info("discovery stopped")
	})
	return n.closeErr
}

// spawn runs f in a goroutine tracked by the Node (and by ts when not nil) unless
// the Node is closed or ts was left.
func (n *Node) spawn(ts *topicState, f func()) bool {
	if !n.enter(ts) {
		return false
	}
	go func() {
		defer n.exit(ts)
		f()
	}()
	return true
}

// enter registers work on behalf of ts (nil: the Node); it fails after Leave/Close.
func (n *Node) enter(ts *topicState) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || (ts != nil && ts.left) {
		return false
	}
	n.wg.Add(1)
	if ts != nil {
		ts.wg.Add(1)
	}
	return true
}

func (n *Node) exit(ts *topicState) {
	if ts != nil {
		ts.wg.Done()
	}
	n.wg.Done()
}

// connect dials ai, accepting a relayed (limited) connection. A peer we reach
// only through a relay so far (it dialled us via the relay) gets one direct dial
// first: discovery may have just learnt a direct address of it.
func (n *Node) connect(ctx context.Context, ai peer.AddrInfo) error {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if n.host.Network().Connectedness(ai.ID) == network.Limited && hasDirectAddr(ai) {
		dctx, dcancel := context.WithTimeout(network.WithForceDirectDial(ctx, "kchat discovery: upgrade relayed peer"), directUpgradeTimeout)
		err := n.host.Connect(dctx, ai)
		dcancel()
		if err == nil {
			return nil
		}
		n.log.Debug("direct dial of relayed peer failed; keeping the relayed connection", "peer", ai.ID, "err", err)
	}
	return n.host.Connect(network.WithAllowLimitedConn(ctx, "kchat discovery"), ai)
}

func hasDirectAddr(ai peer.AddrInfo) bool {
	for _, a := range ai.Addrs {
		if _, err := a.ValueForProtocol(multiaddr.P_CIRCUIT); err != nil {
			return true
		}
	}
	return false
}

// shouldDial is a cheap pre-check for a discovered peer. A peer whose dial
// failed is not dialled again before its backoff ends, unless it is found
// with other addresses than the ones that failed: a NATed peer first
// advertises addresses nobody can reach, then its relay address, and
// finding the new one must not wait for the old failure's backoff.
func (n *Node) shouldDial(topic [32]byte, ai peer.AddrInfo) bool {
	p := ai.ID
	if p == "" || p == n.self || n.book.heldOff(topic, p) {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.reported[p][topic]; ok {
		return false
	}
	if _, ok := n.dialing[topicPeer{topic, p}]; ok {
		return false
	}
	if f := n.dialFails[p]; f != nil && timeNow().Before(f.until) && (len(ai.Addrs) == 0 || addrSetKey(ai.Addrs) == f.addrs) {
		return false
	}
	return true
}

// handleFound dials a discovered peer and reports it. Concurrent and repeated
// calls for the same (topic, peer) collapse into one dial and one report.
func (n *Node) handleFound(ctx context.Context, topic [32]byte, ai peer.AddrInfo, src Source) {
	if !n.shouldDial(topic, ai) {
		return
	}
	k := topicPeer{topic, ai.ID}
	n.mu.Lock()
	if _, ok := n.dialing[k]; ok {
		n.mu.Unlock()
		return
	}
	n.dialing[k] = struct{}{}
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.dialing, k)
		n.mu.Unlock()
	}()

	start := timeNow()
	if err := n.connect(ctx, ai); err != nil {
		if ctx.Err() == nil {
			n.noteDialFailure(ai)
			n.log.Debug("dial of discovered peer failed", "topic", shortTopic(topic), "peer", ai.ID, "source", src, "err", err)
		}
		return
	}
	n.noteDialSuccess(ai.ID)
	f, ok := n.markReported(topic, ai, src)
	if !ok {
		return
	}
	n.log.Info("peer found", "topic", shortTopic(topic), "peer", ai.ID, "source", f.Source, "dial", timeNow().Sub(start))
	n.deliver(ctx, f)
}

// markReported records that (topic, ai.ID) is reported for the current connection
// lifetime, books and protects the peer. It returns false if it was reported
// already or the connection is gone.
func (n *Node) markReported(topic [32]byte, ai peer.AddrInfo, src Source) (Found, bool) {
	p := ai.ID
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.reported[p][topic]; ok {
		return Found{}, false
	}
	switch n.host.Network().Connectedness(p) {
	case network.Connected:
	case network.Limited:
		if src == SourceDHT {
			src = SourceRelay
		}
	default:
		return Found{}, false
	}
	m := n.reported[p]
	if m == nil {
		m = make(map[[32]byte]struct{})
		n.reported[p] = m
	}
	m[topic] = struct{}{}

	var remote []multiaddr.Multiaddr
	for _, c := range n.host.Network().ConnsToPeer(p) {
		remote = append(remote, c.RemoteMultiaddr())
	}
	n.book.reported(topic, p, src, remote)
	n.host.ConnManager().Protect(p, protectTag(topic))

	out := peer.AddrInfo{ID: p, Addrs: ai.Addrs}
	if len(out.Addrs) == 0 {
		out.Addrs = n.host.Peerstore().Addrs(p)
	}
	return Found{Topic: topic, Peer: out, Source: src}, true
}

func (n *Node) deliver(ctx context.Context, f Found) {
	select {
	case n.found <- f:
	case <-ctx.Done():
	}
}

// connChanged runs on every connection open/close of p (network notifiee). Once the
// last connection is gone, p may be reported again and loses its protection.
func (n *Node) connChanged(p peer.ID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch n.host.Network().Connectedness(p) {
	case network.Connected, network.Limited:
	default:
		for topic := range n.reported[p] {
			n.host.ConnManager().Unprotect(p, protectTag(topic))
		}
		delete(n.reported, p)
	}
	n.book.connChanged(p)
}

// dropped is the Book's MarkDropped hook.
func (n *Node) dropped(topic [32]byte, p peer.ID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if m := n.reported[p]; m != nil {
		delete(m, topic)
		if len(m) == 0 {
			delete(n.reported, p)
		}
	}
	n.host.ConnManager().Unprotect(p, protectTag(topic))
}

func (n *Node) noteDialFailure(ai peer.AddrInfo) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f := n.dialFails[ai.ID]
	if f == nil {
		f = &failState{wait: dialFailBackoff.min}
		n.dialFails[ai.ID] = f
	} else {
		f.wait = dialFailBackoff.next(f.wait)
	}
	f.until = timeNow().Add(jitter(f.wait))
	f.addrs = addrSetKey(ai.Addrs)
}

func (n *Node) noteDialSuccess(p peer.ID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.dialFails, p)
}

// relayCandidates is the auto-relay peer source: the seed nodes of an explicit
// bootstrap list, then DHT routing-table peers (DHT servers; on the public network
// most run a relay v2 service).
func (n *Node) relayCandidates(ctx context.Context, num int) <-chan peer.AddrInfo {
	if num < 0 {
		num = 0
	}
	out := make(chan peer.AddrInfo, num)
	defer close(out)
	seen := make(map[peer.ID]bool)
	add := func(ai peer.AddrInfo) bool {
		if len(out) >= num {
			return false
		}
		if seen[ai.ID] || ai.ID == n.self {
			return true
		}
		seen[ai.ID] = true
		out <- ai
		return true
	}
	if n.explicit {
		for _, ai := range n.bootstrap {
			if !add(ai) {
				return out
			}
		}
	}
	if d := n.dht.Load(); d != nil {
		for _, p := range d.RoutingTable().ListPeers() {
			if !add(peer.AddrInfo{ID: p, Addrs: d.Host().Peerstore().Addrs(p)}) {
				break
			}
		}
	}
	return out
}

func protectTag(topic [32]byte) string {
	return protectPrefix + shortTopic(topic)
}

// holePunchLogger logs DCUtR hole punching (attempted when a peer is reached
// through a relay) into the discovery log.
type holePunchLogger struct{ n *Node }

func (h holePunchLogger) Trace(e *holepunch.Event) {
	log := h.n.log.With("peer", e.Remote)
	switch ev := e.Evt.(type) {
	case *holepunch.DirectDialEvt:
		log.Info("hole punch: direct dial", "success", ev.Success, "took", ev.EllapsedTime, "err", ev.Error)
	case *holepunch.StartHolePunchEvt:
		log.Info("hole punch: started", "remote_addrs", ev.RemoteAddrs, "rtt", ev.RTT)
	case *holepunch.EndHolePunchEvt:
		log.Info("hole punch: finished", "success", ev.Success, "took", ev.EllapsedTime, "err", ev.Error)
	case *holepunch.ProtocolErrorEvt:
		log.Info("hole punch: protocol error", "err", ev.Error)
	}
}

// muxer is libp2p's yamux with fewer wake-ups on quiet connections. A node
// holds a connection to most peers it met in the DHT, not only to its mesh,
// and yamux pinged each one twice every 30 s: once to measure the round
// trip (used only to size stream windows, which chat never fills) and once
// as a keepalive when nothing arrived. At 48 seeds that was a quarter of an
// idle node's wake-ups. The round trip is measured when a connection opens
// and then every 10 minutes; a connection on which nothing arrived for 60 s
// is pinged (a session pings after 10 quiet seconds, so only
// connections without a session ever need one), and closed if the ping gets
// no answer.
func muxer() *yamux.Transport {
	t := *yamux.DefaultTransport
	t.MeasureRTTInterval = 10 * time.Minute
	t.KeepAliveInterval = time.Minute
	return &t
}
