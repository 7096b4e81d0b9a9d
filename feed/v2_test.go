package feed_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/storage"
)

// poisonedFeed builds n entries of id's feed in ch whose signatures are
// valid only where good(seq) holds; the others carry a garbage signature
// but are chained under the later valid ones (what a hostile author can do).
func poisonedFeed(t testing.TB, id *feed.Identity, ch feed.DiscoveryID, n int, good func(seq uint64) bool) []feed.Entry {
	t.Helper()
	raw, err := text("x").Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var out []feed.Entry
	h := feed.Head{Author: id.ID()}
	for i := range n {
		e, err := feed.NewEntry(id, ch, h, int64(1000+i), raw)
		if err != nil {
			t.Fatal(err)
		}
		if !good(uint64(i)) {
			bad := feed.Entry{Author: e.Author, Channel: e.Channel, Seq: e.Seq, Prev: e.Prev, Time: e.Time, Payload: e.Payload}
			bad.Sig[0] = 1
			e = bad
		}
		out = append(out, e)
		h = feed.Head{Author: id.ID(), Len: e.Seq + 1, Hash: e.Hash()}
	}
	return out
}

// TestPoisonedRunIsServedAtVerifiedEnds is issue 11's point 2 at the store:
// a feed of 1,100 entries whose entry 1023 has a bad signature, accepted in
// runs of 1,000 and 100, is served to a newcomer in runs that each end at an
// entry with a valid signature of its own, however the limits cut it, so the
// newcomer accepts all of it.
func TestPoisonedRunIsServedAtVerifiedEnds(t *testing.T) {
	ctx := context.Background()
	id, _ := feed.NewIdentity()
	seed := newEnv(t)
	d := seed.ch.ID()
	es := poisonedFeed(t, id, d, 1100, func(seq uint64) bool { return seq != 1023 })
	for _, run := range [][]feed.Entry{es[:1000], es[1000:]} {
		if _, err := seed.st.Apply(ctx, d, id.ID(), run); err != nil {
			t.Fatal(err)
		}
	}
	// The run ending at 1023 is refused on its own, as the rules say.
	probe := newEnv(t, seed.ch)
	if _, err := probe.st.Apply(ctx, d, id.ID(), es[:1024]); !errors.Is(err, feed.ErrBadSignature) {
		t.Fatalf("a run ending at the poisoned entry: %v, want ErrBadSignature", err)
	}
	for _, limit := range []int{1024, 1000, 24, 7, 2} {
		fresh := newEnv(t, seed.ch)
		var from uint64
		for from < 1100 {
			run, err := seed.st.Run(d, id.ID(), from, limit, 512<<10)
			if err != nil {
				t.Fatalf("limit %d: run from %d: %v", limit, from, err)
			}
			if len(run) == 0 {
				t.Fatalf("limit %d: empty run from %d", limit, from)
			}
			if err := run[len(run)-1].VerifySignature(); err != nil {
				t.Fatalf("limit %d: run from %d ends at an unverifiable entry: %v", limit, from, err)
			}
			if _, err := fresh.st.Apply(ctx, d, id.ID(), run); err != nil {
				t.Fatalf("limit %d: newcomer refused run %d..%d: %v", limit, from, run[len(run)-1].Seq, err)
			}
			from = run[len(run)-1].Seq + 1
		}
		h, _ := fresh.st.Head(d, id.ID())
		if h.Len != 1100 || h.Hash != es[1099].Hash() {
			t.Fatalf("limit %d: newcomer head %+v", limit, h)
		}
	}
}

// TestVerifiedPrefix: the longest prefix ending at a valid signature.
func TestVerifiedPrefix(t *testing.T) {
	id, _ := feed.NewIdentity()
	var d feed.DiscoveryID
	es := poisonedFeed(t, id, d, 10, func(seq uint64) bool { return seq%4 == 1 })
	if n := feed.VerifiedPrefix(es); n != 10 && n != 6 {
		t.Fatalf("prefix %d", n)
	}
	if n := feed.VerifiedPrefix(es[:9]); n != 6 {
		t.Fatalf("prefix of 9: %d, want 6", n)
	}
	if n := feed.VerifiedPrefix(es[2:5]); n != 0 {
		t.Fatalf("prefix of 2..4: %d, want 0", n)
	}
}

