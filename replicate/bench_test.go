package replicate

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/storage"
)

// fixture is a source store, built once per process and shape: building
// 100k signed entries takes seconds, and the benchmarks measure sync only.
type fixture struct {
	dir   string
	db    *badger.DB
	st    *feed.Store
	ch    feed.Channel
	total int
}

var (
	fixMu    sync.Mutex
	fixtures = map[string]*fixture{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range fixtures {
		f.db.Close()
		os.RemoveAll(f.dir)
	}
	os.Exit(code)
}

// sourceFixture returns a store holding writers feeds of perWriter entries
// each in one channel.
func sourceFixture(b *testing.B, writers, perWriter int) *fixture {
	b.Helper()
	fixMu.Lock()
	defer fixMu.Unlock()
	key := fmt.Sprintf("%dx%d", writers, perWriter)
	if f := fixtures[key]; f != nil {
		return f
	}
	dir, err := os.MkdirTemp("", "kchat-bench-")
	if err != nil {
		b.Fatal(err)
	}
	db, err := storage.Open(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	st, err := feed.Open(db)
	if err != nil {
		b.Fatal(err)
	}
	f := &fixture{dir: dir, db: db, st: st, ch: newChannel(b, "bench"), total: writers * perWriter}
	if err := st.Join(f.ch); err != nil {
		b.Fatal(err)
	}
	// Sign in parallel, one goroutine per writer; store through Apply.
	var wg sync.WaitGroup
	for range writers {
		id := newIdentity(b)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fill(b, st, id, f.ch.ID(), perWriter)
		}()
	}
	wg.Wait()
	if got := st.Last(); got != uint64(f.total) {
		b.Fatalf("fixture holds %d entries, want %d", got, f.total)
	}
	fixtures[key] = f
	return f
}

// memPeak samples the Go heap while running and reads the process's peak
// resident set (VmHWM, reset through /proc/self/clear_refs where allowed).
type memPeak struct {
	stop     chan struct{}
	done     chan struct{}
	peakHeap uint64
}

func startMemPeak() *memPeak {
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset VmHWM (Linux); best effort
	m := &memPeak{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			m.peakHeap = max(m.peakHeap, ms.HeapInuse+ms.StackInuse)
			select {
			case <-m.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

func (m *memPeak) end() (heapMB, rssMB float64) {
	close(m.stop)
	<-m.done
	return float64(m.peakHeap) / (1 << 20), float64(procStatusKB("VmHWM")) / 1024
}

func procStatusKB(field string) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

// benchSync measures a fresh peer syncing the fixture over loopback TCP:
// from Connect until its store holds every entry.
func benchSync(b *testing.B, writers, perWriter int) {
	fx := sourceFixture(b, writers, perWriter)
	ch := fx.ch.ID()
	src := &node{t: b, h: newHost(b), db: fx.db, st: fx.st}
	src.r = New(src.h, fx.st, Config{Logger: testLogger()})
	defer src.r.Close()

	var rates []float64
	var peakHeap, peakRSS float64
	b.ResetTimer()
	b.StopTimer()
	for range b.N {
		dst := newNode(b, Limits{}, fx.ch)
		runtime.GC()
		mp := startMemPeak()
		sub := dst.st.Subscribe()
		b.StartTimer()
		start := time.Now()
		dst.connect(src, ch)
		for dst.st.Last() < uint64(fx.total) {
			select {
			case <-sub.C():
			case <-time.After(2 * time.Minute):
				b.Fatalf("sync stalled at %d of %d", dst.st.Last(), fx.total)
			}
		}
		el := time.Since(start)
		b.StopTimer()
		sub.Close()
		h, r := mp.end()
		peakHeap, peakRSS = max(peakHeap, h), max(peakRSS, r)
		rates = append(rates, float64(fx.total)/el.Seconds())
		if !sameHeads(b, ch, src, dst) {
			b.Fatal("heads differ after sync")
		}
		dst.r.Close()
		dst.h.Close()
		dst.db.Close()
	}
	slices.Sort(rates)
	b.ReportMetric(rates[len(rates)/2], "entries/s")
	b.ReportMetric(peakHeap, "peak-heap-MB")
	b.ReportMetric(peakRSS, "peak-rss-MB")
}

// BenchmarkSync100k: 100k messages from one writer to a fresh peer.
func BenchmarkSync100k(b *testing.B) { benchSync(b, 1, 100_000) }

// BenchmarkSync10x10k: ten writers of 10k messages each to a fresh peer.
func BenchmarkSync10x10k(b *testing.B) { benchSync(b, 10, 10_000) }

// BenchmarkLiveLatency: one message appended (durably) on one peer until it
// is stored on the other, over a live session. p50/p99 of end to end
// (including the writer's fsync) and of the network part (after Append).
func BenchmarkLiveLatency(b *testing.B) {
	c := newChannel(b, "general")
	ch := c.ID()
	a, d := newNode(b, Limits{}, c), newNode(b, Limits{}, c)
	a.connect(d, ch)
	a.waitSynced(ch, d)
	sub := d.st.Subscribe()
	defer sub.Close()
	e2e := make([]time.Duration, 0, b.N)
	net := make([]time.Duration, 0, b.N)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := a.st.Append(ctx, a.id, ch, feed.Payload{Kind: feed.KindText, Text: "ping " + strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
		appended := time.Now()
		for {
			h, err := d.st.Head(ch, a.id.ID())
			if err != nil {
				b.Fatal(err)
			}
			if h.Len == uint64(i+1) {
				break
			}
			select {
			case <-sub.C():
			case <-time.After(10 * time.Second):
				b.Fatal("message did not arrive")
			}
		}
		now := time.Now()
		e2e = append(e2e, now.Sub(start))
		net = append(net, now.Sub(appended))
	}
	b.StopTimer()
	pct := func(ds []time.Duration, p float64) float64 {
		slices.Sort(ds)
		return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(e2e, 0.50), "p50-ms")
	b.ReportMetric(pct(e2e, 0.99), "p99-ms")
	b.ReportMetric(pct(net, 0.50), "net-p50-ms")
	b.ReportMetric(pct(net, 0.99), "net-p99-ms")
}
