package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/node"
	"github.com/kchat-p2p/kchat/ui"
	"github.com/spf13/cobra"
)

func (a *app) runUI(cmd *cobra.Command, _ []string) error {
	if a.served != nil {
		return errors.New("a node is already running on this data dir")
	}
	if _, err := os.Stat(node.ControlSocket(a.dataDir)); err == nil {
		if code, err := node.RunRemote(cmd.Context(), a.dataDir, []string{"id"}, nil, discard{}, discard{}); err == nil && code == 0 {
			return fmt.Errorf("kchat is already running on %s (one UI or seed per data dir; use another --data)", a.dataDir)
		}
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	log := a.logger()
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
	return ui.Run(ctx, newUIBackend(ctx, n), ui.WithLogger(log))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// uiBackend adapts the node to the UI's Backend interface.
type uiBackend struct {
	*node.Node
	netc chan struct{}
}

// newUIBackend starts the goroutine (stopped by ctx) that turns the node's
// network changes and a slow tick (for "last seen" and discovery state)
// into the UI's coalescing NetChanged signal.
func newUIBackend(ctx context.Context, n *node.Node) *uiBackend {
	b := &uiBackend{Node: n, netc: make(chan struct{}, 1)}
	var changed <-chan struct{}
	if sub := n.NetChanged(); sub != nil {
		changed = sub.C()
		context.AfterFunc(ctx, sub.Close)
	}
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			case <-t.C:
			}
			select {
			case b.netc <- struct{}{}:
			default:
			}
		}
	}()
	return b
}

func (b *uiBackend) Views() ui.Reader { return b.Node.Views() }

func (b *uiBackend) Send(ctx context.Context, ch feed.DiscoveryID, p feed.Payload) error {
	_, err := b.Node.Send(ctx, ch, p)
	return err
}

func (b *uiBackend) Status(ch feed.DiscoveryID) ui.NetStatus {
	var s ui.NetStatus
	var want uint64
	for _, p := range b.Node.Peers(ch) {
		if p.Connected || p.Syncing {
			s.Peers++
		} else {
			s.Known++
		}
		want += p.Want
	}
	if want > 0 {
		have, _ := b.Node.Views().Count(ch)
		s.Have, s.Want = uint64(have), uint64(have)+want
	}
	s.Searching = len(b.Node.Addrs()) > 0 && s.Peers == 0
	return s
}

func (b *uiBackend) Peers(ch feed.DiscoveryID) []ui.PeerInfo {
	var out []ui.PeerInfo
	for _, p := range b.Node.Peers(ch) {
		out = append(out, ui.PeerInfo{ID: p.ID, Source: p.Source, Connected: p.Connected || p.Syncing, LastSeen: p.LastSeen})
	}
	return out
}

func (b *uiBackend) NetChanged() <-chan struct{} { return b.netc }
