package feed

import "errors"

// TEMPORARY until the block list lands.
var ErrBlocked = errors.New("author is blocked")

func (s *Store) IsBlocked(ch DiscoveryID, a AuthorID) bool { return false }
