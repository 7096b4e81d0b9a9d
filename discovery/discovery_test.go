package discovery

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/multiformats/go-multiaddr"

	"go.uber.org/goleak"

	"github.com/kchat-p2p/kchat/internal/testutil"
)

func TestHostKeyPersisted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "hostkey")
	cfg := localConfig(t)
	cfg.NoDHT = true
	cfg.HostKeyPath = path

	n1 := startNode(t, cfg)
	id1 := n1.Host().ID()
	if err := n1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("host key not written: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("host key mode %v, want 0600", st.Mode().Perm())
	}
	before, _ := os.ReadFile(path)

	n2 := startNode(t, cfg)
	if n2.Host().ID() != id1 {
		t.Fatalf("peer id changed across restarts: %s then %s", id1, n2.Host().ID())
	}
	n2.Close()
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("host key file rewritten on restart")
	}

	// A different path gives a different identity.
	cfg3 := cfg
	cfg3.HostKeyPath = filepath.Join(t.TempDir(), "other")
	if n3 := startNode(t, cfg3); n3.Host().ID() == id1 {
		t.Fatal("two key files gave the same peer id")
	}
}

func TestHostKeyCorrupt(t *testing.T) {
	for name, content := range map[string][]byte{
		"garbage":   []byte("this is not a key\n"),
		"empty":     {},
		"truncated": nil, // filled below
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "hostkey")
			if name == "truncated" {
				if _, err := LoadOrCreateHostKey(path); err != nil {
					t.Fatal(err)
				}
				full, _ := os.ReadFile(path)
				content = full[:len(full)/2]
			}
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := localConfig(t)
			cfg.NoDHT = true
			cfg.HostKeyPath = path
			n, err := Start(context.Background(), cfg)
			if err == nil {
				n.Close()
				t.Fatal("Start accepted a corrupt host key")
			}
			if !errors.Is(err, ErrCorruptHostKey) {
				t.Fatalf("error %v does not wrap ErrCorruptHostKey", err)
			}
			t.Logf("error as the user sees it: %v", err)
			got, _ := os.ReadFile(path)
			if !bytes.Equal(got, content) {
				t.Fatal("corrupt host key file was modified")
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, bs := range [][]string{
		{"/ip4/127.0.0.1/tcp/4001"}, // no /p2p/
		{"not a multiaddr"},
	} {
		cfg := localConfig(t, bs...)
		if n, err := Start(context.Background(), cfg); err == nil {
			n.Close()
			t.Fatalf("Start accepted bootstrap %q", bs)
		} else {
			t.Logf("bootstrap %q: %v", bs, err)
		}
	}
	infos, err := parseBootstrap([]string{"none"})
	if err != nil || len(infos) != 0 {
		t.Fatalf(`parseBootstrap(["none"]) = %v, %v; want empty`, infos, err)
	}
	if infos, _ := parseBootstrap(nil); len(infos) == 0 {
		t.Fatal("nil bootstrap should mean the default public list")
	}
}

func TestServiceNames(t *testing.T) {
	topic := testTopic("names")
	name := MDNSServiceName(topic)
	if len(name) > 63 || name[:7] != "_kchat-" || name[len(name)-5:] != "._udp" {
		t.Fatalf("bad mDNS service name %q", name)
	}
	if MDNSServiceName(testTopic("other")) == name {
		t.Fatal("two topics share an mDNS service name")
	}
	if ns := TopicNamespace(topic); len(ns) != len("kchat/")+64 {
		t.Fatalf("bad namespace %q", ns)
	}
}

// TestManualBookAndDedupe covers AddManual, the Book's connect / disconnect / drop
// tracking, Found's once-per-connection dedupe under concurrent repeated reports
// (as mDNS produces), and HoldOff.
func TestManualBookAndDedupe(t *testing.T) {
	topic := testTopic("book")
	cfgA, cfgB := localConfig(t), localConfig(t)
	cfgA.NoDHT, cfgB.NoDHT = true, true
	a, b := startNode(t, cfgA), startNode(t, cfgB)
	bID := b.Host().ID()

	if _, err := a.AddManual(context.Background(), topic, "/ip4/127.0.0.1/tcp/1"); err == nil {
		t.Fatal("AddManual accepted an address without /p2p/")
	}

	ai, err := a.AddManual(context.Background(), topic, tcpAddr(t, b))
	if err != nil {
		t.Fatalf("AddManual: %v", err)
	}
	if ai.ID != bID {
		t.Fatalf("AddManual returned %s, want %s", ai.ID, bID)
	}
	f, _ := waitFound(t, a, 10*time.Second, foundPeer(topic, bID))
	if f.Source != SourceManual {
		t.Fatalf("source %q, want manual", f.Source)
	}
	peers := a.Book().Peers(topic)
	if len(peers) != 1 || peers[0].ID != bID || !peers[0].Connected || peers[0].Source != SourceManual ||
		len(peers[0].Addrs) == 0 || peers[0].FirstSeen.IsZero() {
		t.Fatalf("book after manual add: %+v", peers)
	}
	if !a.Host().ConnManager().IsProtected(bID, protectTag(topic)) {
		t.Fatal("found peer not protected from connection trimming")
	}

	// Repeated, concurrent reports of a connected peer (mDNS callbacks) are not
	// reported again.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.handleFound(context.Background(), topic, peer.AddrInfo{ID: bID, Addrs: b.Host().Addrs()}, SourceMDNS)
		}()
	}
	wg.Wait()
	select {
	case f := <-a.Found():
		t.Fatalf("duplicate report %+v", f)
	default:
	}

	// Disconnect: the book notices, with a reason, and protection is lifted.
	if err := b.Host().Network().ClosePeer(a.Host().ID()); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "book to mark the peer disconnected", func() bool {
		p := a.Book().Peers(topic)
		return len(p) == 1 && !p[0].Connected && p[0].Dropped == "connection closed"
	})
	if a.Host().ConnManager().IsProtected(bID, protectTag(topic)) {
		t.Fatal("disconnected peer still protected")
	}

	// A new connection lifetime: concurrent reports give exactly one Found.
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.handleFound(context.Background(), topic, peer.AddrInfo{ID: bID, Addrs: b.Host().Addrs()}, SourceMDNS)
		}()
	}
	wg.Wait()
	f, _ = waitFound(t, a, 10*time.Second, foundPeer(topic, bID))
	if f.Source != SourceMDNS {
		t.Fatalf("source %q, want mdns", f.Source)
	}
	select {
	case f := <-a.Found():
		t.Fatalf("duplicate report after reconnect %+v", f)
	default:
	}
	if p := a.Book().Peers(topic); len(p) != 1 || !p[0].Connected || p[0].Dropped != "" || p[0].Source != SourceMDNS {
		t.Fatalf("book after reconnect: %+v", p)
	}

	// Replication drops the peer: recorded with the reason, unprotected, and held
	// off so discovery does not redial it.
	a.Book().MarkDropped(topic, bID, "invalid batch")
	a.Book().HoldOff(topic, bID, time.Hour)
	p := a.Book().Peers(topic)
	if len(p) != 1 || p[0].Connected || p[0].Dropped != "invalid batch" {
		t.Fatalf("book after MarkDropped: %+v", p)
	}
	if a.Host().ConnManager().IsProtected(bID, protectTag(topic)) {
		t.Fatal("dropped peer still protected")
	}
	a.handleFound(context.Background(), topic, peer.AddrInfo{ID: bID, Addrs: b.Host().Addrs()}, SourceMDNS)
	select {
	case f := <-a.Found():
		t.Fatalf("held-off peer reported %+v", f)
	default:
	}
	// A connection event does not silently revive an explicitly dropped peer.
	a.Book().connChanged(bID)
	if p := a.Book().Peers(topic); p[0].Connected || p[0].Dropped != "invalid batch" {
		t.Fatalf("dropped peer revived: %+v", p)
	}
	// The user can still add it by hand.
	a.Book().HoldOff(topic, bID, 0)
	if _, err := a.AddManual(context.Background(), topic, tcpAddr(t, b)); err != nil {
		t.Fatal(err)
	}
	waitFound(t, a, 10*time.Second, foundPeer(topic, bID))

	// Seen adds an inbound peer (one that dialled us) to B's book.
	b.Book().Seen(topic, a.Host().ID())
	if p := b.Book().Peers(topic); len(p) != 1 || p[0].Source != SourceInbound || !p[0].Connected {
		t.Fatalf("inbound peer in book: %+v", p)
	}

	// Leave forgets the topic.
	a.Join(topic)
	a.Leave(topic)
	if p := a.Book().Peers(topic); len(p) != 0 {
		t.Fatalf("book after Leave: %+v", p)
	}
	if a.Host().ConnManager().IsProtected(bID, protectTag(topic)) {
		t.Fatal("peer still protected after Leave")
	}
	if a.Host().Network().Connectedness(bID) != network.Connected {
		t.Fatal("Leave closed the connection")
	}
}

