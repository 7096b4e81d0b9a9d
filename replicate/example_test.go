package replicate_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/replicate"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A one-shot sync, as `kchat sync CHANNEL --peer ADDR...` runs it: open a
// session with every peer, wait until all of them are synced at one moment,
// report, close.
func Example() {
	var (
		h     host.Host   // from discovery/
		st    *feed.Store // the node's store
		ch    feed.Channel
		peers []peer.AddrInfo // from --peer
	)
	r := replicate.New(h, st, replicate.Config{})
	defer r.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ids []peer.ID
	for _, p := range peers {
		if err := h.Connect(ctx, p); err != nil {
			fmt.Println("dial:", err)
			continue
		}
		if err := r.Connect(ctx, p.ID, ch.ID()); err != nil {
			fmt.Println("sync:", err)
			continue
		}
		ids = append(ids, p.ID)
	}
	err := r.WaitSynced(ctx, ch.ID(), ids...)
	s := r.Stats()
	fmt.Printf("received %d new entries, sent %d (%v)\n", s.EntriesStored, s.EntriesSent, err)
}
