package feed_test

import (
	"context"
	"errors"
	"testing"

	"github.com/kchat-p2p/kchat/feed"
)

// TestForkAtHeadRejected: a batch that starts exactly at the held length
// but whose first prev is not the held head's hash is another history of
// the feed. Nothing overlaps, so no fork evidence can be recorded; the
// batch must be refused with ErrBadPrev and nothing stored.
func TestForkAtHeadRejected(t *testing.T) {
	ctx := context.Background()
	id, err := feed.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	a := newEnv(t)
	b := newEnv(t, a.ch)
	d := a.ch.ID()
	ea, err := a.st.Append(ctx, id, d, text("a0"), text("a1"), text("a2"))
	if err != nil {
		t.Fatal(err)
	}
	eb, err := b.st.Append(ctx, id, d, text("b0"), text("b1"), text("b2"), text("b3"), text("b4"))
	if err != nil {
		t.Fatal(err)
	}
	dst := newEnv(t, a.ch)
	if _, err := dst.st.Apply(ctx, d, id.ID(), ea); err != nil {
		t.Fatal(err)
	}
	before, err := dst.st.Head(d, id.ID())
	if err != nil {
		t.Fatal(err)
	}
	last := dst.st.Last()

	// eb[3:] is a valid, signed continuation of b's history, starting at
	// dst's length: its prev is the hash of eb[2], not of ea[2].
	n, err := dst.st.Apply(ctx, d, id.ID(), eb[3:])
	if !errors.Is(err, feed.ErrBadPrev) {
		t.Fatalf("a batch forking exactly at the head: n=%d err=%v, want ErrBadPrev", n, err)
	}
	if n != 0 {
		t.Fatalf("Apply reported %d new entries for a refused batch", n)
	}
	after, err := dst.st.Head(d, id.ID())
	if err != nil {
		t.Fatal(err)
	}
	if after != before || dst.st.Last() != last {
		t.Fatalf("refused batch changed the store: head %+v -> %+v, last %d -> %d", before, after, last, dst.st.Last())
	}
	if got := entriesOf(t, dst.st, d, id.ID()); len(got) != 3 {
		t.Fatalf("%d entries stored, want 3", len(got))
	}
}