// dhtNet is a private DHT on 127.0.0.1: seeds (DHT servers + relays) and clients
// bootstrapping to them.
type dhtNet struct {
	seeds []*Node
}

func newDHTNet(t testing.TB, seeds int) *dhtNet {
	d := &dhtNet{}
	first := localConfig(t) // empty bootstrap list: a first node
	first.Seed = true
	d.seeds = append(d.seeds, startNode(t, first))
	for i := 1; i < seeds; i++ {
		cfg := localConfig(t, tcpAddr(t, d.seeds[0]))
		cfg.Seed = true
		d.seeds = append(d.seeds, startNode(t, cfg))
	}
	// The seeds see each other as DHT servers before clients arrive.
	for _, s := range d.seeds[1:] {
		testutil.Eventually(t, 20*time.Second, "seeds to fill their routing tables", func() bool {
			return s.dht.Load().RoutingTable().Size() > 0
		})
	}
	return d
}

func (d *dhtNet) client(t testing.TB, seedIdx ...int) *Node {
	var bs []string
	for _, i := range seedIdx {
		bs = append(bs, tcpAddr(t, d.seeds[i]))
	}
	return startNode(t, localConfig(t, bs...))
}

// observed records the DHT loop hooks of a node.
type observed struct {
	mu         sync.Mutex
	advertised map[[32]byte]int
	rounds     map[[32]byte]int
	providers  map[[32]byte]map[peer.ID]bool
}

