package node

import (
	"context"
	"runtime/debug"
	"time"
)

// Returning memory after a burst. Catching up (a sync of a long history,
// a views rebuild) takes tens of MB of heap for Badger's table builders and
// the indexer's chunks; Go gives that back to the system only slowly, so a
// node that caught up with 100k messages idled at ~150 MB RSS instead of
// ~80 MB. The trimmer watches the views: once at least trimAfterEntries
// entries were indexed and then nothing for trimQuiet, it returns the free
// memory to the system at once (debug.FreeOSMemory: one GC, milliseconds).
// Chatting at human speed never triggers it.
const (
	trimAfterEntries = 10_000
	trimQuiet        = 5 * time.Second
)

// trimmer runs until ctx ends; free is debug.FreeOSMemory outside tests.
type trimmer struct {
	n     *Node
	quiet time.Duration
	free  func()
	// checked, if set, is called after each quiet-spell check with the
	// views' position then and whether it returned memory (tests: to see
	// that a quiet spell passed).
	checked func(indexed uint64, freed bool)
}

func (n *Node) startTrimmer(ctx context.Context, t trimmer) {
	t.n = n
	if t.quiet == 0 {
		t.quiet = trimQuiet
	}
	if t.free == nil {
		t.free = debug.FreeOSMemory
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		t.run(ctx)
	}()
}

func (t trimmer) run(ctx context.Context) {
	sub := t.n.views.Subscribe()
	defer sub.Close()
	from := t.n.views.Indexed()
	timer := time.NewTimer(t.quiet)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.C():
			timer.Reset(t.quiet)
		case <-timer.C:
			freed := false
			now := t.n.views.Indexed()
			if now-from >= trimAfterEntries {
				t.free()
				freed = true
				t.n.log.Debug("returned memory to the system after a burst", "entries", now-from)
				from = now
			} else if now < from {
				from = now
			}
			if t.checked != nil {
				t.checked(now, freed)
			}
		}
	}
}
