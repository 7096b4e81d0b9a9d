package feed

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// ErrBlocked is returned by Apply for a feed the local user blocked in that
// channel: nothing of it is stored (and so nothing of it is forwarded).
var ErrBlocked = errors.New("author is blocked in this channel")

// The block list and purges. Keys (prefix 'f', owned by this package):
//
//	f b <D 32> <author 32>  -> empty: author is blocked in channel D
//	f p <D 32> <author 32>  -> empty: a purge of that feed is under way
//	f p <D 32>              -> empty: a purge of the whole channel is under way
//	f w                     -> arrival high-water mark 8 (written by purges)
//
// A purge deletes the feed's head and fork evidence first (with its "f p"
// marker, in one transaction), then its arrival records, then its entries,
// and removes the marker last; a purge interrupted by a crash is finished
// when the store is opened again. The high-water mark keeps arrival numbers
// growing when a purge removes the newest arrival records (views keep the
// arrival number as their clock: a number given out twice would be skipped).
const (
	pBlock = "fb"
	pPurge = "fp"
	pWater = "fw"
)

// purgeTxnKeys bounds the deletes of one purge transaction.
const purgeTxnKeys = 5000

// blockList is the in-memory copy of the block list (Store.blocks).
type blockList struct {
	mu sync.RWMutex
	m  map[feedKey]bool
	// mod: the authors blocked by moderation (modblock.go), in memory.
	mod map[DiscoveryID]map[AuthorID]bool
}

func blockKey(ch DiscoveryID, a AuthorID) []byte {
	k := make([]byte, 0, len(pBlock)+64)
	return append(append(append(k, pBlock...), ch[:]...), a[:]...)
}

func purgeKey(ch DiscoveryID, a *AuthorID) []byte {
	k := append([]byte(pPurge), ch[:]...)
	if a != nil {
		k = append(k, a[:]...)
	}
	return k
}

func forkKey(ch DiscoveryID, a AuthorID) []byte {
	return append(append([]byte(pFork), ch[:]...), a[:]...)
}

// openBlocks loads the block list, finishes purges a crash interrupted and
// raises the arrival counter to the purges' high-water mark. Open calls it
// once, before the store is used.
func (s *Store) openBlocks() error {
	s.blocks = &blockList{m: map[feedKey]bool{}}
	var pending [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pBlock)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()[len(pBlock):]
			if len(k) != 64 {
				continue
			}
			var fk feedKey
			copy(fk.ch[:], k[:32])
			copy(fk.author[:], k[32:])
			s.blocks.m[fk] = true
		}
		pit := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pPurge)})
		defer pit.Close()
		for pit.Rewind(); pit.Valid(); pit.Next() {
			pending = append(pending, pit.Item().KeyCopy(nil))
		}
		item, err := txn.Get([]byte(pWater))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) == 8 {
				s.last = max(s.last, binary.BigEndian.Uint64(v))
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("read block list: %w", err)
	}
	for _, k := range pending {
		k = k[len(pPurge):]
		var ch DiscoveryID
		copy(ch[:], k)
		var a *AuthorID
		if len(k) == 64 {
			a = new(AuthorID)
			copy(a[:], k[32:])
		}
		if err := s.purge(context.Background(), ch, a); err != nil {
			return fmt.Errorf("finish interrupted purge: %w", err)
		}
	}
	return nil
}

func (b *blockList) has(ch DiscoveryID, a AuthorID) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.m[feedKey{ch, a}] || b.mod[ch][a]
}

// IsBlocked reports whether author a is blocked in channel ch.
func (s *Store) IsBlocked(ch DiscoveryID, a AuthorID) bool { return s.blocks.has(ch, a) }

// Block blocks author a in channel ch: from now on Apply refuses the feed
// with ErrBlocked (so it is neither stored nor, being absent, forwarded).
// What is already stored stays until Purge. Blocking is local and durable.
func (s *Store) Block(ch DiscoveryID, a AuthorID) error {
	// Under the write lock: once Block returns, no Apply of a's feed is
	// still writing.
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(blockKey(ch, a), nil) }); err != nil {
		return fmt.Errorf("block %s: %w", a.Short(), err)
	}
	s.blocks.mu.Lock()
	s.blocks.m[feedKey{ch, a}] = true
	s.blocks.mu.Unlock()
	s.changed(ch, a) // sessions stop advertising and forwarding it
	s.notify(ch)
	return nil
}

// Unblock lifts a block: the feed is accepted again (from where the store
// holds it, or from seq 0 after a purge).
func (s *Store) Unblock(ch DiscoveryID, a AuthorID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(blockKey(ch, a)) }); err != nil {
		return fmt.Errorf("unblock %s: %w", a.Short(), err)
	}
	s.blocks.mu.Lock()
	delete(s.blocks.m, feedKey{ch, a})
	s.blocks.mu.Unlock()
	s.changed(ch, a)
	s.notify(ch)
	return nil
}

