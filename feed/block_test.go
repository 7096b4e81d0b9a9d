package feed_test

import (
	"context"
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/kchat-p2p/kchat/feed"
)

// sinceAll reads the whole arrival log (from Badger or the recent cache).
func sinceAll(t *testing.T, st *feed.Store) []feed.Entry {
	t.Helper()
	var out []feed.Entry
	if err := st.Since(0, 0, func(_ uint64, e feed.Entry) error { out = append(out, e); return nil }); err != nil {
		t.Fatalf("since: %v", err)
	}
	return out
}

func countBy(es []feed.Entry, a feed.AuthorID) int {
	n := 0
	for _, e := range es {
		if e.Author == a {
			n++
		}
	}
	return n
}

// TestBlockRefusesApply: a blocked author's batch is refused with
// ErrBlocked and nothing of it is stored; other authors and other channels
// are unaffected; unblocking accepts it again; the list survives a reopen.
func TestBlockRefusesApply(t *testing.T) {
	ctx := context.Background()
	src := newEnv(t)
	dst := newEnv(t, src.ch)
	d := src.ch.ID()
	bad, _ := feed.NewIdentity()
	good, _ := feed.NewIdentity()
	eb, _ := src.st.Append(ctx, bad, d, texts(10)...)
	eg, _ := src.st.Append(ctx, good, d, texts(3)...)
	if err := dst.st.Block(d, bad.ID()); err != nil {
		t.Fatal(err)
	}
	if !dst.st.IsBlocked(d, bad.ID()) || dst.st.IsBlocked(d, good.ID()) {
		t.Fatal("IsBlocked wrong")
	}
	if n, err := dst.st.Apply(ctx, d, bad.ID(), eb); !errors.Is(err, feed.ErrBlocked) || n != 0 {
		t.Fatalf("blocked apply: %d %v", n, err)
	}
	if n, err := dst.st.Apply(ctx, d, good.ID(), eg); err != nil || n != 3 {
		t.Fatalf("other author: %d %v", n, err)
	}
	heads, _ := dst.st.Heads(d)
	if len(heads) != 1 || heads[0].Author != good.ID() || dst.st.Last() != 3 {
		t.Fatalf("heads %+v last %d", heads, dst.st.Last())
	}
	if got := entriesOf(t, dst.st, d, bad.ID()); len(got) != 0 {
		t.Fatalf("%d blocked entries stored", len(got))
	}
	list, err := dst.st.BlockedAuthors(d)
	if err != nil || len(list) != 1 || list[0] != bad.ID() {
		t.Fatalf("blocked list %v %v", list, err)
	}
	other, _ := feed.NewChannelKey()
	if l, _ := dst.st.BlockedAuthors(other.DiscoveryID()); len(l) != 0 {
		t.Fatalf("block leaked to another channel: %v", l)
	}

	dir := dst.dir
	dst.close()
	re := openEnv(t, dir)
	if !re.st.IsBlocked(d, bad.ID()) {
		t.Fatal("block lost on reopen")
	}
	if _, err := re.st.Apply(ctx, d, bad.ID(), eb); !errors.Is(err, feed.ErrBlocked) {
		t.Fatalf("blocked apply after reopen: %v", err)
	}
	if err := re.st.Unblock(d, bad.ID()); err != nil {
		t.Fatal(err)
	}
	if n, err := re.st.Apply(ctx, d, bad.ID(), eb); err != nil || n != 10 {
		t.Fatalf("apply after unblock: %d %v", n, err)
	}
}

