// Command probe runs a bare discovery.Node, for scripts/netns-discovery.sh: it
// exercises mDNS, the DHT through a seed, relays and hole punching between network
// namespaces without the rest of kchat. It prints machine-readable lines:
//
//	ADDR <multiaddr>                    at start, one per listen address
//	FOUND <peer> <source> <ms>          a peer of the topic was found and dialled
//	CONN <peer> limited|direct <ms>     connection state right after FOUND
//	DIRECT <peer> <ms>                  a direct connection to a relayed peer appeared
//	RELAYADDR <ms>                      this node got a relay (p2p-circuit) address
//	TIMEOUT                             -wait ended without a peer
//
// Times are since the topic was joined. With -wait 0 it runs until SIGINT/SIGTERM
// (a seed); otherwise it exits after the first peer (and -direct-wait for a direct
// connection), or with status 1 on timeout.
package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kchat-p2p/kchat/discovery"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	var listen, bootstrap, peers list
	flag.Var(&listen, "listen", "listen multiaddr (repeatable)")
	flag.Var(&bootstrap, "bootstrap", "bootstrap multiaddr (repeatable; none = first node); required")
	flag.Var(&peers, "peer", "peer multiaddr to add manually (repeatable)")
	seed := flag.Bool("seed", false, "DHT server + relay service")
	noMDNS := flag.Bool("no-mdns", false, "disable mDNS")
	noDHT := flag.Bool("no-dht", false, "disable the DHT")
	noNAT := flag.Bool("no-nat", false, "disable port mapping")
	topicName := flag.String("topic", "", "topic name (hashed to the 32-byte discovery id); empty: join nothing")
	wait := flag.Duration("wait", 0, "exit after the first peer or this timeout (0: run until signalled)")
	directWait := flag.Duration("direct-wait", 0, "after a relayed FOUND, wait this long for a direct connection")
	stay := flag.Duration("stay", 0, "after the first peer, keep running this long (so the other side can find us too)")
	keyPath := flag.String("key", "", "host key file (default: ephemeral)")
	logFile := flag.String("log", "", "write logs to this file")
	flag.Parse()
	if len(bootstrap) == 0 && !*noDHT {
		fmt.Fprintln(os.Stderr, "probe: -bootstrap is required (never the public list here); use -bootstrap none for a first node")
		os.Exit(2)
	}

	var logger *slog.Logger
	if *logFile != "" {
		f, err := os.OpenFile(*logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, "probe:", err)
			os.Exit(2)
		}
		defer f.Close()
		logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	discovery.RouteLibraryLogs(logger)
	cfg := discovery.Config{
		HostKeyPath: *keyPath,
		Bootstrap:   []string(bootstrap),
		NoMDNS:      *noMDNS,
		NoDHT:       *noDHT,
		NoNAT:       *noNAT,
		Seed:        *seed,
		Logger:      logger,
	}
	if len(listen) > 0 {
		cfg.Listen = listen
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := discovery.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
	defer n.Close()
	for _, a := range n.Addrs() {
		fmt.Println("ADDR", a)
	}

	if *topicName == "" {
		<-ctx.Done()
		return
	}
	topic := sha256.Sum256([]byte("kchat/probe/" + *topicName))
	start := time.Now()
	n.Join(topic)
	for _, p := range peers {
		if _, err := n.AddManual(ctx, topic, p); err != nil {
			fmt.Fprintln(os.Stderr, "probe:", err)
		}
	}
	ms := func() int64 { return time.Since(start).Milliseconds() }
	go watchRelayAddr(ctx, n, ms)

	var timeout <-chan time.Time
	if *wait > 0 {
		timeout = time.After(*wait)
	}
	for {
		select {
		case f := <-n.Found():
			fmt.Println("FOUND", f.Peer.ID, f.Source, ms())
			limited := n.Host().Network().Connectedness(f.Peer.ID) == network.Limited
			state := "direct"
			if limited {
				state = "limited"
			}
			fmt.Println("CONN", f.Peer.ID, state, ms())
			if *wait == 0 {
				continue
			}
			if limited && *directWait > 0 {
				if waitDirect(ctx, n, f.Peer.ID, *directWait) {
					fmt.Println("DIRECT", f.Peer.ID, ms())
				} else {
					fmt.Println("NODIRECT", f.Peer.ID, ms())
				}
			}
			if *stay > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(*stay):
				}
			}
			return
		case <-timeout:
			fmt.Println("TIMEOUT")
			// What the node could see, for the script's failure report.
			for _, p := range n.Host().Network().Peers() {
				fmt.Println("CONNECTED", p, n.Host().Network().Connectedness(p))
			}
			n.Close()
			os.Exit(1)
		case <-ctx.Done():
			return
		}
	}
}

// watchRelayAddr prints RELAYADDR once the host advertises a circuit address
// (auto-relay obtained a reservation).
func watchRelayAddr(ctx context.Context, n *discovery.Node, ms func() int64) {
	sub, err := n.Host().EventBus().Subscribe(new(event.EvtLocalAddressesUpdated))
	if err != nil {
		return
	}
	defer sub.Close()
	for {
		for _, a := range n.Host().Addrs() {
			if strings.Contains(a.String(), "/p2p-circuit") {
				fmt.Println("RELAYADDR", ms())
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-sub.Out():
		}
	}
}

// waitDirect polls until a non-limited connection to p exists (hole punching).
func waitDirect(ctx context.Context, n *discovery.Node, p peer.ID, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if n.Host().Network().Connectedness(p) == network.Connected {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false
}