// BlockedAuthors lists the authors blocked in channel ch, locally or by
// moderation (SetModBlocked), ordered by id.
func (s *Store) BlockedAuthors(ch DiscoveryID) ([]AuthorID, error) {
	s.blocks.mu.RLock()
	var out []AuthorID
	for fk := range s.blocks.m {
		if fk.ch == ch && !s.blocks.mod[ch][fk.author] {
			out = append(out, fk.author)
		}
	}
	for a := range s.blocks.mod[ch] {
		out = append(out, a)
	}
	s.blocks.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i][:], out[j][:]) < 0 })
	return out, nil
}

// Purge deletes everything stored of author a's feed in channel ch: its
// entries, its head, its fork evidence and its arrival records, so that
// Heads no longer lists it and Since never returns it. Block the author
// first, or peers will send the feed again (from seq 0). Writes wait while
// a purge runs (it holds the write lock; purges are rare).
func (s *Store) Purge(ctx context.Context, ch DiscoveryID, a AuthorID) error {
	return s.purge(ctx, ch, &a)
}

// PurgeChannel deletes every feed of channel ch and its joined-channel
// record (the channel is parted). Block lists of ch stay.
func (s *Store) PurgeChannel(ctx context.Context, ch DiscoveryID) error {
	return s.purge(ctx, ch, nil)
}

// purge deletes the feed (ch, *a), or every feed of ch if a is nil.
func (s *Store) purge(ctx context.Context, ch DiscoveryID, a *AuthorID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mark := purgeKey(ch, a)
	// 1. The marker, the heads, the fork evidence (and the channel record):
	// from here the feed is gone for readers of heads.
	headPrefix := append([]byte(pHead), ch[:]...)
	forkPrefix := append([]byte(pFork), ch[:]...)
	if a != nil {
		headPrefix, forkPrefix = headKey(ch, *a), forkKey(ch, *a)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(mark, nil) }); err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	for _, p := range [][]byte{headPrefix, forkPrefix} {
		if err := s.deletePrefix(ctx, p); err != nil {
			return err
		}
	}
	if a == nil {
		if err := s.forgetChannel(ch, "purge"); err != nil {
			return err
		}
	}
	// 2. The arrival records (a scan of the whole log), with the high-water
	// mark, so that arrival numbers are never given out twice.
	match := func(v []byte) bool {
		if len(v) != 72 || !bytes.Equal(v[:32], ch[:]) {
			return false
		}
		return a == nil || bytes.Equal(v[32:64], a[:])
	}
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(pWater), binary.BigEndian.AppendUint64(nil, s.last))
	}); err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	if err := s.deleteLog(ctx, match); err != nil {
		return err
	}
	// 3. The entries, then the marker.
	entPrefix := append([]byte(pEntry), ch[:]...)
	if a != nil {
		entPrefix = append(entPrefix, a[:]...)
	}
	if err := s.deletePrefix(ctx, entPrefix); err != nil {
		return err
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(mark) }); err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	// The caches.
	for fk := range s.heads {
		if fk.ch == ch && (a == nil || fk.author == *a) {
			delete(s.heads, fk)
		}
	}
	if a != nil {
		s.changed(ch, *a) // sessions see the feed gone (Len 0)
	}
	s.recent.drop(func(e *Entry) bool { return e.Channel == ch && (a == nil || e.Author == *a) })
	return nil
}

// deletePrefix deletes every key under prefix, purgeTxnKeys per transaction.
func (s *Store) deletePrefix(ctx context.Context, prefix []byte) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var keys [][]byte
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			defer it.Close()
			for it.Rewind(); it.Valid() && len(keys) < purgeTxnKeys; it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			return nil
		})
		if err == nil {
			err = s.deleteKeys(keys)
		}
		if err != nil {
			return fmt.Errorf("purge: %w", err)
		}
		if len(keys) < purgeTxnKeys {
			return nil
		}
	}
}

// deleteLog deletes the arrival records whose value matches.
func (s *Store) deleteLog(ctx context.Context, match func(v []byte) bool) error {
	from := logKey(0)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var keys [][]byte
		var next []byte
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pLog), PrefetchValues: true, PrefetchSize: 256})
			defer it.Close()
			scanned := 0
			for it.Seek(from); it.Valid(); it.Next() {
				if len(keys) >= purgeTxnKeys || scanned >= 20*purgeTxnKeys {
					next = it.Item().KeyCopy(nil)
					return nil
				}
				scanned++
				if err := it.Item().Value(func(v []byte) error {
					if match(v) {
						keys = append(keys, it.Item().KeyCopy(nil))
					}
					return nil
				}); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			err = s.deleteKeys(keys)
		}
		if err != nil {
			return fmt.Errorf("purge arrival log: %w", err)
		}
		if next == nil {
			return nil
		}
		from = next
	}
}

func (s *Store) deleteKeys(keys [][]byte) error {
	if len(keys) == 0 {
		return nil
	}
	return s.db.Update(func(txn *badger.Txn) error {
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
