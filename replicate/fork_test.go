package replicate

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
)

// TestForkConvergesBothSides is issue 11's point 1: an author signs two
// different entries at one seq and gives one branch to x, the other to y,
// the branches of different lengths (or, in some runs, the same length).
// After x and y sync, both record the
// fork, every time (20 runs, alternating which side is longer and which
// dials), both freeze the feed (a valid continuation of either branch is
// refused), and both sessions reach "synced" without the forked feed.
func TestForkConvergesBothSides(t *testing.T) {
	for run := range 20 {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			t.Parallel()
			c := newChannel(t, "fork")
			ch := c.ID()
			x, y := newNode(t, Limits{}, c), newNode(t, Limits{}, c)
			author := newIdentity(t)
			common := makeEntries(t, author, ch, feed.Head{}, 3, "common")
			at := feed.Head{Len: 3, Hash: common[2].Hash()}
			short, long := 1+run%3, 4+run%5
			if run%5 == 4 {
				long = short // same length, different heads
			}
			if run%2 == 1 {
				short, long = long, short
			}
			branchA := append(append([]feed.Entry{}, common...), makeEntries(t, author, ch, at, short, "a")...)
			branchB := append(append([]feed.Entry{}, common...), makeEntries(t, author, ch, at, long, "b")...)
			if _, err := x.st.Apply(context.Background(), ch, author.ID(), branchA); err != nil {
				t.Fatal(err)
			}
			if _, err := y.st.Apply(context.Background(), ch, author.ID(), branchB); err != nil {
				t.Fatal(err)
			}
			x.append(ch, 3, "x")
			y.append(ch, 4, "y")
			if run%4 < 2 {
				x.connect(y, ch)
			} else {
				y.connect(x, ch)
			}
			for _, n := range []*node{x, y} {
				eventually(t, 20*time.Second, "both sides to record the fork", func() bool {
					h, _ := n.st.Head(ch, author.ID())
					return h.Forked
				}, x, y)
			}
			x.waitSynced(ch, y)
			y.waitSynced(ch, x)
			// Honest feeds still converge.
			if h, _ := x.st.Head(ch, y.id.ID()); h.Len != 4 {
				t.Fatalf("x holds %d of y's 4 entries", h.Len)
			}
			// Neither side accepts a continuation of either branch.
			for _, n := range []*node{x, y} {
				for _, br := range [][]feed.Entry{branchA, branchB} {
					last := br[len(br)-1]
					more := makeEntries(t, author, ch, feed.Head{Len: last.Seq + 1, Hash: last.Hash()}, 1, "more")
					h, _ := n.st.Head(ch, author.ID())
					if h.Len != last.Seq+1 {
						continue // the other branch: not even contiguous
					}
					if _, err := n.st.Apply(context.Background(), ch, author.ID(), more); !errors.Is(err, feed.ErrForked) {
						t.Fatalf("a frozen feed accepted a continuation: %v", err)
					}
				}
				if fs, err := n.st.Forks(ch); err != nil || len(fs) != 1 {
					t.Fatalf("evidence: %d %v", len(fs), err)
				}
			}
			if x.r.Stats().Violations+y.r.Stats().Violations != 0 {
				t.Fatal("a fork was taken for a violation")
			}
		})
	}
}

// TestForkEvidenceTravels: a third peer z that never held either branch
// learns of the fork from x's evidence frame and freezes the feed too.
func TestForkEvidenceTravels(t *testing.T) {
	c := newChannel(t, "fork")
	ch := c.ID()
	x, y, z := newNode(t, Limits{}, c), newNode(t, Limits{}, c), newNode(t, Limits{}, c)
	author := newIdentity(t)
	a := makeEntries(t, author, ch, feed.Head{}, 2, "a")
	b := makeEntries(t, author, ch, feed.Head{}, 3, "b")
	x.st.Apply(context.Background(), ch, author.ID(), a)
	y.st.Apply(context.Background(), ch, author.ID(), b)
	x.connect(y, ch)
	eventually(t, 20*time.Second, "x to record the fork", func() bool {
		h, _ := x.st.Head(ch, author.ID())
		return h.Forked
	}, x, y)
	z.connect(x, ch)
	eventually(t, 20*time.Second, "z to learn of the fork", func() bool {
		h, _ := z.st.Head(ch, author.ID())
		return h.Forked
	}, x, z)
	if _, err := z.st.Fork(ch, author.ID()); err != nil {
		t.Fatal(err)
	}
}
