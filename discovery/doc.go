// Package discovery owns kchat's libp2p host and finds the peers of joined
// channels: mDNS on the LAN, Kademlia DHT rendezvous across the internet, NAT
// traversal (port mapping, AutoNAT v2, circuit relay v2, hole punching), manual
// --peer addresses, and per-channel peer bookkeeping.
//
// Only a channel's discovery id D (32 bytes) is given to the network: the DHT
// namespace is "kchat/" + hex(D) (TopicNamespace) and the mDNS service is
// "_kchat-<first 16 hex digits of D>._udp" (MDNSServiceName). The channel key
// never reaches this package.
//
// # Use
//
//	n, err := discovery.Start(ctx, discovery.Config{HostKeyPath: ..., Bootstrap: ...})
//	defer n.Close()
//	n.Join(d)                       // per joined channel
//	n.AddManual(ctx, d, "/ip4/.../p2p/...")   // --peer
//	for f := range n.Found() { ... } // dialled peers: open the sync stream
//
// Found reports each (channel, peer) once per connection lifetime; a peer found
// again after it disconnected is reported again. Found peers are protected from the
// connection manager's trimming until they disconnect, are dropped
// (Book.MarkDropped) or the channel is left.
//
// # Limited (relayed) connections
//
// A peer behind a NAT may be reachable only through a circuit relay v2 (a kchat
// seed). Such connections are "limited" (the relay caps their duration and data) and
// libp2p refuses new streams on them unless asked. Discovery dials with
// network.WithAllowLimitedConn and reports such peers with Source "relay".
// Replication must open its streams deliberately with
//
//	ctx = network.WithAllowLimitedConn(ctx, "kchat sync")
//	s, err := host.NewStream(ctx, p, proto)
//
// and register its handler so inbound streams over limited connections are
// accepted (go-libp2p accepts inbound streams on limited connections for every
// handler). Without it NewStream waits for a direct connection until its context
// ends. When hole punching (DCUtR) then succeeds, a direct connection appears (the
// Book's Limited flag clears): replication should prefer it, e.g. by re-opening its
// stream when s.Conn().Stat().Limited was true and a direct connection exists
// (host.Network().ConnsToPeer). kchat seeds relay up to 10 minutes and 16 MiB per
// relayed connection.
//
// # Logs
//
// go-libp2p, kad-dht and zeroconf log through process-global loggers. Start routes
// them into Config.Logger (Warn and above; GOLOG_LOG_LEVEL overrides) and never to
// stderr; this includes redirecting the standard library's log package, which
// zeroconf uses.
//
// # Network rule for tests
//
// Tests listen on 127.0.0.1 with explicit loopback bootstrap peers, and run mDNS and
// port mapping only inside a network namespace they create (unshare -rn), never on
// the machine's real interfaces.
package discovery
