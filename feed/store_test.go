package feed_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/storage"
)

type env struct {
	dir string
	db  *badger.DB
	st  *feed.Store
	ch  feed.Channel
}

func openEnv(t testing.TB, dir string) *env {
	t.Helper()
	db, err := storage.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := feed.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{dir: dir, db: db, st: st}
	t.Cleanup(func() { e.close() })
	return e
}

func (e *env) close() {
	if e.db != nil {
		e.db.Close()
		e.db = nil
	}
}

// newEnv opens a fresh store that has joined ch, or a new channel if none.
func newEnv(t testing.TB, ch ...feed.Channel) *env {
	e := openEnv(t, t.TempDir())
	if len(ch) > 0 {
		e.ch = ch[0]
	} else {
		k, err := feed.NewChannelKey()
		if err != nil {
			t.Fatal(err)
		}
		e.ch = feed.Channel{Key: k, Name: "general"}
	}
	if err := e.st.Join(e.ch); err != nil {
		t.Fatal(err)
	}
	return e
}

func text(s string) feed.Payload { return feed.Payload{Kind: feed.KindText, Text: s} }

func texts(n int) []feed.Payload {
	out := make([]feed.Payload, n)
	for i := range out {
		out[i] = text(fmt.Sprintf("message %d", i))
	}
	return out
}

