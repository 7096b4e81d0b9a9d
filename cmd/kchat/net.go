package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kchat-p2p/kchat/node"
	"github.com/spf13/cobra"
)

func (a *app) syncCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "sync CHANNEL",
		Short: "Replicate a channel with peers until both sides hold the same messages, then exit",
		Long: `Replicate CHANNEL with the peers given by --peer (or, with none, the peers
discovery finds) until both sides hold the same heads; print a summary. Exits
non-zero on --timeout, saying what was done.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			peers := a.net.Peers
			a.net.Peers = nil // dialled by Sync itself, once
			return a.withNode(cmd, true, func(ctx context.Context, n *node.Node) error {
				c, err := n.Resolve(args[0])
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				sum, err := n.Sync(ctx, c.ID(), peers)
				fmt.Fprintf(a.stdout, "%s: %d peer(s), %d entries received, %d sent, %.2fs\n",
					c.Name, sum.Peers, sum.Received, sum.Sent, sum.Elapsed.Seconds())
				if len(sum.LeftOut) > 0 {
					fmt.Fprintf(a.stdout, "left out: %d feed(s) that cannot be brought in step:\n", len(sum.LeftOut))
					for _, l := range sum.LeftOut {
						fmt.Fprintf(a.stdout, "  %s\n", l)
					}
				}
				a.printPeers(n.Peers(c.ID()))
				if errors.Is(err, context.DeadlineExceeded) {
					return fmt.Errorf("timed out after %s: %w", timeout, err)
				}
				return err
			})
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "give up after this long")
	return cmd
}

func (a *app) seedCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "seed",
		Short: "Run a headless, always-on peer: replica of its channels, DHT server and relay",
		Long: `Run a headless peer that replicates all joined channels live, serves the DHT
and relays for peers behind NATs. Prints its multiaddrs (give one to others as
--peer or --bootstrap), then runs until SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.served != nil {
				return errors.New("a node is already running on this data dir")
			}
			a.net.Seed = true
			a.net.Redial = true // a restarted seed finds its peers again
			ctx := cmd.Context()
			log, err := a.logger()
			if err != nil {
				return err
			}
			n, err := node.Open(ctx, node.Options{DataDir: a.dataDir, Logger: log, Net: &a.net})
			if err != nil {
				return err
			}
			a.node = n
			srv, err := a.serve(ctx, n)
			if err != nil {
				return err
			}
			defer srv.Close()
			fmt.Fprintf(a.stdout, "kchat seed %s\n", n.Self())
			for _, addr := range n.Addrs() {
				fmt.Fprintln(a.stdout, addr)
			}
			chans, err := n.Channels()
			if err != nil {
				return err
			}
			for _, c := range chans {
				fmt.Fprintf(a.stdout, "replicating %s\n", c.Name)
			}
			a.seedLog(ctx, n)
			fmt.Fprintln(a.stdout, "shutting down")
			return nil
		},
	}
}

// seedLog prints, until ctx ends, one line per change of a peer's session
// in a channel: connected, in step, gone. (No addresses: the seed's own
// are the only multiaddrs it prints.)
// seedLogGap is how often a seed's log of peers may look at them.
// Building the peer rows costs about 0.3 ms at 48 peers, so not too often:
// during a burst the network signals on every stored batch.
const seedLogGap = time.Second

func (a *app) seedLog(ctx context.Context, n *node.Node) {
	sub := n.NetChanged()
	if sub == nil {
		<-ctx.Done()
		return
	}
	defer sub.Close()
	type key struct{ ch, peer string }
	type state struct{ synced bool }
	known := map[key]state{}
	// The network signals on every stored batch; a log of who came and
	// went needs a look at most every seedLogGap.
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.C():
		}
		if wait := seedLogGap - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		last = time.Now()
		chans, err := n.Channels()
		if err != nil {
			continue
		}
		now := map[key]state{}
		for _, c := range chans {
			for _, p := range n.Peers(c.ID()) {
				if !p.Syncing {
					continue
				}
				k, st := key{c.Name, p.ID}, state{synced: p.Synced}
				now[k] = st
				old, had := known[k]
				switch {
				case !had:
					how := "it dialled us"
					if p.Outbound {
						how = "we dialled it"
					}
					fmt.Fprintf(a.stdout, "%s: peer %s connected (%s, found by %s)\n", printable(c.Name), p.ID, how, p.Source)
					if st.synced {
						fmt.Fprintf(a.stdout, "%s: peer %s in step\n", printable(c.Name), p.ID)
					}
				case st.synced && !old.synced:
					fmt.Fprintf(a.stdout, "%s: peer %s in step (%d received, %d sent so far)\n", printable(c.Name), p.ID, p.Received, p.Sent)
				}
			}
		}
		for k := range known {
			if _, ok := now[k]; !ok {
				fmt.Fprintf(a.stdout, "%s: peer %s gone\n", printable(k.ch), k.peer)
			}
		}
		known = now
	}
}

