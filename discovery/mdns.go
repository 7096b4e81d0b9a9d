package discovery

import (
	"encoding/hex"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
)

// MDNSServiceName is the mDNS service of a topic: "_kchat-<first 16 hex digits of
// the topic>._udp" (23 characters in the first label, within DNS's 63). Only
// peers that joined the same topic browse and answer it.
func MDNSServiceName(topic [32]byte) string {
	return "_kchat-" + hex.EncodeToString(topic[:8]) + "._udp"
}

func (n *Node) startMDNS(ts *topicState) (mdns.Service, error) {
	svc := mdns.NewMdnsService(n.host, MDNSServiceName(ts.topic), &mdnsNotifee{n: n, ts: ts})
	if err := svc.Start(); err != nil {
		_ = svc.Close()
		return nil, err
	}
	return svc, nil
}

// mdnsNotifee receives mDNS results. go-libp2p calls HandlePeerFound from a new,
// untracked goroutine per answer, repeatedly and concurrently: each call registers
// with the topic (refused after Leave/Close), and handleFound dedupes.
type mdnsNotifee struct {
	n  *Node
	ts *topicState
}

func (m *mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	if !m.n.enter(m.ts) {
		return
	}
	defer m.n.exit(m.ts)
	m.n.handleFound(m.ts.ctx, m.ts.topic, ai, SourceMDNS)
}
