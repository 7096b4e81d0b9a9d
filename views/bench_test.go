package views

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/storage"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if bigDir != "" {
		os.RemoveAll(bigDir)
	}
	os.Exit(code)
}

// signFeeds builds n entries in channel d from authors, round robin, with
// claimed times 1 ms apart ending at t0, in batches of 1000 per author, and
// gives each batch to apply. Authors are split over the CPUs (signing is the
// cost); each author's batches come in seq order.
func signFeeds(b testing.TB, d feed.DiscoveryID, authors []*author, n int, apply func(a *author, es []feed.Entry)) {
	const batch = 1000
	per := n / len(authors)
	workers := min(runtime.GOMAXPROCS(0), len(authors))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := 0; start < per; start += batch {
				for ai := w; ai < len(authors); ai += workers {
					a := authors[ai]
					es := make([]feed.Entry, 0, batch)
					for j := start; j < min(start+batch, per); j++ {
						i := j*len(authors) + ai
						at := t0.Add(time.Duration(i-n) * time.Millisecond)
						p, _ := text(fmt.Sprintf("message %d from author %d, about nothing much", j, ai)).Marshal()
						es = append(es, a.entryRaw(d, at, p))
					}
					apply(a, es)
				}
			}
		}()
	}
	wg.Wait()
}

func authors(b testing.TB, n int) []*author {
	out := make([]*author, n)
	for i := range out {
		out[i] = newAuthor(b)
	}
	return out
}

var (
	fix100kOnce sync.Once
	fix100k     [][]feed.Entry // batches, in application order
)

// BenchmarkIndex measures catching up 100k entries from 10 authors into
// every view (the store is filled untimed, then the views opened on it).
func BenchmarkIndex(b *testing.B) {
	const n = 100_000
	d := fixKey.DiscoveryID()
	fix100kOnce.Do(func() {
		var mu sync.Mutex
		signFeeds(b, d, authors(b, 10), n, func(a *author, es []feed.Entry) {
			mu.Lock()
			fix100k = append(fix100k, es)
			mu.Unlock()
		})
	})
	ctx := context.Background()
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		e := &env{t: b, dir: b.TempDir(), ch: feed.Channel{Key: fixKey, Name: "bench"}, d: d, me: newAuthor(b), clock: &fakeClock{t: t0}}
		e.openStore()
		if err := e.st.Join(e.ch); err != nil {
			b.Fatal(err)
		}
		for _, es := range fix100k {
			if _, err := e.st.Apply(ctx, d, es[0].Author, es); err != nil {
				b.Fatal(err)
			}
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		total += catchUp(b, e)
		b.StopTimer()
		if got, _ := e.v.Count(d); got != n {
			b.Fatalf("indexed %d", got)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		// Heap the open DB and views hold beyond the in-memory fixture.
		b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/(1<<20), "heapMB")
		e.close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "entries/s")
}

// Channel keys of the benchmark fixtures.
var fixKey, bigKey, smallKey = mustKey(), mustKey(), mustKey()

func mustKey() feed.ChannelKey {
	k, err := feed.NewChannelKey()
	if err != nil {
		panic(err)
	}
	return k
}

var (
	bigOnce sync.Once
	bigDir  string
	bigErr  error
)

// bigFixture is a data dir holding a channel of 1M messages (10 authors) and
// one of 1k, fully indexed. It is built once per test process.
func bigFixture(b *testing.B) string {
	bigOnce.Do(func() {
		bigDir, bigErr = os.MkdirTemp("", "kchat-views-1M-")
		if bigErr != nil {
			return
		}
		start := time.Now()
		e := &env{t: b, dir: bigDir, me: newAuthor(b), clock: &fakeClock{t: t0}}
		e.openStore()
		defer e.close()
		ctx := context.Background()
		for _, k := range []feed.ChannelKey{bigKey, smallKey} {
			if bigErr = e.st.Join(feed.Channel{Key: k, Name: "c" + k.DiscoveryID().Short()}); bigErr != nil {
				return
			}
		}
		apply := func(d feed.DiscoveryID) func(a *author, es []feed.Entry) {
			return func(a *author, es []feed.Entry) {
				if _, err := e.st.Apply(ctx, d, a.ID(), es); err != nil {
					panic(err)
				}
			}
		}
		signFeeds(b, bigKey.DiscoveryID(), authors(b, 10), 1_000_000, apply(bigKey.DiscoveryID()))
		signFeeds(b, smallKey.DiscoveryID(), authors(b, 2), 1_000, apply(smallKey.DiscoveryID()))
		stored := time.Since(start)
		e.openViews()
		if bigErr = e.v.CatchUp(ctx); bigErr != nil {
			return
		}
		indexed := time.Since(start) - stored
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		b.Logf("1M fixture: signed and stored in %v, indexed in %v (%.0f entries/s); heap in use after %.1f MB",
			stored.Round(time.Millisecond), indexed.Round(time.Millisecond),
			1_001_000/indexed.Seconds(), float64(ms.HeapInuse)/(1<<20))
	})
	if bigErr != nil {
		b.Fatal(bigErr)
	}
	return bigDir
}