// entriesOf reads a whole feed.
func entriesOf(t testing.TB, st *feed.Store, ch feed.DiscoveryID, a feed.AuthorID) []feed.Entry {
	t.Helper()
	var out []feed.Entry
	if err := st.Range(ch, a, 0, 0, func(e feed.Entry) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAppendReadRoundTripAndRestart(t *testing.T) {
	e := newEnv(t)
	id, _ := feed.NewIdentity()
	ctx := context.Background()
	es, err := e.st.Append(ctx, id, e.ch.ID(), texts(5)...)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 5 || es[4].Seq != 4 {
		t.Fatalf("got %d entries, last seq %d", len(es), es[len(es)-1].Seq)
	}
	more, err := e.st.Append(ctx, id, e.ch.ID(), text("six"))
	if err != nil || more[0].Seq != 5 || more[0].Prev != es[4].Hash() {
		t.Fatalf("second append: %v seq %d", err, more[0].Seq)
	}
	dir := e.dir
	e.close()

	e2 := openEnv(t, dir)
	h, err := e2.st.Head(e.ch.ID(), id.ID())
	if err != nil || h.Len != 6 || h.Hash != more[0].Hash() {
		t.Fatalf("head after restart: %+v %v", h, err)
	}
	got, err := e2.st.Get(e.ch.ID(), id.ID(), 2)
	if err != nil {
		t.Fatal(err)
	}
	p, err := feed.UnmarshalPayload(got.Payload)
	if err != nil || p.Text != "message 2" || p.Kind != feed.KindText {
		t.Fatalf("payload %+v %v", p, err)
	}
	if err := got.VerifySignature(); err != nil {
		t.Fatal(err)
	}
	if e2.st.Last() != 6 {
		t.Fatalf("arrival counter %d after restart, want 6", e2.st.Last())
	}
	var n int
	if err := e2.st.Since(3, 0, func(i uint64, en feed.Entry) error {
		if en.Seq != i-1 {
			return fmt.Errorf("arrival %d holds seq %d", i, en.Seq)
		}
		n++
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("since: %d %v", n, err)
	}
	chans, err := e2.st.Channels()
	if err != nil || len(chans) != 1 || chans[0].Name != "general" {
		t.Fatalf("channels after restart %+v %v", chans, err)
	}
	if _, err := e2.st.Get(e.ch.ID(), id.ID(), 6); !errors.Is(err, feed.ErrNotFound) {
		t.Fatalf("missing entry: %v", err)
	}
}

func TestApplyReplicatedBatch(t *testing.T) {
	src := newEnv(t)
	dst := newEnv(t, src.ch)
	id, _ := feed.NewIdentity()
	ctx := context.Background()
	es, err := src.st.Append(ctx, id, src.ch.ID(), texts(100)...)
	if err != nil {
		t.Fatal(err)
	}
	d := src.ch.ID()
	n, err := dst.st.Apply(ctx, d, id.ID(), es[:60])
	if err != nil || n != 60 {
		t.Fatalf("apply: %d %v", n, err)
	}
	// Overlapping batch: only the new part is stored.
	n, err = dst.st.Apply(ctx, d, id.ID(), es[50:])
	if err != nil || n != 40 {
		t.Fatalf("overlapping apply: %d %v", n, err)
	}
	n, err = dst.st.Apply(ctx, d, id.ID(), es[10:20])
	if err != nil || n != 0 {
		t.Fatalf("old batch: %d %v", n, err)
	}
	h, _ := dst.st.Head(d, id.ID())
	if h.Len != 100 || h.Hash != es[99].Hash() {
		t.Fatalf("head %+v", h)
	}
	// Unknown channel.
	other, _ := feed.NewChannelKey()
	if _, err := dst.st.Apply(ctx, other.DiscoveryID(), id.ID(), es); !errors.Is(err, feed.ErrUnknownChannel) {
		t.Fatalf("unknown channel: %v", err)
	}
}

func TestApplyRejectsTampering(t *testing.T) {
	ctx := context.Background()
	id, _ := feed.NewIdentity()
	mallory, _ := feed.NewIdentity()
	src := newEnv(t)
	d := src.ch.ID()
	es, err := src.st.Append(ctx, id, d, texts(10)...)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := feed.NewChannelKey()

	reencode := func(e feed.Entry) feed.Entry {
		// Round trip through fields drops the cached encoding.
		return feed.Entry{Author: e.Author, Channel: e.Channel, Seq: e.Seq, Prev: e.Prev, Time: e.Time, Payload: e.Payload, Sig: e.Sig}
	}
	cases := map[string]func(b []feed.Entry) (feed.AuthorID, []feed.Entry){
		"signature": func(b []feed.Entry) (feed.AuthorID, []feed.Entry) {
			x := reencode(b[9])
			x.Sig[0] ^= 1
			b[9] = x
			return id.ID(), b
		},
		"prev": func(b []feed.Entry) (feed.AuthorID, []feed.Entry) {
			x := reencode(b[5])
			x.Prev[3] ^= 1
			b[5] = x
			return id.ID(), b
		},
		"seq": func(b []feed.Entry) (feed.AuthorID, []feed.Entry) {
			x := reencode(b[4])
			x.Seq = 40
			b[4] = x
			return id.ID(), b
		},
		"missing entry": func(b []feed.Entry) (feed.AuthorID, []feed.Entry) {
			return id.ID(), append(b[:3:3], b[4:]...)
		},
		"author": func(b []feed.Entry) (feed.AuthorID, []feed.Entry) {
			// Claim the feed belongs to someone else.
			return mallory.ID(), b
		},
		"channel": func(b []feed.Entry) (feed.AuthorID, []feed.Entry) {
			x := reencode(b[2])
			x.Channel = otherKey.DiscoveryID()
			b[2] = x
			return id.ID(), b
		},
		"payload": func(b []feed.Entry) (feed.AuthorID, []feed.Entry) {
			x := reencode(b[7])
			x.Payload = append([]byte(nil), x.Payload...)
			x.Payload[len(x.Payload)-1] ^= 1
			b[7] = x
			return id.ID(), b
		},
		"last payload": func(b []feed.Entry) (feed.AuthorID, []feed.Entry) {
			x := reencode(b[9])
			x.Payload = append([]byte(nil), x.Payload...)
			x.Payload[len(x.Payload)-1] ^= 1
			b[9] = x
			return id.ID(), b
		},
		"time": func(b []feed.Entry) (feed.AuthorID, []feed.Entry) {
			x := reencode(b[9])
			x.Time++
			b[9] = x
			return id.ID(), b
		},
		"start not at head": func(b []feed.Entry) (feed.AuthorID, []feed.Entry) {
			return id.ID(), b[1:]
		},
		"oversize": func(b []feed.Entry) (feed.AuthorID, []feed.Entry) {
			x := reencode(b[9])
			x.Payload = make([]byte, feed.MaxPayload+1)
			b[9] = x
			return id.ID(), b
		},
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			dst := newEnv(t, src.ch)
			b := append([]feed.Entry(nil), es...)
			author, b := tamper(b)
			before := dst.st.Last()
			n, err := dst.st.Apply(ctx, d, author, b)
			if err == nil {
				t.Fatalf("tampered batch accepted (%d entries)", n)
			}
			if dst.st.Last() != before {
				t.Fatal("store changed")
			}
			h, _ := dst.st.Head(d, id.ID())
			hm, _ := dst.st.Head(d, mallory.ID())
			if h.Len != 0 || hm.Len != 0 {
				t.Fatalf("heads changed: %+v %+v", h, hm)
			}
			// The honest batch is still accepted afterwards.
			if n, err := dst.st.Apply(ctx, d, id.ID(), es); err != nil || n != 10 {
				t.Fatalf("honest batch after rejection: %d %v", n, err)
			}
		})
	}
}

func TestForkDetected(t *testing.T) {
	ctx := context.Background()
	id, _ := feed.NewIdentity()
	// The author writes different histories of one feed in a and b.
	a := newEnv(t)
	b := newEnv(t, a.ch)
	d := a.ch.ID()
	ea, _ := a.st.Append(ctx, id, d, texts(5)...)
	eb, _ := b.st.Append(ctx, id, d, text("other 0"), text("other 1"))
	dst := newEnv(t, a.ch)
	if _, err := dst.st.Apply(ctx, d, id.ID(), ea); err != nil {
		t.Fatal(err)
	}
	_, err := dst.st.Apply(ctx, d, id.ID(), eb)
	if !errors.Is(err, feed.ErrForked) {
		t.Fatalf("fork not detected: %v", err)
	}
	forks, err := dst.st.Forks(d)
	if err != nil || len(forks) != 1 || forks[0].Author != id.ID() {
		t.Fatalf("fork evidence %+v %v", forks, err)
	}
	h, _ := dst.st.Head(d, id.ID())
	if !h.Forked || h.Len != 5 {
		t.Fatalf("head after fork %+v", h)
	}
	// Further entries of that feed are refused, even valid continuations.
	more, _ := a.st.Append(ctx, id, d, text("later"))
	if _, err := dst.st.Apply(ctx, d, id.ID(), more); !errors.Is(err, feed.ErrForked) {
		t.Fatalf("forked feed accepted more: %v", err)
	}
}

// TestCopiesSkipTheSignatureButNotTheFork: a batch that only repeats held
// entries stores nothing and is no error (the mesh's copies), while another
// entry at a held seq, the head's too, is a fork however short the batch.
func TestCopiesSkipTheSignatureButNotTheFork(t *testing.T) {
	ctx := context.Background()
	id, _ := feed.NewIdentity()
	a := newEnv(t)
	b := newEnv(t, a.ch)
	d := a.ch.ID()
	ea, _ := a.st.Append(ctx, id, d, texts(3)...)
	eb, _ := b.st.Append(ctx, id, d, text("other 0"), text("other 1"), text("other 2"))
	dst := newEnv(t, a.ch)
	if _, err := dst.st.Apply(ctx, d, id.ID(), ea); err != nil {
		t.Fatal(err)
	}
	for _, copies := range [][]feed.Entry{ea, ea[:1], ea[1:2], ea[2:]} {
		if n, err := dst.st.Apply(ctx, d, id.ID(), copies); n != 0 || err != nil {
			t.Fatalf("copies of seq %d..: stored %d, %v", copies[0].Seq, n, err)
		}
	}
	// A copy with its signature changed is not a copy.
	raw := append([]byte(nil), ea[2].Encode()...)
	raw[len(raw)-1] ^= 1
	bad, err := feed.DecodeEntry(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dst.st.Apply(ctx, d, id.ID(), []feed.Entry{bad}); !errors.Is(err, feed.ErrBadSignature) {
		t.Fatalf("held seq with a bad signature: %v", err)
	}
	// The other branch at the head's seq.
	if _, err := dst.st.Apply(ctx, d, id.ID(), eb[2:]); !errors.Is(err, feed.ErrForked) {
		t.Fatalf("another entry at the head's seq: %v, want a fork", err)
	}
	if h, _ := dst.st.Head(d, id.ID()); !h.Forked || h.Len != 3 {
		t.Fatalf("head after a fork at its seq: %+v", h)
	}
}

func TestConcurrentAppendsStayContiguous(t *testing.T) {
	e := newEnv(t)
	id, _ := feed.NewIdentity()
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if _, err := e.st.Append(ctx, id, e.ch.ID(), text(fmt.Sprintf("g%d-%d", g, i)), text("x")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	all := entriesOf(t, e.st, e.ch.ID(), id.ID())
	if len(all) != 400 {
		t.Fatalf("%d entries, want 400", len(all))
	}
	for i, en := range all {
		if en.Seq != uint64(i) || (i > 0 && en.Prev != all[i-1].Hash()) {
			t.Fatalf("entry %d: seq %d, chain broken", i, en.Seq)
		}
	}
	// A fresh store accepts the whole feed as one batch: it is a valid chain.
	dst := newEnv(t, e.ch)
	if n, err := dst.st.Apply(ctx, e.ch.ID(), id.ID(), all); err != nil || n != 400 {
		t.Fatalf("apply: %d %v", n, err)
	}
}

func TestSubscriptionSignals(t *testing.T) {
	e := newEnv(t)
	id, _ := feed.NewIdentity()
	sub := e.st.Subscribe()
	defer sub.Close()
	if _, err := e.st.Append(context.Background(), id, e.ch.ID(), text("a")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.C():
	default:
		t.Fatal("no signal after append")
	}
}

func TestAppendRejectsBadInput(t *testing.T) {
	e := newEnv(t)
	id, _ := feed.NewIdentity()
	ctx := context.Background()
	big := make([]byte, feed.MaxPayload)
	for i := range big {
		big[i] = 'a'
	}
	for name, p := range map[string]feed.Payload{
		"empty":     text(""),
		"oversize":  text(string(big)),
		"bad utf8":  text("\xff\xfe"),
		"bad kind":  {Kind: 99, Text: "x"},
		"long nick": {Kind: feed.KindNick, Text: string(big[:65])},
	} {
		if _, err := e.st.Append(ctx, id, e.ch.ID(), text("ok"), p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if e.st.Last() != 0 {
		t.Fatal("a rejected append stored something")
	}
	other, _ := feed.NewChannelKey()
	if _, err := e.st.Append(ctx, id, other.DiscoveryID(), text("x")); !errors.Is(err, feed.ErrUnknownChannel) {
		t.Fatalf("unknown channel: %v", err)
	}
}

func TestLargeEntriesSplitAcrossTransactions(t *testing.T) {
	src := newEnv(t)
	id, _ := feed.NewIdentity()
	ctx := context.Background()
	big := make([]byte, feed.MaxPayload-32)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	ps := make([]feed.Payload, 300)
	for i := range ps {
		ps[i] = text(string(big))
	}
	es, err := src.st.Append(ctx, id, src.ch.ID(), ps...)
	if err != nil {
		t.Fatal(err)
	}
	dst := newEnv(t, src.ch)
	if n, err := dst.st.Apply(ctx, src.ch.ID(), id.ID(), es); err != nil || n != 300 {
		t.Fatalf("apply 300 large entries: %d %v", n, err)
	}
	var seen int
	if err := dst.st.Since(0, 0, func(n uint64, e feed.Entry) error { seen++; return nil }); err != nil || seen != 300 {
		t.Fatalf("since: %d %v", seen, err)
	}
}

func TestApplyRejectsMalformedPayload(t *testing.T) {
	src := newEnv(t)
	id, _ := feed.NewIdentity()
	e, err := feed.NewEntry(id, src.ch.ID(), feed.Head{}, 1, []byte{0xff, 0x00})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.st.Apply(context.Background(), src.ch.ID(), id.ID(), []feed.Entry{e}); !errors.Is(err, feed.ErrMalformed) {
		t.Fatalf("non-CBOR payload: %v", err)
	}
	if src.st.Last() != 0 {
		t.Fatal("stored")
	}
}

func TestSinceInterleavedFeeds(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ids := make([]*feed.Identity, 3)
	for i := range ids {
		ids[i], _ = feed.NewIdentity()
	}
	type ref struct {
		a   feed.AuthorID
		seq uint64
	}
	var want []ref
	for round := 0; round < 20; round++ {
		id := ids[round%3]
		es, err := e.st.Append(ctx, id, e.ch.ID(), texts(1+round%4)...)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range es {
			want = append(want, ref{x.Author, x.Seq})
		}
	}
	var got []ref
	if err := e.st.Since(0, 0, func(n uint64, x feed.Entry) error {
		if n != uint64(len(got)+1) {
			return fmt.Errorf("arrival %d out of order", n)
		}
		got = append(got, ref{x.Author, x.Seq})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatal("since order differs from write order")
	}
	// Limits and offsets.
	var part []ref
	e.st.Since(7, 5, func(n uint64, x feed.Entry) error { part = append(part, ref{x.Author, x.Seq}); return nil })
	if fmt.Sprint(part) != fmt.Sprint(want[7:12]) {
		t.Fatalf("since(7, 5) = %v", part)
	}
}

// TestSinceFromMemoryEqualsDisk: Since answers from the recent-arrivals
// cache exactly as from Badger (after a reopen the cache is empty), for any
// start and limit, across the cache's eviction boundary.
func TestSinceFromMemoryEqualsDisk(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id, _ := feed.NewIdentity()
	// About 6 MB of entries: more than the cache holds.
	big := strings.Repeat("x", 1500)
	for range 8 {
		ps := make([]feed.Payload, 500)
		for i := range ps {
			ps[i] = text(big)
		}
		if _, err := e.st.Append(ctx, id, e.ch.ID(), ps...); err != nil {
			t.Fatal(err)
		}
	}
	type read struct {
		n   uint64
		raw string
	}
	since := func(st *feed.Store, after uint64, limit int) []read {
		var out []read
		if err := st.Since(after, limit, func(n uint64, x feed.Entry) error {
			out = append(out, read{n, string(x.Encode())})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	cases := [][2]int{{0, 0}, {0, 10}, {1000, 0}, {3990, 20}, {3999, 0}, {4000, 5}, {2500, 1000}, {1500, 1}}
	mem := make([][]read, len(cases))
	for i, c := range cases {
		mem[i] = since(e.st, uint64(c[0]), c[1])
	}
	dir := e.dir
	e.close()
	disk := openEnv(t, dir)
	for i, c := range cases {
		d := since(disk.st, uint64(c[0]), c[1])
		if len(d) != len(mem[i]) {
			t.Fatalf("Since(%d, %d): %d entries from memory, %d from disk", c[0], c[1], len(mem[i]), len(d))
		}
		for j := range d {
			if d[j] != mem[i][j] {
				t.Fatalf("Since(%d, %d) entry %d differs between memory and disk", c[0], c[1], j)
			}
		}
	}
}

// TestRunFromMemoryIsRunFromDisk: Run serves just-stored entries from the
// recent-arrivals cache; whatever the start and the limits, it returns what
// a store reading Badger returns (the same entries, cut at the same
// verified entry), for runs received in batches whose inner entries are
// not marked verified.
func TestRunFromMemoryIsRunFromDisk(t *testing.T) {
	ctx := context.Background()
	id, _ := feed.NewIdentity()
	src := newEnv(t)
	d := src.ch.ID()
	es, err := src.st.Append(ctx, id, d, texts(50)...)
	if err != nil {
		t.Fatal(err)
	}
	dst := newEnv(t, src.ch)
	for _, cut := range [][2]int{{0, 1}, {1, 8}, {8, 28}, {28, 50}} {
		if _, err := dst.st.Apply(ctx, d, id.ID(), es[cut[0]:cut[1]]); err != nil {
			t.Fatal(err)
		}
	}
	disk, err := feed.Open(dst.db) // a second store on the same data: nothing cached
	if err != nil {
		t.Fatal(err)
	}
	size := len(es[0].Encode())
	for _, st := range []*feed.Store{src.st, dst.st} {
		for seq := uint64(0); seq <= 50; seq++ { // Get answers from the same cache
			mem, err1 := st.Get(d, id.ID(), seq)
			want, err2 := disk.Get(d, id.ID(), seq)
			if (err1 == nil) != (err2 == nil) || mem.Hash() != want.Hash() || mem.Seq != want.Seq {
				t.Fatalf("Get seq %d: memory %v (%v), disk %v (%v)", seq, mem.Hash(), err1, want.Hash(), err2)
			}
			if seq == 50 && !errors.Is(err1, feed.ErrNotFound) {
				t.Fatalf("Get past the head: %v, want ErrNotFound", err1)
			}
		}
		for from := uint64(0); from <= 50; from++ {
			for _, maxN := range []int{1, 3, 10, 100} {
				for _, maxB := range []int{1, 5*size + 1, 1 << 20} {
					mem, err1 := st.Run(d, id.ID(), from, maxN, maxB)
					want, err2 := disk.Run(d, id.ID(), from, maxN, maxB)
					if err1 != nil || err2 != nil {
						t.Fatalf("from %d: %v, %v", from, err1, err2)
					}
					if len(mem) != len(want) {
						t.Fatalf("from %d max %d/%d B: %d entries from memory, %d from disk", from, maxN, maxB, len(mem), len(want))
					}
					for i := range mem {
						if mem[i].Hash() != want[i].Hash() {
							t.Fatalf("from %d: entry %d differs", from, i)
						}
					}
				}
			}
		}
	}
}
