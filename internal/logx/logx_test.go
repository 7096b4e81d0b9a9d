package logx

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newLimited(per int) (*bytes.Buffer, *Handler, *clock) {
	var buf bytes.Buffer
	c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	h := RateLimit(slog.NewTextHandler(&buf, nil), per, c.now)
	return &buf, h, c
}

func count(s, sub string) int { return strings.Count(s, sub) }

func TestRateLimitPerKey(t *testing.T) {
	buf, h, c := newLimited(5)
	l := slog.New(h)
	for range 1000 {
		l.Warn("flood", "peer", "x")
	}
	l.Warn("other line")
	if n := count(buf.String(), `msg=flood`); n != 5 {
		t.Fatalf("%d flood lines passed in one second, want 5:\n%s", n, buf)
	}
	if !strings.Contains(buf.String(), "other line") {
		t.Fatal("a different line was suppressed with the flood")
	}
	if strings.Contains(buf.String(), "suppressed") {
		t.Fatal("summary written before the window ended")
	}
	c.add(time.Second)
	l.Warn("flood", "peer", "x")
	out := buf.String()
	if !strings.Contains(out, `level=WARN msg="suppressed 995 similar lines" line=flood`) {
		t.Fatalf("no summary of the 995 dropped lines:\n%s", out)
	}
	if n := count(out, `msg=flood`); n != 6 { // 5 + 1 in the new window
		t.Fatalf("%d flood lines, want 6:\n%s", n, out)
	}
}

// TestSummaryWithoutSameKey: the summary comes with the next record of any
// key once the window is over, or with Flush.
func TestSummaryWithoutSameKey(t *testing.T) {
	buf, h, c := newLimited(1)
	l := slog.New(h)
	l.Info("a")
	l.Info("a")
	l.Info("a")
	c.add(1500 * time.Millisecond)
	l.Info("b")
	if !strings.Contains(buf.String(), `msg="suppressed 2 similar lines" line=a`) {
		t.Fatalf("no summary after the window:\n%s", buf)
	}
	l.Info("c")
	l.Info("c")
	h.Flush(context.Background(), true)
	if !strings.Contains(buf.String(), `msg="suppressed 1 similar lines" line=c`) {
		t.Fatalf("Flush wrote no summary:\n%s", buf)
	}
}

// TestDerivedHandlersShareBudget: a logger With attrs cannot escape the
// limit.
func TestDerivedHandlersShareBudget(t *testing.T) {
	buf, h, _ := newLimited(3)
	l := slog.New(h)
	for i := range 50 {
		l.With("i", i).WithGroup("g").Warn("same")
	}
	if n := count(buf.String(), "msg=same"); n != 3 {
		t.Fatalf("%d lines passed through derived loggers, want 3:\n%s", n, buf)
	}
	if !strings.Contains(buf.String(), "g.") && !strings.Contains(buf.String(), "i=0") {
		t.Fatalf("attrs of derived loggers lost:\n%s", buf)
	}
}

// TestManyKeysBounded: distinct messages beyond maxKeys share one budget
// and do not grow the map.
func TestManyKeysBounded(t *testing.T) {
	_, h, _ := newLimited(1)
	l := slog.New(h)
	for i := range maxKeys + 500 {
		l.Warn("line " + string(rune('a'+i%26)) + time.Duration(i).String())
	}
	if n := len(h.st.keys); n > maxKeys+1 {
		t.Fatalf("%d keys held, want at most %d", n, maxKeys+1)
	}
}
