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
//
// The same entries also serve Store.Run: every session of a channel sends
// a new entry on to its peer, so each stored entry is read back once per
// session. bySeq finds a cached entry by feed and seq; verified marks the
// entries stored with metaVerified.
type recent struct {
	mu       sync.RWMutex
	first    uint64
	ents     []*Entry
	verified []bool
	bySeq    map[feedSeq]uint64 // arrival number
	bytes    int
}

type feedSeq struct {
	ch  DiscoveryID
	a   AuthorID
	seq uint64
}

func seqOf(e *Entry) feedSeq { return feedSeq{e.Channel, e.Author, e.Seq} }

// add records entries stored with arrival numbers from, from+1, ...; the
// last verified of them were stored with metaVerified (called under the
// store's write lock, after the commit).
func (r *recent) add(from uint64, es []Entry, verified int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ents) == 0 || r.first+uint64(len(r.ents)) != from {
		r.reset()
		r.first = from
	}
	if r.bySeq == nil {
		r.bySeq = map[feedSeq]uint64{}
	}
	for i := range es {
		r.bySeq[seqOf(&es[i])] = from + uint64(i)
		r.ents = append(r.ents, &es[i])
		r.verified = append(r.verified, i >= len(es)-verified)
		r.bytes += len(es[i].Encode())
	}
	k := 0
	for r.bytes > recentMaxBytes && k < len(r.ents) {
		r.bytes -= len(r.ents[k].raw)
		delete(r.bySeq, seqOf(r.ents[k]))
		r.ents[k] = nil // let the evicted entry go
		k++
	}
	if k > 0 {
		r.ents = r.ents[k:]
		r.verified = r.verified[k:]
		r.first += uint64(k)
	}
}

func (r *recent) reset() {
	clear(r.ents)
	r.ents = r.ents[:0]
	r.verified = r.verified[:0]
	clear(r.bySeq)
	r.bytes = 0
}

// run is Store.Run from the cache: the run of feed (ch, a) from seq from,
// within the limits, ending at an entry whose signature verifies. ok is
// false when the cache does not hold seq from or the run has no such end
// that Run would find without its slow path (the caller reads Badger).
func (r *recent) run(ch DiscoveryID, a AuthorID, from uint64, maxEntries, maxBytes int) (out []Entry, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	lastMarked, total := -1, 0
	if _, held := r.bySeq[feedSeq{ch, a, from}]; !held {
		return nil, false
	}
	out = make([]Entry, 0, min(maxEntries, 64)) // a live run is a few entries
	for seq := from; len(out) < maxEntries; seq++ {
		n, held := r.bySeq[feedSeq{ch, a, seq}]
		if !held {
			break
		}
		e := r.ents[n-r.first]
		if len(out) > 0 && total+len(e.raw) > maxBytes {
			break
		}
		total += len(e.raw)
		if r.verified[n-r.first] {
			lastMarked = len(out)
		}
		out = append(out, *e)
	}
	switch {
	case len(out) == 0:
		return nil, false
	case lastMarked == len(out)-1:
		return out, true
	case out[len(out)-1].VerifySignature() == nil:
		return out, true // as Store.Run: an inner entry can end a run
	case lastMarked >= 0:
		return out[:lastMarked+1], true
	}
	return nil, false
}

// get returns the cached entry at seq of a's feed in ch, if cached.
func (r *recent) get(ch DiscoveryID, a AuthorID, seq uint64) (Entry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n, held := r.bySeq[feedSeq{ch, a, seq}]
	if !held {
		return Entry{}, false
	}
	return *r.ents[n-r.first], true
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
