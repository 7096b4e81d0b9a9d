package feed_test

import (
	"context"
	"testing"

	"github.com/kchat-p2p/kchat/feed"
)

// BenchmarkAppendDurable: one message per Append, each fsynced.
func BenchmarkAppendDurable(b *testing.B) {
	e := newEnv(b)
	id, _ := feed.NewIdentity()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.st.Append(ctx, id, e.ch.ID(), text("hello, this is a chat message")); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkAppendBatched: 1000 messages per Append (send --stdin), one fsync each.
func BenchmarkAppendBatched(b *testing.B) {
	e := newEnv(b)
	id, _ := feed.NewIdentity()
	ctx := context.Background()
	batch := texts(1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.st.Append(ctx, id, e.ch.ID(), batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkApply10k: a fresh store verifies and stores 10k received entries.
func BenchmarkApply10k(b *testing.B) {
	src := newEnv(b)
	id, _ := feed.NewIdentity()
	es, err := src.st.Append(context.Background(), id, src.ch.ID(), texts(10000)...)
	if err != nil {
		b.Fatal(err)
	}
	// Received entries come off the wire: decode them so no cached state is reused.
	wire := make([][]byte, len(es))
	for i := range es {
		wire[i] = es[i].Encode()
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		dst := newEnv(b, src.ch)
		b.StartTimer()
		batch := make([]feed.Entry, len(wire))
		for i, w := range wire {
			if batch[i], err = feed.DecodeEntry(w); err != nil {
				b.Fatal(err)
			}
		}
		if n, err := dst.st.Apply(context.Background(), src.ch.ID(), id.ID(), batch); err != nil || n != len(batch) {
			b.Fatal(n, err)
		}
		b.StopTimer()
		dst.close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*len(wire))/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkSince: walking 100k entries of 10 feeds in arrival order (what the
// indexer does).
func BenchmarkSince100k(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		id, _ := feed.NewIdentity()
		for j := 0; j < 10; j++ {
			if _, err := e.st.Append(ctx, id, e.ch.ID(), texts(1000)...); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := e.st.Since(0, 0, func(uint64, feed.Entry) error { n++; return nil }); err != nil || n != 100000 {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(float64(b.N*100000)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkApplyCopy: the live path of a mesh. Each peer pushes a new entry
// before it hears that we hold it, so a node receives most entries several
// times; this is the cost of one such copy (an entry already held, not the
// head, as it comes off the wire).
func BenchmarkApplyCopy(b *testing.B) {
	e := newEnv(b)
	id, _ := feed.NewIdentity()
	ctx := context.Background()
	es, err := e.st.Append(ctx, id, e.ch.ID(), texts(2)...)
	if err != nil {
		b.Fatal(err)
	}
	wire := es[0].Encode()
	b.ReportAllocs()
	for b.Loop() {
		c, err := feed.DecodeEntry(wire)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := e.st.Apply(ctx, e.ch.ID(), id.ID(), []feed.Entry{c}); err != nil || n != 0 {
			b.Fatal(n, err)
		}
	}
}
