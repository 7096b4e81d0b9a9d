package node

import (
	"context"
	"errors"

	"github.com/kchat-p2p/kchat/feed"
)

// NetOptions configure the network side of a node.
type NetOptions struct {
	Listen    []string // multiaddrs to listen on
	Peers     []string // multiaddrs to dial (manual peers)
	Bootstrap []string // nil: the public DHT's list; ["none"]: empty
	NoMDNS    bool
	NoDHT     bool
	NoNAT     bool
	Seed      bool // DHT server + relay service
}

type network struct{}

func startNetwork(ctx context.Context, n *Node, o NetOptions) (*network, error) {
	return nil, errors.New("networking is not wired yet")
}

func (nw *network) close() error             { return nil }
func (nw *network) join(c feed.Channel)      {}
func (nw *network) leave(d feed.DiscoveryID) {}
