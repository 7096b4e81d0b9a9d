package replicate

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/storage"
	"github.com/kchat-p2p/kchat/views"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
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
	if addr := os.Getenv("KCHAT_BENCH_RECEIVER"); addr != "" {
		os.Exit(runBenchReceiver(addr))
	}
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

// benchSync measures a fresh peer syncing the fixture over loopback TCP.
// The receiver runs in a child process (this test binary, see
// runBenchReceiver), so its memory is measured alone: from Connect until its
// store holds every entry, and until its views (chronological and the rest)
// have indexed them all.
func benchSync(b *testing.B, writers, perWriter int) {
	fx := sourceFixture(b, writers, perWriter)
	src := newHost(b)
	r := New(src, fx.st, Config{Logger: testLogger()})
	defer r.Close()
	addr := fmt.Sprintf("%s/p2p/%s", src.Addrs()[0], src.ID())

	var stored, indexed []float64
	var rss, heap float64
	b.ResetTimer()
	for range b.N {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "KCHAT_BENCH_RECEIVER="+addr,
			"KCHAT_BENCH_KEY="+fx.ch.Key.String(), "KCHAT_BENCH_TOTAL="+strconv.Itoa(fx.total))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("receiver: %v\n%s", err, out)
		}
		var res benchResult
		if err := json.Unmarshal(out, &res); err != nil {
			b.Fatalf("receiver said %q: %v", out, err)
		}
		stored = append(stored, float64(fx.total)/res.StoredSeconds)
		indexed = append(indexed, float64(fx.total)/res.IndexedSeconds)
		rss, heap = max(rss, res.PeakRSSMB), max(heap, res.PeakHeapMB)
	}
	b.StopTimer()
	median := func(xs []float64) float64 { slices.Sort(xs); return xs[len(xs)/2] }
	b.ReportMetric(median(indexed), "entries/s")
	b.ReportMetric(median(stored), "stored-entries/s")
	b.ReportMetric(rss, "peak-rss-MB")
	b.ReportMetric(heap, "peak-heap-MB")
}

type benchResult struct {
	StoredSeconds  float64 `json:"stored_s"`
	IndexedSeconds float64 `json:"indexed_s"`
	PeakRSSMB      float64 `json:"peak_rss_mb"`
	PeakHeapMB     float64 `json:"peak_heap_mb"`
}

// runBenchReceiver is the receiving peer of benchSync, in its own process:
// a fresh store and views in a temp dir, a loopback host, one Connect.
func runBenchReceiver(addr string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "bench receiver:", err); return 1 }
	key, _, err := feed.ParseChannelKey(os.Getenv("KCHAT_BENCH_KEY"))
	if err != nil {
		return fail(err)
	}
	total, _ := strconv.ParseUint(os.Getenv("KCHAT_BENCH_TOTAL"), 10, 64)
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return fail(err)
	}
	dir, err := os.MkdirTemp("", "kchat-bench-recv-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	db, err := storage.Open(dir, nil)
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	st, err := feed.Open(db)
	if err != nil {
		return fail(err)
	}
	ch := feed.Channel{Key: key, Name: "bench"}
	if err := st.Join(ch); err != nil {
		return fail(err)
	}
	id, err := feed.NewIdentity()
	if err != nil {
		return fail(err)
	}
	var v *views.Views
	if os.Getenv("KCHAT_BENCH_NOVIEWS") == "" { // to measure sync alone
		if v, err = views.Open(db, st, id.ID()); err != nil {
			return fail(err)
		}
		defer v.Close()
	}
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		return fail(err)
	}
	defer h.Close()
	r := New(h, st, Config{Logger: testLogger()})
	defer r.Close()
	h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)

	if p := os.Getenv("KCHAT_BENCH_CPUPROF"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	// As the kchat binary runs (cmd/kchat/main.go).
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(storage.MemoryLimit)
	}
	runtime.GC()
	mp := startMemPeak()
	sub := st.Subscribe()
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	if err := r.Connect(ctx, ai.ID, ch.ID()); err != nil {
		return fail(err)
	}
	for st.Last() < total {
		select {
		case <-sub.C():
		case <-ctx.Done():
			return fail(fmt.Errorf("stalled at %d of %d", st.Last(), total))
		}
	}
	stored := time.Since(start)
	if p := os.Getenv("KCHAT_BENCH_HEAPPROF"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	if v != nil {
		if err := v.WaitIndexed(ctx, total); err != nil {
			return fail(err)
		}
	}
	indexed := time.Since(start)
	heap, rss := mp.end()
	out, _ := json.Marshal(benchResult{StoredSeconds: stored.Seconds(), IndexedSeconds: indexed.Seconds(), PeakRSSMB: rss, PeakHeapMB: heap})
	fmt.Println(string(out))
	return 0
}

// BenchmarkSync100k: 100k messages from one writer to a fresh peer.
func BenchmarkSync100k(b *testing.B) { benchSync(b, 1, 100_000) }

// BenchmarkSync10x10k: ten writers of 10k messages each to a fresh peer.
func BenchmarkSync10x10k(b *testing.B) { benchSync(b, 10, 10_000) }

// BenchmarkLiveLatency: one message appended (durably: Append syncs to
// disk before it returns and before the store signals) on one peer until it
// is stored on the other, over a live session; p50 and p99.
func BenchmarkLiveLatency(b *testing.B) {
	c := newChannel(b, "general")
	ch := c.ID()
	a, d := newNode(b, Limits{}, c), newNode(b, Limits{}, c)
	a.connect(d, ch)
	a.waitSynced(ch, d)
	sub := d.st.Subscribe()
	defer sub.Close()
	lat := make([]time.Duration, 0, b.N)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := a.st.Append(ctx, a.id, ch, feed.Payload{Kind: feed.KindText, Text: "ping " + strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
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
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
