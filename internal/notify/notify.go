// Package notify is the coalescing change signal used between kchat's
// layers (the feed store, the views, the replicator): a writer calls Notify,
// which never blocks; each subscriber has a channel of capacity 1, so a
// subscriber woken once for a thousand writes reads what is new itself
// (Since, Arrived, Status...). Nothing queues.
package notify

import (
	"context"
	"sync"
	"time"
)

// Signal is a set of subscribers to one kind of change. The zero value is
// ready to use; a Signal must not be copied after first use.
type Signal struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

// Subscription receives the signal's notifications, coalesced.
type Subscription struct {
	s *Signal
	c chan struct{}
}

// Subscribe returns a new subscription. It is signalled by every Notify
// after this call until Close.
func (s *Signal) Subscribe() *Subscription {
	sub := &Subscription{s: s, c: make(chan struct{}, 1)}
	s.mu.Lock()
	if s.subs == nil {
		s.subs = map[*Subscription]struct{}{}
	}
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	return sub
}

// Notify signals every subscriber without blocking: a subscriber that has
// not yet received the previous signal gets just one.
func (s *Signal) Notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.subs {
		select {
		case sub.c <- struct{}{}:
		default:
		}
	}
}

// C receives a value after one or more Notify calls.
func (sub *Subscription) C() <-chan struct{} { return sub.c }

// Close stops the subscription: later Notify calls do not reach it. The
// channel is not closed (a pending signal may still be received). Close is
// idempotent.
func (sub *Subscription) Close() {
	sub.s.mu.Lock()
	delete(sub.s.subs, sub)
	sub.s.mu.Unlock()
}

// Beat is one periodic wake-up shared by many waiters: each waits on C,
// which is closed at the next beat. Many goroutines that each check
// something every second would otherwise wake the process once each,
// staggered; on Beat they all run in one wake-up. The zero value is ready;
// Run drives it.
type Beat struct {
	mu sync.Mutex
	c  chan struct{}
}

// C returns a channel closed at the next beat.
func (b *Beat) C() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c == nil {
		b.c = make(chan struct{})
	}
	return b.c
}

// Run beats every period until ctx ends (a waiter then sees ctx, not a
// beat).
func (b *Beat) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.mu.Lock()
		if b.c != nil {
			close(b.c)
			b.c = nil
		}
		b.mu.Unlock()
	}
}
