package replicate

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
)

// TestTwentyThousandAuthors is issue 13's feed-cap test: a channel with
// 20,000 authors (five times version 1's cap of 4096 feeds per session)
// syncs whole to a fresh peer through a relay, and a message of author
// 20,001 then reaches every peer live. The default run uses 5,000 authors
// (past the old cap, and past a have frame's 4096 heads); KCHAT_LONG=1
// runs 20,000 (about a minute here: one transaction per new feed).
func TestTwentyThousandAuthors(t *testing.T) {
	authors := 5_000
	if os.Getenv("KCHAT_LONG") != "" {
		authors = 20_000
	}
	c := newChannel(t, "big")
	ch := c.ID()
	seed, relay, fresh := newNode(t, Limits{}, c), newNode(t, Limits{}, c), newNode(t, Limits{}, c)
	start := time.Now()
	for range authors {
		id := newIdentity(t)
		es := makeEntries(t, id, ch, feed.Head{}, 1, "hi")
		if _, err := seed.st.Apply(context.Background(), ch, id.ID(), es); err != nil {
			t.Fatal(err)
		}
	}
	built := time.Since(start)
	start = time.Now()
	relay.connect(seed, ch)
	fresh.connect(relay, ch)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	eventually(t, 3*time.Minute, "the fresh peer to hold every author", func() bool {
		hs, _ := fresh.st.Heads(ch)
		return len(hs) == authors
	}, fresh)
	if err := fresh.r.WaitSynced(ctx, ch, relay.h.ID()); err != nil {
		t.Fatal(err)
	}
	synced := time.Since(start)
	late := newIdentity(t)
	es := makeEntries(t, late, ch, feed.Head{}, 1, "late")
	if _, err := fresh.st.Apply(context.Background(), ch, late.ID(), es); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "one more author at the seed", func() bool {
		h, _ := seed.st.Head(ch, late.ID())
		return h.Len == 1
	}, seed)
	t.Logf("%d authors: built in %v; a fresh peer synced them through a relay in %v; one more author reached the seed", authors, built, synced)
}
