package notify

import (
	"context"
	"sync"
	"testing"
	"time"
)

func pending(sub *Subscription) bool {
	select {
	case <-sub.C():
		return true
	default:
		return false
	}
}

func TestNotifyCoalesces(t *testing.T) {
	var s Signal
	sub := s.Subscribe()
	defer sub.Close()
	if pending(sub) {
		t.Fatal("signal before any Notify")
	}
	for range 1000 {
		s.Notify() // must not block with nobody reading
	}
	if !pending(sub) {
		t.Fatal("no signal after Notify")
	}
	if pending(sub) {
		t.Fatal("1000 notifications queued more than one signal")
	}
	s.Notify()
	if !pending(sub) {
		t.Fatal("no signal after a Notify that followed a received one")
	}
}

func TestEverySubscriberSignalled(t *testing.T) {
	var s Signal
	a, b := s.Subscribe(), s.Subscribe()
	defer a.Close()
	defer b.Close()
	s.Notify()
	if !pending(a) || !pending(b) {
		t.Fatal("a subscriber missed the signal")
	}
}

func TestCloseStopsSignals(t *testing.T) {
	var s Signal
	a, b := s.Subscribe(), s.Subscribe()
	defer b.Close()
	a.Close()
	a.Close() // idempotent
	s.Notify()
	if pending(a) {
		t.Fatal("a closed subscription was signalled")
	}
	if !pending(b) {
		t.Fatal("closing one subscription stopped another")
	}
	if n := len(s.subs); n != 1 {
		t.Fatalf("%d subscriptions held, want 1 (a closed one leaks)", n)
	}
}

// TestConcurrent: notifiers, subscribers and closers at once (run -race);
// a subscriber that waits after a Notify that followed its Subscribe is
// always woken.
func TestConcurrent(t *testing.T) {
	var s Signal
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				sub := s.Subscribe()
				s.Notify()
				<-sub.C()
				sub.Close()
			}
		})
	}
	wg.Wait()
	if n := len(s.subs); n != 0 {
		t.Fatalf("%d subscriptions left after all closed", n)
	}
}

// TestBeatReleasesEveryWaiter: every goroutine waiting on C is released by
// one beat, a waiter after it waits for the next, and Run returns when its
// context ends.
func TestBeatReleasesEveryWaiter(t *testing.T) {
	var b Beat
	first := b.C()
	const n = 5
	var wg sync.WaitGroup
	released := make(chan int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-first
			released <- i
		}()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Run(ctx, time.Millisecond) }()
	wg.Wait()
	if len(released) != n {
		t.Fatalf("%d waiters released, want %d", len(released), n)
	}
	second := b.C()
	if second == first {
		t.Fatal("a waiter after a beat got the beat already passed")
	}
	select {
	case <-second:
	case <-time.After(30 * time.Second):
		t.Fatal("no second beat")
	}
	cancel()
	<-done
	after := b.C()
	select {
	case <-after:
		t.Fatal("a beat after Run returned")
	default:
	}
}
