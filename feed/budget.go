package feed

import (
	"errors"
	"fmt"
	"time"
)

// ErrThrottled refuses a replicated batch of an author who has used up the
// storage budget (see Budget). It is not the sender's fault: a relay that
// forwards a flooder's feed is honest. Errors wrapping it are *ThrottleError.
var ErrThrottled = errors.New("author is over its storage budget")

// ThrottleError says whose batch was refused and when it would fit.
type ThrottleError struct {
	Author     AuthorID
	RetryAfter time.Duration
}

func (e *ThrottleError) Error() string {
	return fmt.Sprintf("feed %s: %v (retry in %s)", e.Author.Short(), ErrThrottled, e.RetryAfter.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrThrottled) hold.
func (e *ThrottleError) Is(target error) bool { return target == ErrThrottled }

// Budget bounds how many bytes of entries one author can make this store
// keep per channel, as a token bucket: Burst bytes at once, then Rate bytes
// per second. It applies to replicated entries only (own appends are the
// user's own business). The defaults let a long honest history (64 MiB is
// about 300,000 ordinary messages) arrive at full speed and a larger one at
// Rate, while a member flooding a channel costs every peer at most
// Burst + Rate x time, not the whole disk.
type Budget struct {
	Burst int64 // bytes
	Rate  int64 // bytes per second
}

// DefaultBudget is 64 MiB at once, then 64 KiB/s (about 5.4 GiB a day: a
// flood stays visible and blockable long before it fills a disk).
var DefaultBudget = Budget{Burst: 64 << 20, Rate: 64 << 10}

// WithBudget sets the per-author storage budget (default DefaultBudget).
func WithBudget(b Budget) Option { return func(s *Store) { s.budget = b } }

// throttleMemory is how long an author counts as throttled after a refusal.
const throttleMemory = time.Minute

type bucket struct {
	tokens    float64
	at        time.Time // when tokens was computed
	throttled time.Time // last refusal
	warned    bool
}

// take takes n bytes from fk's bucket at time now, or says how long until
// they would fit. Caller holds s.mu.
func (s *Store) take(fk feedKey, n int64, now time.Time) (time.Duration, bool) {
	b := s.buckets[fk]
	if b == nil {
		b = &bucket{tokens: float64(s.budget.Burst), at: now}
	} else {
		b.tokens = min(float64(s.budget.Burst), b.tokens+now.Sub(b.at).Seconds()*float64(s.budget.Rate))
		b.at = now
	}
	if float64(n) > b.tokens {
		b.throttled = now
		s.buckets[fk] = b
		if !b.warned {
			b.warned = true
			s.log.Warn("author is over its storage budget: further entries arrive slowly; to stop them, block the author",
				"channel", fk.ch.Short(), "author", fk.author.String(), "burst", s.budget.Burst, "rate", s.budget.Rate)
		}
		wait := time.Duration((float64(n) - b.tokens) / float64(max(s.budget.Rate, 1)) * float64(time.Second))
		return max(wait, time.Millisecond), false
	}
	b.tokens -= float64(n)
	s.buckets[fk] = b
	if len(s.buckets) > 4096 {
		s.pruneBuckets(now)
	}
	return 0, true
}

// pruneBuckets forgets buckets that have refilled. Caller holds s.mu.
func (s *Store) pruneBuckets(now time.Time) {
	for k, b := range s.buckets {
		full := b.tokens+now.Sub(b.at).Seconds()*float64(s.budget.Rate) >= float64(s.budget.Burst)
		if full && now.Sub(b.throttled) > throttleMemory {
			delete(s.buckets, k)
		}
	}
}

// Throttled reports whether author a's entries in ch were refused for the
// budget within the last minute.
func (s *Store) Throttled(ch DiscoveryID, a AuthorID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[feedKey{ch, a}]
	return b != nil && !b.throttled.IsZero() && s.now().Sub(b.throttled) < throttleMemory
}
