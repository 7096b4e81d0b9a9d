// Package notify is the coalescing change signal used between kchat's
// layers (the feed store, the views, the replicator): a writer calls Notify,
// which never blocks; each subscriber has a channel of capacity 1, so a
// subscriber woken once for a thousand writes reads what is new itself
// (Since, Arrived, Status...). Nothing queues.
package notify

import "sync"

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
