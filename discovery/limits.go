package discovery

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Resource limits for a chat node. libp2p's default resource manager scales
// its limits with the machine's memory (1/8 of it) and file descriptors; on
// a small machine that is 64-128 connections for the whole system, which a
// channel of 200 online peers (each with a TCP or QUIC connection, plus DHT
// and relay traffic) exceeds, and the node then silently refuses peers. A
// chat node's traffic is small, so the limits here are set by counts, not
// memory: enough connections and streams for a few hundred peers, with the
// per-peer limits kept as libp2p has them (one peer cannot take them all).
const (
	limitConnsInbound  = 1024
	limitConnsOutbound = 1024
	limitStreams       = 16384
	limitProtoStreams  = 4096 // per protocol (e.g. /kchat/sync: one per peer and channel)
	limitMemory        = 256 << 20
	limitFD            = 4096
)

// chatLimits is the limit configuration of resourceManager.
func chatLimits() rcmgr.ConcreteLimitConfig {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	base := scaling.Scale(limitMemory, limitFD)
	over := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns: limitConnsInbound + limitConnsOutbound, ConnsInbound: limitConnsInbound, ConnsOutbound: limitConnsOutbound,
			Streams: limitStreams, StreamsInbound: limitStreams / 2, StreamsOutbound: limitStreams / 2,
			FD: limitFD, Memory: limitMemory,
		},
		// Connections and streams before they are attached to a peer or a
		// protocol: a crowd of peers connecting at once (a seed after a
		// restart) passes through here.
		Transient: rcmgr.ResourceLimits{
			Conns: 512, ConnsInbound: 256, ConnsOutbound: 256,
			Streams: 1024, StreamsInbound: 512, StreamsOutbound: 512,
			FD: limitFD / 4,
		},
		ProtocolDefault: rcmgr.ResourceLimits{
			Streams: limitProtoStreams, StreamsInbound: limitProtoStreams / 2, StreamsOutbound: limitProtoStreams / 2,
		},
	}
	return over.Build(base)
}

// resourceManager is libp2p's resource manager with chatLimits.
func resourceManager() (network.ResourceManager, error) {
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(chatLimits()))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	return rm, nil
}
