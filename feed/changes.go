package feed

// Each channel has a change log in memory: a version number that grows by
// one for every head that changes (entries stored, a fork recorded, a feed
// purged), and the authors of the most recent changes. A replication session
// keeps the version it has seen and asks for what changed since, so a wake-up
// costs what is new, not the number of feeds of the channel.

// changeLogKeep bounds the changes kept per channel. A reader further behind
// reads all heads instead.
const changeLogKeep = 1 << 14

type change struct {
	ver    uint64
	author AuthorID
}

type changeLog struct {
	ver   uint64   // version of the newest change
	floor uint64   // changes up to floor are no longer listed
	log   []change // ascending by ver
}

// changed records that a's head in ch changed. Caller holds s.mu.
func (s *Store) changed(ch DiscoveryID, a AuthorID) {
	cl := s.changes[ch]
	if cl == nil {
		cl = &changeLog{}
		s.changes[ch] = cl
	}
	cl.ver++
	cl.log = append(cl.log, change{cl.ver, a})
	if len(cl.log) > changeLogKeep {
		drop := len(cl.log) / 2
		cl.floor = cl.log[drop-1].ver
		cl.log = append(cl.log[:0:0], cl.log[drop:]...)
	}
}

// Version is channel ch's change version: Changes(ch, Version(ch)) lists
// what changes from now on.
func (s *Store) Version(ch DiscoveryID) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cl := s.changes[ch]; cl != nil {
		return cl.ver
	}
	return 0
}

// Changes returns the current heads of the feeds of ch whose head changed
// after version after (each once, in no particular order), and the version
// they bring the caller to. If after is too old to tell, complete is false
// and the caller must read every head (Heads) instead.
func (s *Store) Changes(ch DiscoveryID, after uint64) (heads []Head, ver uint64, complete bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cl := s.changes[ch]
	if cl == nil {
		return nil, after, after == 0
	}
	if after < cl.floor || after > cl.ver {
		return nil, cl.ver, false
	}
	// Binary search for the first change after `after`.
	lo, hi := 0, len(cl.log)
	for lo < hi {
		m := (lo + hi) / 2
		if cl.log[m].ver <= after {
			lo = m + 1
		} else {
			hi = m
		}
	}
	seen := make(map[AuthorID]bool, len(cl.log)-lo)
	for _, c := range cl.log[lo:] {
		if seen[c.author] {
			continue
		}
		seen[c.author] = true
		h, err := s.head(ch, c.author) // Len 0 once purged
		if err != nil {
			return nil, cl.ver, false
		}
		heads = append(heads, h)
	}
	return heads, cl.ver, true
}