// TestBudgetThrottlesOneAuthor: an author over its budget is refused with a
// ThrottleError (nothing stored), another author is not affected, and the
// refused run fits again once the bucket has refilled.
func TestBudgetThrottlesOneAuthor(t *testing.T) {
	ctx := context.Background()
	src := newEnv(t)
	d := src.ch.ID()
	now := time.Unix(1_700_000_000, 0)
	db, err := storage.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dst, err := feed.Open(db, feed.WithBudget(feed.Budget{Burst: 4000, Rate: 1000}), feed.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.Join(src.ch); err != nil {
		t.Fatal(err)
	}
	flood, _ := feed.NewIdentity()
	honest, _ := feed.NewIdentity()
	fe, _ := src.st.Append(ctx, flood, d, texts(40)...) // ~200 bytes each
	he, _ := src.st.Append(ctx, honest, d, texts(3)...)
	size := len(fe[0].Encode())
	per := 4000 / size // entries that fit the burst
	if _, err := dst.Apply(ctx, d, flood.ID(), fe[:per]); err != nil {
		t.Fatalf("within the burst: %v", err)
	}
	_, err = dst.Apply(ctx, d, flood.ID(), fe[per:per+5])
	var te *feed.ThrottleError
	if !errors.Is(err, feed.ErrThrottled) || !errors.As(err, &te) || te.RetryAfter <= 0 {
		t.Fatalf("over the budget: %v", err)
	}
	if h, _ := dst.Head(d, flood.ID()); h.Len != uint64(per) {
		t.Fatalf("throttled run was stored: head %d, want %d", h.Len, per)
	}
	if !dst.Throttled(d, flood.ID()) || dst.Throttled(d, honest.ID()) {
		t.Fatal("Throttled does not name the flooder alone")
	}
	if _, err := dst.Apply(ctx, d, honest.ID(), he); err != nil {
		t.Fatalf("another author was throttled too: %v", err)
	}
	now = now.Add(te.RetryAfter)
	if _, err := dst.Apply(ctx, d, flood.ID(), fe[per:per+5]); err != nil {
		t.Fatalf("after RetryAfter: %v", err)
	}
}

// TestRecordForkFromEvidence: evidence from a peer freezes the feed; bad
// evidence is refused and changes nothing.
func TestRecordForkFromEvidence(t *testing.T) {
	ctx := context.Background()
	id, _ := feed.NewIdentity()
	a := newEnv(t)
	b := newEnv(t, a.ch)
	d := a.ch.ID()
	ea, _ := a.st.Append(ctx, id, d, texts(3)...)
	eb, _ := b.st.Append(ctx, id, d, text("other 0"))
	dst := newEnv(t, a.ch)
	if _, err := dst.st.Apply(ctx, d, id.ID(), ea[:2]); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		x, y feed.Entry
	}{
		{"same entry", ea[0], ea[0]},
		{"two seqs", ea[1], eb[0]},
		{"bad signature", ea[0], func() feed.Entry {
			e := feed.Entry{Author: eb[0].Author, Channel: d, Seq: 0, Time: 1, Payload: eb[0].Payload}
			return e
		}()},
	}
	for _, c := range bad {
		if _, err := dst.st.RecordFork(d, c.x, c.y); !errors.Is(err, feed.ErrBadEvidence) {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	if h, _ := dst.st.Head(d, id.ID()); h.Forked {
		t.Fatal("bad evidence froze the feed")
	}
	v := dst.st.Version(d)
	isNew, err := dst.st.RecordFork(d, eb[0], ea[0])
	if err != nil || !isNew {
		t.Fatalf("record: %v %v", isNew, err)
	}
	if h, _ := dst.st.Head(d, id.ID()); !h.Forked || h.Len != 2 {
		t.Fatalf("head after evidence %+v", h)
	}
	ev, err := dst.st.Fork(d, id.ID())
	if err != nil || ev.Seq != 0 || string(ev.Held) != string(ea[0].Encode()) || !ev.Portable() {
		t.Fatalf("stored evidence %+v %v", ev, err)
	}
	if _, err := dst.st.Apply(ctx, d, id.ID(), ea[2:]); !errors.Is(err, feed.ErrForked) {
		t.Fatalf("continuation after evidence: %v", err)
	}
	if again, err := dst.st.RecordFork(d, ea[0], eb[0]); err != nil || again {
		t.Fatalf("second record: %v %v", again, err)
	}
	hs, _, ok := dst.st.Changes(d, v)
	if !ok || len(hs) != 1 || !hs[0].Forked {
		t.Fatalf("changes after the fork: %+v %v", hs, ok)
	}
}

// TestChangesListWhatChanged: Changes lists each changed feed once with its
// current head, and only those.
func TestChangesListWhatChanged(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	d := e.ch.ID()
	var ids []*feed.Identity
	for range 5 {
		id, _ := feed.NewIdentity()
		ids = append(ids, id)
		if _, err := e.st.Append(ctx, id, d, text("a")); err != nil {
			t.Fatal(err)
		}
	}
	v := e.st.Version(d)
	e.st.Append(ctx, ids[1], d, text("b"))
	e.st.Append(ctx, ids[3], d, text("c"))
	e.st.Append(ctx, ids[1], d, text("d"))
	hs, v2, ok := e.st.Changes(d, v)
	if !ok || len(hs) != 2 || v2 != v+3 {
		t.Fatalf("changes %+v v%d ok %v", hs, v2, ok)
	}
	for _, h := range hs {
		want, _ := e.st.Head(d, h.Author)
		if h != want || (h.Author != ids[1].ID() && h.Author != ids[3].ID()) {
			t.Fatalf("change %+v, head %+v", h, want)
		}
	}
	if hs, _, ok := e.st.Changes(d, v2); !ok || len(hs) != 0 {
		t.Fatalf("nothing new: %+v", hs)
	}
}
