package feed

import (
	"bytes"
	"sort"
)

// SetModBlocked sets the authors that moderation blocks in channel ch (the
// node computes them from the moderation view): like a local block, Apply
// refuses their feeds with ErrBlocked and sessions stop advertising and
// forwarding them. Unlike a local block it is not stored: the node sets it
// again from the views when it opens. Authors no longer in the set are
// accepted again (unless blocked locally).
func (s *Store) SetModBlocked(ch DiscoveryID, set map[AuthorID]bool) {
	// Under the write lock, as Block: once it returns, no Apply of a newly
	// blocked feed is still writing.
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocks.mu.Lock()
	if s.blocks.mod == nil {
		s.blocks.mod = map[DiscoveryID]map[AuthorID]bool{}
	}
	old := s.blocks.mod[ch]
	var diff []AuthorID
	for a := range set {
		if !old[a] {
			diff = append(diff, a)
		}
	}
	for a := range old {
		if !set[a] {
			diff = append(diff, a)
		}
	}
	if len(set) == 0 {
		delete(s.blocks.mod, ch)
	} else {
		cp := make(map[AuthorID]bool, len(set))
		for a := range set {
			cp[a] = true
		}
		s.blocks.mod[ch] = cp
	}
	s.blocks.mu.Unlock()
	if len(diff) == 0 {
		return
	}
	sort.Slice(diff, func(i, j int) bool { return bytes.Compare(diff[i][:], diff[j][:]) < 0 })
	for _, a := range diff {
		s.changed(ch, a)
	}
	s.notify(ch)
}

// ModBlocked reports whether moderation blocks author a in channel ch.
func (s *Store) ModBlocked(ch DiscoveryID, a AuthorID) bool {
	s.blocks.mu.RLock()
	defer s.blocks.mu.RUnlock()
	return s.blocks.mod[ch][a]
}
