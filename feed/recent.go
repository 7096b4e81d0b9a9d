package feed

import "sync"

// recentMaxBytes bounds the recent-arrivals cache (encoded entry bytes).
const recentMaxBytes = 4 << 20

// recent keeps the newest stored entries, by arrival number, so that the
// views' indexer, which reads what was just stored, gets them from memory
// instead of reading them back from Badger (about a tenth of a receiving
// peer's CPU during a sync). It holds a contiguous run of arrival numbers
// [first, first+len(ents)); entries are immutable once stored, so the
// cache points at the written batch's elements instead of copying them.
type recent struct {
	mu    sync.RWMutex
	first uint64
	ents  []*Entry
	bytes int
}

// add records entries stored with arrival numbers from, from+1, ...
// (called under the store's write lock, after the commit).
func (r *recent) add(from uint64, es []Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ents) == 0 || r.first+uint64(len(r.ents)) != from {
		r.reset()
		r.first = from
	}
	for i := range es {
		r.ents = append(r.ents, &es[i])
		r.bytes += len(es[i].Encode())
	}
	k := 0
	for r.bytes > recentMaxBytes && k < len(r.ents) {
		r.bytes -= len(r.ents[k].raw)
		r.ents[k] = nil // let the evicted entry go
		k++
	}
	if k > 0 {
		r.ents = r.ents[k:]
		r.first += uint64(k)
	}
}

func (r *recent) reset() {
	clear(r.ents)
	r.ents = r.ents[:0]
	r.bytes = 0
}

// since returns up to limit (0: no limit) cached entries after arrival
// number after, and whether the cache holds arrival after+1 at all (if
// not, the caller reads from Badger).
func (r *recent) since(after uint64, limit int) ([]Entry, uint64, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	end := r.first + uint64(len(r.ents)) // one past the last cached
	if len(r.ents) == 0 || after+1 < r.first || after+1 >= end {
		return nil, 0, false
	}
	i := after + 1 - r.first
	j := uint64(len(r.ents))
	if limit > 0 {
		j = min(j, i+uint64(limit))
	}
	out := make([]Entry, j-i)
	for k, e := range r.ents[i:j] {
		out[k] = *e
	}
	return out, after + 1, true
}

// drop forgets the cached entries for which purged returns true (called
// under the store's write lock by a purge). The cache holds a contiguous
// run of arrival numbers, so dropping any entry empties it: Since then reads
// from Badger, whose arrival log no longer names the purged entries.
func (r *recent) drop(purged func(*Entry) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.ents {
		if purged(e) {
			r.reset()
			return
		}
	}
}
