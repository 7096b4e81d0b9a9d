package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/testutil"
	"github.com/kchat-p2p/kchat/node"
)

// TestMeshIsBounded: twelve nodes of one channel find each other through a
// private DHT of loopback nodes. Each opens at most node.MeshOut sessions
// itself (not one to every other node), and a message still reaches every
// node through the mesh.
func TestMeshIsBounded(t *testing.T) {
	const n = 12
	ctx := context.Background()
	boot, err := node.Open(ctx, node.Options{DataDir: t.TempDir(), Net: &node.NetOptions{
		Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: []string{"none"}, NoMDNS: true, NoNAT: true, Seed: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { boot.Close() })
	var nodes []*node.Node
	var ch feed.Channel
	for i := range n {
		nd, err := node.Open(ctx, node.Options{DataDir: t.TempDir(), Net: &node.NetOptions{
			Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: boot.Addrs()[:1], NoMDNS: true, NoNAT: true}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
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
