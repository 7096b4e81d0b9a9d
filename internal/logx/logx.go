// Package logx holds kchat's log plumbing: a rate-limiting slog handler, so
// that a peer (or a library) that makes kchat log the same line in a loop
// cannot fill the disk or bury everything else.
package logx

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// maxKeys bounds the limiter's memory: past it, lines of new keys share one
// budget.
const maxKeys = 4096

// RateLimit wraps h: records with the same level and message pass at most
// perSecond times per one-second window; the rest of that window's records
// of that key are dropped and counted, and one record "suppressed K similar
// lines" (with the level of the dropped ones and their message as attr line) is written when the
// window is over (at the next record handled by any handler derived from
// the result; see Flush). Handlers made by WithAttrs/WithGroup share the
// budget. now is the clock (nil: time.Now).
func RateLimit(h slog.Handler, perSecond int, now func() time.Time) *Handler {
	if now == nil {
		now = time.Now
	}
	return &Handler{h: h, st: &state{root: h, per: perSecond, now: now, keys: map[key]*window{}}}
}

// Handler is the handler RateLimit returns.
type Handler struct {
	h  slog.Handler
	st *state
}

type key struct {
	level slog.Level
	msg   string
}

type window struct {
	start      time.Time
	passed     int
	suppressed int
}

type state struct {
	mu        sync.Mutex
	root      slog.Handler
	per       int
	now       func() time.Time
	keys      map[key]*window
	lastSweep time.Time
}

func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &Handler{h: h.h.WithAttrs(as), st: h.st}
}

func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{h: h.h.WithGroup(name), st: h.st}
}

func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	pass, summaries := h.st.admit(key{r.Level, r.Message})
	for _, s := range summaries {
		_ = h.st.root.Handle(ctx, s)
	}
	if !pass {
		return nil
	}
	return h.h.Handle(ctx, r)
}

// Flush writes the summaries of every window that has ended (or, with all,
// of every window) and forgets those windows.
func (h *Handler) Flush(ctx context.Context, all bool) {
	h.st.mu.Lock()
	sums := h.st.sweep(h.st.now(), all)
	h.st.mu.Unlock()
	for _, s := range sums {
		_ = h.st.root.Handle(ctx, s)
	}
}

func (st *state) admit(k key) (bool, []slog.Record) {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.now()
	var sums []slog.Record
	if now.Sub(st.lastSweep) >= time.Second {
		sums = st.sweep(now, false)
		st.lastSweep = now
	}
	w := st.keys[k]
	if w == nil {
		if len(st.keys) >= maxKeys {
			k = key{k.level, "(other lines: too many different ones)"}
			w = st.keys[k]
		}
		if w == nil {
			w = &window{start: now}
			st.keys[k] = w
		}
	}
	if now.Sub(w.start) >= time.Second {
		if w.suppressed > 0 {
			sums = append(sums, summary(now, k, w.suppressed))
		}
		*w = window{start: now}
	}
	if w.passed < st.per {
		w.passed++
		return true, sums
	}
	w.suppressed++
	return false, sums
}

// sweep returns the summaries of ended windows (all: of every window) and
// removes those windows. st.mu is held.
func (st *state) sweep(now time.Time, all bool) []slog.Record {
	var sums []slog.Record
	for k, w := range st.keys {
		if all || now.Sub(w.start) >= time.Second {
			if w.suppressed > 0 {
				sums = append(sums, summary(now, k, w.suppressed))
			}
			delete(st.keys, k)
		}
	}
	return sums
}

func summary(now time.Time, k key, n int) slog.Record {
	r := slog.NewRecord(now, k.level, fmt.Sprintf("suppressed %d similar lines", n), 0)
	r.AddAttrs(slog.String("line", k.msg))
	return r
}
