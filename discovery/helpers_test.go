package discovery

import (
	"context"
	"crypto/sha256"
	"fmt"
	"github.com/kchat-p2p/kchat/internal/testutil"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// inNamespaceEnv is set in the environment of a test binary re-executed inside a
// network namespace made by the test (unshare -rn). Only there may mDNS and port
// mapping run: this machine must never send to anything but loopback.
const inNamespaceEnv = "KCHAT_DISCOVERY_IN_NETNS"

func inTestNamespace() bool { return os.Getenv(inNamespaceEnv) == "1" }

var loopbackListen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}

func testLogger(t testing.TB) *slog.Logger {
	buf := &testutil.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("KCHAT_TEST_LOGS") != "" {
			t.Logf("node logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// localConfig is a loopback-only configuration: 127.0.0.1 listeners, the given
// bootstrap peers (never the public list), no mDNS, no port mapping.
func localConfig(t testing.TB, bootstrap ...string) Config {
	if bootstrap == nil {
		bootstrap = []string{}
	}
	return Config{
		Listen:    loopbackListen,
		Bootstrap: bootstrap,
		NoMDNS:    true,
		NoNAT:     true,
		Logger:    testLogger(t),
	}
}

// startNode starts a node and closes it at the end of the test. It refuses
// configurations that would leave loopback.
func startNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	if cfg.Bootstrap == nil && !cfg.NoDHT {
		t.Fatal("test config would use the public bootstrap list")
	}
	if (!cfg.NoMDNS || !cfg.NoNAT) && !inTestNamespace() {
		t.Fatal("mDNS and port mapping only run inside a test-made network namespace")
	}
	if cfg.Listen == nil {
		t.Fatal("test config must listen on explicit (loopback) addresses")
	}
	n, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func addrStrings(n *Node) []string {
	var out []string
	for _, a := range n.Addrs() {
		out = append(out, a.String())
	}
	return out
}

// tcpAddr returns the node's first TCP /p2p/ address.
func tcpAddr(t testing.TB, n *Node) string {
	for _, a := range addrStrings(n) {
		if strings.Contains(a, "/tcp/") {
			return a
		}
	}
	t.Fatalf("node has no TCP address: %v", addrStrings(n))
	return ""
}

func testTopic(name string) [32]byte {
	return sha256.Sum256([]byte("kchat/test/" + name))
}

// waitFound waits for a Found on n matching want, failing after timeout. Found
// values not matching are returned in the second result.
func waitFound(t testing.TB, n *Node, timeout time.Duration, want func(Found) bool) (Found, []Found) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var other []Found
	for {
		select {
		case f, ok := <-n.Found():
			if !ok {
				t.Fatal("Found channel closed")
			}
			if want(f) {
				return f, other
			}
			other = append(other, f)
		case <-timer.C:
			t.Fatalf("no matching Found within %v (other reports: %v)", timeout, other)
		}
	}
}

func foundPeer(topic [32]byte, p peer.ID) func(Found) bool {
	return func(f Found) bool { return f.Topic == topic && f.Peer.ID == p }
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}