// TestPurgeReclaims: a purge removes the feed's entries, head, fork
// evidence and arrival records (Heads, Range, Since no longer see it, from
// memory or from disk); other feeds stay; after unblocking the feed is
// accepted again from seq 0; all of it survives a reopen, and arrival
// numbers are never given out twice.
func TestPurgeReclaims(t *testing.T) {
	ctx := context.Background()
	src := newEnv(t)
	d := src.ch.ID()
	dst := newEnv(t, src.ch)
	bad, _ := feed.NewIdentity()
	good, _ := feed.NewIdentity()
	eb, _ := src.st.Append(ctx, bad, d, texts(50)...)
	eg, _ := src.st.Append(ctx, good, d, texts(5)...)
	// Interleave: good, bad, good, bad (the newest arrival is bad's).
	mustApply := func(a feed.AuthorID, es []feed.Entry) {
		t.Helper()
		if _, err := dst.st.Apply(ctx, d, a, es); err != nil {
			t.Fatal(err)
		}
	}
	mustApply(good.ID(), eg[:2])
	mustApply(bad.ID(), eb[:30])
	mustApply(good.ID(), eg[2:])
	mustApply(bad.ID(), eb[30:])
	// A fork of bad's feed, so there is evidence to purge too.
	other := newEnv(t, src.ch)
	fork, _ := other.st.Append(ctx, bad, d, text("forked"))
	if _, err := dst.st.Apply(ctx, d, bad.ID(), fork); !errors.Is(err, feed.ErrForked) {
		t.Fatalf("fork: %v", err)
	}
	last := dst.st.Last()
	if err := dst.st.Block(d, bad.ID()); err != nil {
		t.Fatal(err)
	}
	if err := dst.st.Purge(ctx, d, bad.ID()); err != nil {
		t.Fatal(err)
	}
	check := func(st *feed.Store) {
		t.Helper()
		heads, err := st.Heads(d)
		if err != nil || len(heads) != 1 || heads[0].Author != good.ID() {
			t.Fatalf("heads after purge: %+v %v", heads, err)
		}
		if h, _ := st.Head(d, bad.ID()); h.Len != 0 || h.Forked {
			t.Fatalf("purged head %+v", h)
		}
		if got := entriesOf(t, st, d, bad.ID()); len(got) != 0 {
			t.Fatalf("%d purged entries left", len(got))
		}
		if forks, _ := st.Forks(d); len(forks) != 0 {
			t.Fatalf("fork evidence left: %d", len(forks))
		}
		all := sinceAll(t, st)
		if countBy(all, bad.ID()) != 0 || countBy(all, good.ID()) != 5 {
			t.Fatalf("since after purge: %d bad, %d good", countBy(all, bad.ID()), countBy(all, good.ID()))
		}
		// From an arrival number inside the purged run, too.
		var n int
		if err := st.Since(3, 0, func(_ uint64, e feed.Entry) error {
			if e.Author == bad.ID() {
				t.Fatal("purged entry returned")
			}
			n++
			return nil
		}); err != nil || n != 3 {
			t.Fatalf("since 3: %d %v", n, err)
		}
	}
	check(dst.st)
	dir := dst.dir
	dst.close()
	re := openEnv(t, dir)
	check(re.st)
	if !re.st.IsBlocked(d, bad.ID()) {
		t.Fatal("block lost")
	}
	if re.st.Last() < last {
		t.Fatalf("arrival counter went back from %d to %d after a purge and reopen", last, re.st.Last())
	}
	// Unblocked, the feed comes back from seq 0, under new arrival numbers.
	if err := re.st.Unblock(d, bad.ID()); err != nil {
		t.Fatal(err)
	}
	if n, err := re.st.Apply(ctx, d, bad.ID(), eb); err != nil || n != 50 {
		t.Fatalf("re-apply after purge: %d %v", n, err)
	}
	var first uint64
	if err := re.st.Since(0, 0, func(n uint64, e feed.Entry) error {
		if e.Author == bad.ID() && first == 0 {
			first = n
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if first <= last {
		t.Fatalf("re-applied entry got arrival %d, not after %d", first, last)
	}
	if got := countBy(sinceAll(t, re.st), bad.ID()); got != 50 {
		t.Fatalf("%d entries after re-apply", got)
	}
}

// TestPurgeChannel: every feed of the channel and its record go; another
// channel's feeds stay.
func TestPurgeChannel(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	id, _ := feed.NewIdentity()
	k2, _ := feed.NewChannelKey()
	ch2 := feed.Channel{Key: k2, Name: "other"}
	if err := e.st.Join(ch2); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Append(ctx, id, e.ch.ID(), texts(20)...); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Append(ctx, id, ch2.ID(), texts(7)...); err != nil {
		t.Fatal(err)
	}
	if err := e.st.PurgeChannel(ctx, e.ch.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Channel(e.ch.ID()); !errors.Is(err, feed.ErrUnknownChannel) {
		t.Fatalf("channel record left: %v", err)
	}
	if heads, _ := e.st.Heads(e.ch.ID()); len(heads) != 0 {
		t.Fatalf("heads left: %+v", heads)
	}
	all := sinceAll(t, e.st)
	if len(all) != 7 || all[0].Channel != ch2.ID() {
		t.Fatalf("since after channel purge: %d entries", len(all))
	}
	// Own appends to the other channel go on from where they were.
	if es, err := e.st.Append(ctx, id, ch2.ID(), text("more")); err != nil || es[0].Seq != 7 {
		t.Fatalf("append after purge: %v", err)
	}
}

// TestInterruptedPurgeFinishedOnOpen: a purge whose marker is still there
// (a crash between its transactions) is finished when the store opens.
func TestInterruptedPurgeFinishedOnOpen(t *testing.T) {
	ctx := context.Background()
	src := newEnv(t)
	d := src.ch.ID()
	dst := newEnv(t, src.ch)
	bad, _ := feed.NewIdentity()
	good, _ := feed.NewIdentity()
	eb, _ := src.st.Append(ctx, bad, d, texts(30)...)
	eg, _ := src.st.Append(ctx, good, d, texts(3)...)
	if _, err := dst.st.Apply(ctx, d, bad.ID(), eb); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.st.Apply(ctx, d, good.ID(), eg); err != nil {
		t.Fatal(err)
	}
	// The state right after the purge's first step: its marker (key
	// "fp" D author, see feed/block.go), nothing deleted yet.
	a := bad.ID()
	mark := append(append([]byte("fp"), d[:]...), a[:]...)
	if err := dst.db.Update(func(txn *badger.Txn) error { return txn.Set(mark, nil) }); err != nil {
		t.Fatal(err)
	}
	dir := dst.dir
	dst.close()
	re := openEnv(t, dir)
	if heads, _ := re.st.Heads(d); len(heads) != 1 || heads[0].Author != good.ID() {
		t.Fatalf("heads after the open finished the purge: %+v", heads)
	}
	all := sinceAll(t, re.st)
	if countBy(all, bad.ID()) != 0 || len(all) != 3 {
		t.Fatalf("since: %d entries, %d of the purged feed", len(all), countBy(all, bad.ID()))
	}
	if got := entriesOf(t, re.st, d, bad.ID()); len(got) != 0 {
		t.Fatalf("%d entries left", len(got))
	}
}