func observe(n *Node) *observed {
	o := &observed{
		advertised: map[[32]byte]int{},
		rounds:     map[[32]byte]int{},
		providers:  map[[32]byte]map[peer.ID]bool{},
	}
	n.hooks = &testHooks{
		advertised: func(topic [32]byte) {
			o.mu.Lock()
			o.advertised[topic]++
			o.mu.Unlock()
		},
		findRound: func(topic [32]byte, ps []peer.ID) {
			o.mu.Lock()
			o.rounds[topic]++
			if o.providers[topic] == nil {
				o.providers[topic] = map[peer.ID]bool{}
			}
			for _, p := range ps {
				o.providers[topic][p] = true
			}
			o.mu.Unlock()
		},
	}
	return o
}

func (o *observed) get(topic [32]byte) (adv, rounds int, providers map[peer.ID]bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ps := map[peer.ID]bool{}
	for p := range o.providers[topic] {
		ps[p] = true
	}
	return o.advertised[topic], o.rounds[topic], ps
}

// TestDHTRendezvous: two seeds and three clients on 127.0.0.1. A and B join topic
// X (bootstrapping through different seeds), C joins topic Y. A and B find each
// other through the DHT alone; C finds neither and neither finds C.
func TestDHTRendezvous(t *testing.T) {
	net := newDHTNet(t, 2)
	x, y := testTopic("dht-x"), testTopic("dht-y")
	a := net.client(t, 0)
	b := net.client(t, 1)
	c := net.client(t, 0, 1)
	oa, ob, oc := observe(a), observe(b), observe(c)

	start := time.Now()
	c.Join(y)
	a.Join(x)
	b.Join(x)

	fb, otherB := waitFound(t, b, 30*time.Second, foundPeer(x, a.Host().ID()))
	tB := time.Since(start)
	fa, otherA := waitFound(t, a, 30*time.Second, foundPeer(x, b.Host().ID()))
	tA := time.Since(start)
	t.Logf("time to first peer via DHT (joined together): B found A after %s, A found B after %s", fmtDur(tB), fmtDur(tA))
	for _, f := range []Found{fa, fb} {
		if f.Source != SourceDHT {
			t.Fatalf("source %q, want dht", f.Source)
		}
	}
	for _, f := range append(otherA, otherB...) {
		t.Fatalf("unexpected report %+v", f)
	}

	// Negative check for C: wait until both A and B have advertised X and C has
	// then completed two more lookups of Y; C must have seen no provider and
	// reported nothing, and A/B must not have reported C.
	testutil.Eventually(t, 30*time.Second, "A and B to advertise", func() bool {
		advA, _, _ := oa.get(x)
		advB, _, _ := ob.get(x)
		return advA > 0 && advB > 0
	})
	_, roundsC, _ := oc.get(y)
	testutil.Eventually(t, 30*time.Second, "C to complete two more lookups", func() bool {
		_, r, _ := oc.get(y)
		return r >= roundsC+2
	})
	if _, _, ps := oc.get(y); len(ps) != 0 {
		t.Fatalf("C saw providers for its topic: %v", ps)
	}
	// C is on the same DHT: a lookup of X's discovery id from C does return A
	// and B. Only the id decides who finds whom.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := map[peer.ID]bool{}
	for ai := range c.dht.Load().FindProvidersAsync(ctx, topicCID(x), 10) {
		got[ai.ID] = true
	}
	if !got[a.Host().ID()] || !got[b.Host().ID()] {
		t.Fatalf("lookup of X from C returned %v, want A and B", got)
	}
	for _, n := range []*Node{a, b, c} {
		select {
		case f := <-n.Found():
			t.Fatalf("%s reported %+v", n.Host().ID(), f)
		default:
		}
	}
	if p := c.Book().Peers(y); len(p) != 0 {
		t.Fatalf("C's book: %+v", p)
	}
	if p := a.Book().Peers(x); len(p) != 1 || p[0].ID != b.Host().ID() || p[0].Source != SourceDHT {
		t.Fatalf("A's book: %+v", p)
	}
}