// jsonPeer is one (channel, peer) row of `peers --json`.
type jsonPeer struct {
	Channel   string   `json:"channel"`
	Peer      string   `json:"peer"`
	Source    string   `json:"source"` // mdns, dht, manual, inbound, relay
	Addrs     []string `json:"addrs"`
	Connected bool     `json:"connected"`
	Session   bool     `json:"session"`  // a live sync session for this channel
	Outbound  bool     `json:"outbound"` // this node opened the session
}

func (a *app) peersCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "peers [CHANNEL]",
		Short: "List the peers of a running node (seed or UI), per channel",
		Long: `List the peers of a running node (seed or UI), per channel. With --json,
one object per (channel, peer) per line: channel, peer (peer id), source
(mdns, dht, manual, inbound, relay), addrs, connected, session (a live sync
session for this channel) and outbound (this node opened that session).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withNode(cmd, false, func(ctx context.Context, n *node.Node) error {
				if a.served == nil {
					return errors.New("no kchat node is running on this data dir (start `kchat seed` or the UI)")
				}
				chans, err := n.Channels()
				if err != nil {
					return err
				}
				if !asJSON {
					// Where others reach this node (kchat --peer ADDR,
					// or /connect ADDR in the UI).
					addrs := n.Addrs()
					if len(addrs) == 0 {
						fmt.Fprintln(a.stdout, "this node: not listening")
					}
					for _, addr := range addrs {
						fmt.Fprintf(a.stdout, "this node: %s\n", addr)
					}
				}
				for _, c := range chans {
					if len(args) == 1 && c.Name != args[0] {
						continue
					}
					ps := n.Peers(c.ID())
					if asJSON {
						if err := a.printPeersJSON(c.Name, ps); err != nil {
							return err
						}
						continue
					}
					fmt.Fprintf(a.stdout, "%s: %d peer(s)\n", c.Name, len(ps))
					a.printPeers(ps)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per (channel, peer) per line")
	return cmd
}

// printPeersJSON prints one jsonPeer line per peer of channel name.
func (a *app) printPeersJSON(name string, ps []node.PeerStatus) error {
	for _, p := range ps {
		addrs := p.Addrs
		if addrs == nil {
			addrs = []string{}
		}
		b, err := json.Marshal(jsonPeer{Channel: name, Peer: p.ID, Source: p.Source, Addrs: addrs,
			Connected: p.Connected, Session: p.Syncing, Outbound: p.Outbound})
		if err != nil {
			return fmt.Errorf("encode peer %s: %w", p.ID, err)
		}
		if _, err := fmt.Fprintf(a.stdout, "%s\n", b); err != nil {
			return fmt.Errorf("write peers: %w", err)
		}
	}
	return nil
}

// printPeers prints one line per peer: id, how it was found, state.
func (a *app) printPeers(ps []node.PeerStatus) {
	for _, p := range ps {
		state := "disconnected"
		switch {
		case p.Synced:
			state = "synced"
		case p.Syncing:
			state = fmt.Sprintf("syncing, %d to fetch", p.Want)
		case p.Connected:
			state = "connected"
		}
		fmt.Fprintf(a.stdout, "  %s  via %-7s %s, last seen %s", p.ID, p.Source, state, p.LastSeen.Format(time.TimeOnly))
		if p.Dropped != "" {
			fmt.Fprintf(a.stdout, ", dropped: %s", p.Dropped)
		}
		fmt.Fprintln(a.stdout)
	}
}
