package discovery

import (
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/multiformats/go-multiaddr"
)

// openInbound opens inbound connection scopes on rm until one is refused or
// n are open, and returns how many it opened.
func openInbound(t *testing.T, rm network.ResourceManager, n int) int {
	t.Helper()
	addr := multiaddr.StringCast("/ip4/127.0.0.1/tcp/4001")
	var scopes []network.ConnManagementScope
	defer func() {
		for _, s := range scopes {
			s.Done()
		}
	}()
	for i := range n {
		s, err := rm.OpenConnection(network.DirInbound, true, addr)
		if err != nil {
			return i
		}
		scopes = append(scopes, s)
		// The security handshake names the peer: the connection moves from
		// the transient scope to the peer's.
		if err := s.SetPeer(peer.ID(fmt.Sprintf("peer-%d", i))); err != nil {
			return i
		}
	}
	return n
}

// TestResourceLimitsFitABigChannel: the resource manager a node runs with
// admits 600 inbound connections at once (200 peers of a channel, with a
// TCP and a QUIC connection each, and room for DHT traffic), where libp2p's
// memory-scaled default for a small machine admits far fewer.
func TestResourceLimitsFitABigChannel(t *testing.T) {
	rm, err := resourceManager()
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	if got := openInbound(t, rm, 600); got != 600 {
		t.Fatalf("the node's resource manager admitted %d of 600 inbound connections", got)
	}

	// The same check against libp2p's default scaled for a 1 GiB machine,
	// to show that the check can fail.
	scaling := rcmgr.DefaultLimits
	small, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(scaling.Scale(1<<30/8, 1024)))
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	if got := openInbound(t, small, 600); got >= 600 {
		t.Fatalf("the default limits of a small machine admitted %d: the check above proves nothing", got)
	}
	l := chatLimits().ToPartialLimitConfig()
	if l.System.ConnsInbound < 600 || l.ProtocolDefault.StreamsInbound < 1024 {
		t.Fatalf("limits: %+v / %+v", l.System, l.ProtocolDefault)
	}
}