// TestCloseNoGoroutineLeak runs a DHT of four nodes through join, discovery,
// manual adds and leave, closes everything and checks the goroutine count returns
// to where it was.
func TestCloseNoGoroutineLeak(t *testing.T) {
	// Warm up process-wide lazily started goroutines of the libraries.
	func() {
		cfg := localConfig(t)
		cfg.Seed = true
		n, err := Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		n.Join(testTopic("warmup"))
		n.Close()
	}()
	// Goroutines alive now (the libraries' process-wide ones, and the
	// warm-up's winding down) are not this test's.
	ignore := goleak.IgnoreCurrent()

	func() {
		var nodes []*Node
		st := func(cfg Config) *Node {
			n, err := Start(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			nodes = append(nodes, n)
			return n
		}
		defer func() {
			for _, n := range nodes {
				if err := n.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
				if err := n.Close(); err != nil { // idempotent
					t.Errorf("second Close: %v", err)
				}
			}
			for _, n := range nodes {
				for range n.Found() { // closed by Close: this loop ends
				}
			}
		}()
		seedCfg := localConfig(t)
		seedCfg.Seed = true
		seed := st(seedCfg)
		a := st(localConfig(t, tcpAddr(t, seed)))
		b := st(localConfig(t, tcpAddr(t, seed)))
		c := st(localConfig(t, tcpAddr(t, seed)))
		x := testTopic("leak")
		a.Join(x)
		b.Join(x)
		c.Join(testTopic("leak-other"))
		waitFound(t, b, 30*time.Second, foundPeer(x, a.Host().ID()))
		if _, err := c.AddManual(context.Background(), x, tcpAddr(t, a)); err != nil {
			t.Fatal(err)
		}
		a.Leave(x)
		a.Join(x)
		// Leave the Found channels undrained: Close must not hang on them.
	}()
	testutil.NoLeakedGoroutines(t, 15*time.Second, ignore)
}

// BenchmarkFirstPeerDHT measures, on a private DHT of one seed and two clients on
// 127.0.0.1, the time from both clients joining a topic together until the first
// and until both have found the other. Each iteration uses fresh nodes.
func BenchmarkFirstPeerDHT(b *testing.B) {
	var first, both time.Duration
	for i := 0; i < b.N; i++ {
		seedCfg := localConfig(b)
		seedCfg.Seed = true
		seed := startNode(b, seedCfg)
		n1 := startNode(b, localConfig(b, tcpAddr(b, seed)))
		n2 := startNode(b, localConfig(b, tcpAddr(b, seed)))
		topic := testTopic("bench-dht-" + time.Now().String())
		start := time.Now()
		n1.Join(topic)
		n2.Join(topic)
		f, a := waitBothFound(b, n1, n2, start)
		first += f
		both += a
		for _, n := range []*Node{n1, n2, seed} {
			n.Close()
		}
	}
	b.ReportMetric(float64(first.Milliseconds())/float64(b.N), "ms-first-peer")
	b.ReportMetric(float64(both.Milliseconds())/float64(b.N), "ms-both-found")
	b.ReportMetric(0, "ns/op")
}

// TestRelayedPeer: a seed runs the circuit relay v2 service; B holds a reservation
// on it and A reaches B only through the relay. The dial is accepted as a limited
// connection and reported with Source "relay"; replication must open its streams
// with network.WithAllowLimitedConn (checked here with a stream).
func TestRelayedPeer(t *testing.T) {
	seedCfg := localConfig(t)
	seedCfg.Seed = true
	seedCfg.NoDHT = true
	seed := startNode(t, seedCfg)
	cfgA, cfgB := localConfig(t), localConfig(t)
	cfgA.NoDHT, cfgB.NoDHT = true, true
	a, b := startNode(t, cfgA), startNode(t, cfgB)
	seedInfo := peer.AddrInfo{ID: seed.Host().ID(), Addrs: seed.Host().Addrs()}

	// The relay service starts once the seed's (forced public) reachability is
	// announced: retry the reservation until it is up.
	var resErr error
	testutil.Eventually(t, 20*time.Second, "a relay reservation on the seed", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, resErr = client.Reserve(ctx, b.Host(), seedInfo)
		return resErr == nil
	})

	const proto = "/kchat/test-limited/1"
	b.Host().SetStreamHandler(proto, func(s network.Stream) {
		s.Write([]byte("ok"))
		s.Close()
	})

	topic := testTopic("relay")
	circuit, err := multiaddr.NewMultiaddr(tcpAddr(t, seed) + "/p2p-circuit")
	if err != nil {
		t.Fatal(err)
	}
	a.handleFound(context.Background(), topic, peer.AddrInfo{ID: b.Host().ID(), Addrs: []multiaddr.Multiaddr{circuit}}, SourceDHT)
	f, _ := waitFound(t, a, 10*time.Second, foundPeer(topic, b.Host().ID()))
	if f.Source != SourceRelay {
		t.Fatalf("source %q, want relay", f.Source)
	}
	if p := a.Book().Peers(topic); len(p) != 1 || !p[0].Connected || !p[0].Limited {
		t.Fatalf("book: %+v", p)
	}

	// Without WithAllowLimitedConn NewStream does not use the relayed connection:
	// it tries for a direct one until its context ends...
	short, cancelShort := context.WithTimeout(context.Background(), time.Second)
	defer cancelShort()
	if s, err := a.Host().NewStream(short, b.Host().ID(), proto); err == nil {
		s.Reset()
		t.Fatal("stream opened over a limited connection without WithAllowLimitedConn")
	}
	// ...with it, the stream runs over the relay.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := a.Host().NewStream(network.WithAllowLimitedConn(ctx, "kchat sync"), b.Host().ID(), proto)
	if err != nil {
		t.Fatalf("stream over relay: %v", err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ok" {
		t.Fatalf("read over relay: %q %v", buf, err)
	}
	s.Close()

	// B now discovers A with A's direct addresses: B holds only the relayed
	// connection A opened, so discovery dials A directly, reports it as a DHT
	// peer, and A's book sees the connection become direct.
	b.handleFound(context.Background(), topic, peer.AddrInfo{ID: a.Host().ID(), Addrs: a.Host().Addrs()}, SourceDHT)
	f, _ = waitFound(t, b, 10*time.Second, foundPeer(topic, a.Host().ID()))
	if f.Source != SourceDHT {
		t.Fatalf("B's report of A: source %q, want dht", f.Source)
	}
	if b.Host().Network().Connectedness(a.Host().ID()) != network.Connected {
		t.Fatal("no direct connection after discovery found direct addresses")
	}
	testutil.Eventually(t, 10*time.Second, "A's book to see a direct connection", func() bool {
		p := a.Book().Peers(topic)
		return len(p) == 1 && p[0].Connected && !p[0].Limited
	})
}

// TestDialBackoffKeyedByAddrs: a peer whose dial failed is not dialled
// again during its backoff with the same addresses, but is at once when it
// is found with other ones (a NATed peer's relay address after its
// unreachable private one).
func TestDialBackoffKeyedByAddrs(t *testing.T) {
	n := startNode(t, localConfig(t))
	topic := testTopic("backoff")
	other := startNode(t, localConfig(t))
	private := multiaddr.StringCast("/ip4/192.168.201.2/tcp/4001")
	relayed := multiaddr.StringCast("/ip4/127.0.0.1/tcp/4001/p2p/" + n.host.ID().String() + "/p2p-circuit")
	failed := peer.AddrInfo{ID: other.host.ID(), Addrs: []multiaddr.Multiaddr{private}}
	if !n.shouldDial(topic, failed) {
		t.Fatal("a new peer is not dialled")
	}
	n.noteDialFailure(failed)
	if n.shouldDial(topic, failed) {
		t.Fatal("redialled with the addresses that just failed")
	}
	if n.shouldDial(topic, peer.AddrInfo{ID: failed.ID}) {
		t.Fatal("redialled with no addresses during the backoff")
	}
	if !n.shouldDial(topic, peer.AddrInfo{ID: failed.ID, Addrs: []multiaddr.Multiaddr{private, relayed}}) {
		t.Fatal("not dialled when found with a new address")
	}
}