// BenchmarkLast50 reads the newest 50 messages of a channel of 1k and of
// one of 1M messages (same DB). The two should cost about the same.
func BenchmarkLast50(b *testing.B) {
	if testing.Short() {
		b.Skip("1M-message fixture skipped in -short mode")
	}
	dir := bigFixture(b)
	e := &env{t: b, dir: dir, me: newAuthor(b), clock: &fakeClock{t: t0}}
	e.openStore()
	defer e.close()
	e.openViews()
	for _, c := range []struct {
		name string
		d    feed.DiscoveryID
		n    int
	}{{"1k", smallKey.DiscoveryID(), 1_000}, {"1M", bigKey.DiscoveryID(), 1_000_000}} {
		if got, _ := e.v.Count(c.d); got != c.n {
			b.Fatalf("%s: %d messages", c.name, got)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ms, err := e.v.Last(c.d, 50)
				if err != nil || len(ms) != 50 {
					b.Fatalf("%d %v", len(ms), err)
				}
			}
		})
	}
}

// BenchmarkReadCommand is `kchat read CHANNEL --limit 50` on the 1M data
// dir, from opening the DB to closing it.
func BenchmarkReadCommand(b *testing.B) {
	if testing.Short() {
		b.Skip("1M-message fixture skipped in -short mode")
	}
	dir := bigFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		db, err := storage.Open(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		st, err := feed.Open(db)
		if err != nil {
			b.Fatal(err)
		}
		v, err := Open(db, st, feed.AuthorID{})
		if err != nil {
			b.Fatal(err)
		}
		if err := v.CatchUp(context.Background()); err != nil {
			b.Fatal(err)
		}
		ms, err := v.Last(bigKey.DiscoveryID(), 50)
		if err != nil || len(ms) != 50 {
			b.Fatalf("%d %v", len(ms), err)
		}
		v.Close()
		db.Close()
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heapMB")
}

// BenchmarkReopen: closing and opening views on an indexed store of 2000
// entries (what TestOpenDoesNotReindex checks for correctness).
func BenchmarkReopen(b *testing.B) {
	e := newEnv(b)
	e.say(newAuthor(b), t0, texts("x", 2000)...)
	e.wait()
	for b.Loop() {
		e.v.Close()
		e.openViews()
	}
}

// catchUp opens e's views and waits until they caught up with the store,
// returning how long that took.
func catchUp(b *testing.B, e *env) time.Duration {
	start := time.Now()
	e.openViews()
	if err := e.v.CatchUp(context.Background()); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkIndexModerated measures catching up a channel of 50k messages
// from 5 authors where an admin hid one message in every 250 (so nearly
// every chunk holds a moderation entry of the channel, and the unread
// view recounts the channel), against the same channel without the hides.
func BenchmarkIndexModerated(b *testing.B) {
	for _, hides := range []bool{false, true} {
		b.Run(fmt.Sprintf("hides=%v", hides), func(b *testing.B) {
			const n, every = 50_000, 250
			adm := newAuthor(b)
			ws := authors(b, 5)
			var total time.Duration
			for b.Loop() {
				b.StopTimer()
				e := newEnvAdmins(b, []*author{adm})
				e.v.Close()
				at := t0
				for i := 0; i < n; i += every {
					for j := range ws {
						w := ws[j]
						es := w.entries(e.d, at, texts(fmt.Sprintf("m%d-", i), every/len(ws))...)
						e.apply(w, es)
					}
					if hides {
						e.apply(adm, adm.entries(e.d, at, modMsg(feed.ModHide, ws[0], uint64(i/len(ws)))))
					}
					at = at.Add(time.Second)
				}
				b.StartTimer()
				total += catchUp(b, e)
				b.StopTimer()
				e.close()
				b.StartTimer()
			}
			b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "entries/s")
		})
	}
}
