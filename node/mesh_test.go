package node_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/testutil"
	"github.com/kchat-p2p/kchat/node"
	"github.com/kchat-p2p/kchat/replicate"
)

// openDHT opens a node on loopback in a private DHT: with bootstrap
// "none" and seed, the DHT's first node; else one that boots from boot.
func openDHT(t *testing.T, boot []string, seed bool) *node.Node {
	t.Helper()
	nd, err := node.Open(context.Background(), node.Options{DataDir: t.TempDir(), Net: &node.NetOptions{
		Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: boot, NoMDNS: true, NoNAT: true, Seed: seed}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nd.Close() })
	return nd
}

// TestMeshIsBounded: twelve nodes of one channel find each other through a
// private DHT of loopback nodes. Each opens at most node.MeshOut sessions
// itself (not one to every other node), and a message still reaches every
// node through the mesh.
func TestMeshIsBounded(t *testing.T) {
	const n = 12
	ctx := context.Background()
	boot := openDHT(t, []string{"none"}, true)
	var nodes []*node.Node
	var ch feed.Channel
	for i := range n {
		nd := openDHT(t, boot.Addrs()[:1], false)
		var err error
		if i == 0 {
			if ch, err = nd.Create(ctx, "general"); err != nil {
				t.Fatal(err)
			}
		} else if _, err := nd.Join(ctx, ch.Key, ""); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, nd)
	}
	if _, err := nodes[n-1].Send(ctx, ch.ID(), feed.Payload{Kind: feed.KindText, Text: "to everyone"}); err != nil {
		t.Fatal(err)
	}
	for _, nd := range nodes {
		testutil.Eventually(t, 90*time.Second, "the message at every node", func() bool {
			c, _ := nd.Views().Count(ch.ID())
			return c == 1
		})
	}
	for i, nd := range nodes {
		out, all := 0, 0
		for _, p := range nd.Peers(ch.ID()) {
			if p.Syncing {
				all++
				if p.Outbound {
					out++
				}
			}
		}
		if out > node.MeshOut {
			t.Fatalf("node %d opened %d sessions itself, more than MeshOut = %d", i, out, node.MeshOut)
		}
		t.Logf("node %d: %d sessions (%d opened by it)", i, all, out)
	}
}

// TestMeshRotates: with a full mesh and more peers than it holds, a node
// replaces its oldest mesh session from time to time, so over a few
// rotations some node has held mesh sessions with more than MeshOut peers,
// while none ever holds more than MeshOut at once; a message still reaches
// every node.
func TestMeshRotates(t *testing.T) {
	restore := node.SetMeshRotateForTest(300 * time.Millisecond)
	t.Cleanup(restore)
	const n = node.MeshOut + 8
	ctx := context.Background()
	boot := openDHT(t, []string{"none"}, true)
	var nodes []*node.Node
	var ch feed.Channel
	for i := range n {
		nd := openDHT(t, boot.Addrs()[:1], false)
		if i == 0 {
			var err error
			if ch, err = nd.Create(ctx, "general"); err != nil {
				t.Fatal(err)
			}
		} else if _, err := nd.Join(ctx, ch.Key, ""); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, nd)
	}
	seen := make([]map[string]bool, n)
	for i := range seen {
		seen[i] = map[string]bool{}
	}
	testutil.Eventually(t, 120*time.Second, "a node with mesh sessions to more than MeshOut peers over time", func() bool {
		rotated := false
		for i, nd := range nodes {
			out := 0
			for _, p := range nd.Peers(ch.ID()) {
				if p.Syncing && p.Outbound {
					out++
					seen[i][p.ID] = true
				}
			}
			if out > node.MeshOut {
				t.Fatalf("node %d: %d outbound sessions at once, more than MeshOut = %d", i, out, node.MeshOut)
			}
			rotated = rotated || len(seen[i]) > node.MeshOut
		}
		return rotated
	})
	if _, err := nodes[n-1].Send(ctx, ch.ID(), feed.Payload{Kind: feed.KindText, Text: "still gossiped"}); err != nil {
		t.Fatal(err)
	}
	for _, nd := range nodes {
		testutil.Eventually(t, 90*time.Second, "the message at every node", func() bool {
			c, _ := nd.Views().Count(ch.ID())
			return c == 1
		})
	}
}

// TestMeshRetriesDeclinedDials: every node's first mesh dial to each peer
// is declined (as a busy peer declines). Nothing else changes afterwards:
// the peers were found once, no session came or went. The mesh is still
// topped up: a short mesh is looked at again after a while.
func TestMeshRetriesDeclinedDials(t *testing.T) {
	var mu sync.Mutex
	asked := map[string]int{}
	defer node.SetMeshDialFaultForTest(func(p peer.ID) error {
		mu.Lock()
		defer mu.Unlock()
		asked[p.String()]++
		if asked[p.String()] == 1 {
			return &replicate.BusyError{Retry: time.Second}
		}
		return nil
	})()
	a, _, ch := dhtPair(t)
	testutil.Eventually(t, 90*time.Second, "a session between the two", func() bool {
		for _, p := range a.Peers(ch.ID()) {
			if p.Syncing {
				return true
			}
		}
		return false
	})
	mu.Lock()
	defer mu.Unlock()
	if len(asked) == 0 {
		t.Fatal("no mesh dial was made")
	}
}

// TestMeshDialFailureKeepsThePeer: a mesh dial that fails without a
// refusal (a timeout under load, a reset stream) holds the peer off for a
// while and leaves it a connected mesh candidate; a refusal (the peer does
// not hold the channel) drops it from the channel's peers until discovery
// finds it again.
func TestMeshDialFailureKeepsThePeer(t *testing.T) {
	a, b, ch := dhtPair(t)
	bID := peerID(t, b)
	status := func() (node.PeerStatus, bool) {
		for _, p := range a.Peers(ch.ID()) {
			if p.ID == bID.String() {
				return p, true
			}
		}
		return node.PeerStatus{}, false
	}
	testutil.Eventually(t, 90*time.Second, "b a connected peer of a", func() bool {
		p, ok := status()
		return ok && p.Connected
	})
	if !node.MeshDialedForTest(a, ch.ID(), bID, fmt.Errorf("open sync stream: %w", context.DeadlineExceeded)) {
		t.Error("a failed mesh dial did not hold the peer off")
	}
	if p, _ := status(); !p.Connected || p.Dropped != "" {
		t.Fatalf("after a failed mesh dial the peer is %+v, want connected and not dropped", p)
	}
	node.MeshDialedForTest(a, ch.ID(), bID, fmt.Errorf("refused: %w", feed.ErrUnknownChannel))
	if p, _ := status(); p.Connected || p.Dropped == "" {
		t.Fatalf("after a refusal the peer is %+v, want dropped", p)
	}
}

// dhtPair opens two nodes booting from a third of a private DHT; a creates
// a channel, b joins it.
func dhtPair(t *testing.T) (a, b *node.Node, ch feed.Channel) {
	t.Helper()
	ctx := context.Background()
	boot := openDHT(t, []string{"none"}, true)
	a, b = openDHT(t, boot.Addrs()[:1], false), openDHT(t, boot.Addrs()[:1], false)
	ch, err := a.Create(ctx, "general")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Join(ctx, ch.Key, ""); err != nil {
		t.Fatal(err)
	}
	return a, b, ch
}

// peerID is n's libp2p peer id, from its first listen address.
func peerID(t *testing.T, n *node.Node) peer.ID {
	t.Helper()
	ai, err := peer.AddrInfoFromString(n.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	return ai.ID
}
