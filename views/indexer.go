package views

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
)

// View is one kappa view: a function over the entries of the feed store,
// kept as rows under key prefixes it owns.
//
// The indexer calls Map with every entry the view has not seen, in arrival
// order (so one feed's entries come in seq order), inside the Badger
// transaction that also records the view's clock. Rows and clock commit
// together: a crash never skips an entry or maps one twice. Map must write
// only under Prefixes and must not commit or discard txn.
//
// Changing Version drops every key under Prefixes and rebuilds the view from
// the first arrival.
type View interface {
	Name() string
	Version() uint32
	Prefixes() [][]byte
	Map(txn *badger.Txn, b *Batch) error
}

// Batch is a run of entries given to View.Map.
type Batch struct {
	Now   time.Time // the local clock when the batch was indexed
	Items []Item
	// modChans holds the channels with moderation entries anywhere in the
	// chunk (also before the clock of the view given Items): only those
	// can have moderation rows the transaction has not committed yet, and
	// the unread view recounts those (once each).
	modChans map[feed.DiscoveryID]bool
	// behind: more than a chunk of entries is left after this one (the
	// indexer is catching up); work that only needs doing once caught up
	// can wait (the unread view's recounts).
	behind bool
}

// Item is one stored entry with its decoded payload. Entries whose payload
// does not decode or has a kind this version does not know are not given to
// views (they still advance the clock).
type Item struct {
	N     uint64 // arrival number
	Entry feed.Entry
	Kind  feed.Kind
	Text  string
	// Ref is the message a text or emote replies to, or the one an edit or
	// delete changes (nil if none or malformed).
	Ref *msgRef
	// Mod is the action of a moderation entry (KindMod), nil otherwise.
	Mod *modItem
	// private is what the local user's key made of a sealed (kind 8)
	// entry, nil if it is not theirs (private.go).
	private *opened
}

// msgRef is a decoded feed.Ref.
type msgRef struct {
	author feed.AuthorID
	seq    uint64
}

// Chunk limits: one chunk is one Badger transaction. Badger refuses a
// transaction larger than 15% of a memtable (2.4 MB with kchat's options), so
// chunks are bounded in bytes of text as well as in entries; a chunk that
// still does not fit is halved.
const (
	maxChunkEntries = 1000
	maxChunkBytes   = 512 << 10
)

type viewState struct {
	version uint32
	clock   uint64
}

func readState(txn *badger.Txn, name string) (viewState, bool, error) {
	it, err := txn.Get(stateKey(name))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return viewState{}, false, nil
	}
	if err != nil {
		return viewState{}, false, err
	}
	var s viewState
	err = it.Value(func(v []byte) error {
		if len(v) != 12 {
			return fmt.Errorf("view %s: corrupt state (%d bytes)", name, len(v))
		}
		s.version = binary.BigEndian.Uint32(v)
		s.clock = binary.BigEndian.Uint64(v[4:])
		return nil
	})
	return s, true, err
}

func writeState(txn *badger.Txn, name string, s viewState) error {
	v := binary.BigEndian.AppendUint32(make([]byte, 0, 12), s.version)
	return txn.Set(stateKey(name), binary.BigEndian.AppendUint64(v, s.clock))
}

// loadStates reads every view's stored state. A view whose stored version
// differs (or that has none) starts at clock 0 and is marked for a drop.
func (v *Views) loadStates() error {
	return v.db.View(func(txn *badger.Txn) error {
		for i, vw := range v.views {
			s, ok, err := readState(txn, vw.Name())
			if err != nil {
				return err
			}
			if ok && s.version == vw.Version() {
				v.clocks[i] = s.clock
				continue
			}
			v.clocks[i] = 0
			v.rebuild[i] = true
			if ok {
				v.log.Info("view version changed: rebuilding", "view", vw.Name(), "from", s.version, "to", vw.Version())
			}
		}
		return nil
	})
}

// prepare drops the keys of views marked for a rebuild and records their new
// version at clock 0. The old state stays until every key is gone, so a
// crash during the drop is followed by another drop.
func (v *Views) prepare(ctx context.Context) error {
	for i, vw := range v.views {
		if !v.rebuild[i] {
			continue
		}
		for _, p := range vw.Prefixes() {
			if err := v.dropPrefix(ctx, p); err != nil {
				return fmt.Errorf("drop view %s: %w", vw.Name(), err)
			}
		}
		if err := v.checkWrite(); err != nil {
			return fmt.Errorf("reset view %s: %w", vw.Name(), err)
		}
		v.writeMu.Lock()
		err := v.db.Update(func(txn *badger.Txn) error {
			return writeState(txn, vw.Name(), viewState{version: vw.Version()})
		})
		v.writeMu.Unlock()
		if err != nil {
			return fmt.Errorf("reset view %s: %w", vw.Name(), err)
		}
		v.rebuild[i] = false
		v.nicks.invalidate()
	}
	return nil
}

// dropPrefix deletes every key under p in transactions of 1000 deletions
// (about 100 kB, far below Badger's limit). DB.DropPrefix is not used: it
// would block the other packages' writes on the shared DB meanwhile.
func (v *Views) dropPrefix(ctx context.Context, p []byte) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var keys [][]byte
		err := v.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
			defer it.Close()
			for it.Rewind(); it.Valid() && len(keys) < 1000; it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			return nil
		})
		if err != nil || len(keys) == 0 {
			return err
		}
		if err := v.checkWrite(); err != nil {
			return err
		}
		v.writeMu.Lock()
		err = v.db.Update(func(txn *badger.Txn) error {
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		v.writeMu.Unlock()
		if err != nil {
			return err
		}
	}
}

// run is the indexer goroutine: catch up, then follow the store.
func (v *Views) run(ctx context.Context) {
	defer close(v.done)
	defer v.sub.Close()
	backoff := time.Duration(0)
	for {
		err := v.prepare(ctx)
		from, start := v.Indexed(), time.Now()
		for err == nil {
			var more bool
			more, err = v.step(ctx)
			if !more {
				break
			}
			backoff = 0
		}
		if to := v.Indexed(); to-from >= 10*maxChunkEntries {
			v.log.Info("views caught up", "from", from, "to", to, "took", time.Since(start).Round(time.Millisecond))
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			select {
			case <-ctx.Done():
			case <-v.sub.C():
			}
			continue
		}
		// A failed chunk was rolled back whole; try it again later. New
		// entries do not hurry the retry (their signal stays pending).
		backoff = min(max(2*backoff, 50*time.Millisecond), 5*time.Second)
		v.log.Error("indexer: retrying", "err", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// step indexes one chunk. It reports whether there may be more to do.
func (v *Views) step(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	lo := v.clocks[0]
	for _, c := range v.clocks[1:] {
		lo = min(lo, c)
	}
	// Taken before reading: every arrival up to end is committed, so if
	// nothing after lo can be read, (lo, end] holds only arrival numbers
	// whose records a purge deleted (feed.Store.Purge), and the clocks move
	// past them (else WaitIndexed(st.Last()) would wait for ever).
	end := v.st.Last()
	items, last, err := v.read(lo)
	if errors.Is(err, feed.ErrMalformed) || errors.Is(err, feed.ErrTooLarge) {
		if last > lo {
			// Index what came before the bad entry; it is skipped next time.
			err = nil
		} else {
			// Arrival numbers have no gaps, so the entry that failed to
			// decode is lo+1. It can never be read: skip it.
			v.log.Warn("indexer: skipping an entry the store cannot decode", "arrival", lo+1, "err", err)
			items, last, err = nil, lo+1, nil
		}
	}
	if err != nil {
		return false, fmt.Errorf("read entries after %d: %w", lo, err)
	}
	if last == lo {
		if end > lo {
			return true, v.commit(nil, end)
		}
		return false, nil
	}
	if err := v.commit(items, last); err != nil {
		return false, err
	}
	return true, nil
}

// read collects the next chunk of entries after arrival lo. It returns the
// decodable items and the arrival number of the last entry read.
//
// Reading is most of the cost of indexing (the store fetches each entry by
// its arrival record), so while catching up the chunk is read as disjoint
// arrival ranges in parallel. Arrival numbers have no gaps, so the ranges
// join exactly; a range is used only if every range before it was complete.
func (v *Views) read(lo uint64) ([]Item, uint64, error) {
	parts := v.readers
	if v.st.Last()-lo < uint64(v.chunkEntries) || v.chunkEntries < 2*parts {
		parts = 1
	}
	if parts == 1 {
		return v.readRange(lo, v.chunkEntries, v.chunkBytes)
	}
	type result struct {
		items []Item
		last  uint64
		err   error
	}
	seg := v.chunkEntries / parts
	res := make([]result, parts)
	var wg sync.WaitGroup
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &res[i]
			r.items, r.last, r.err = v.readRange(lo+uint64(i*seg), seg, v.chunkBytes/parts)
		}()
	}
	wg.Wait()
	items, last := res[0].items, res[0].last
	for i := 1; i < parts; i++ {
		prev := res[i-1]
		if prev.err != nil || prev.last != lo+uint64(i*seg) || res[i].err != nil {
			break
		}
		items = append(items, res[i].items...)
		last = res[i].last
	}
	return items, last, res[0].err
}

// readRange reads up to limit entries (and about maxBytes of payload) after
// arrival lo.
func (v *Views) readRange(lo uint64, limit, maxBytes int) ([]Item, uint64, error) {
	// An Item is a few hundred bytes: on the live path a step reads a
	// handful, so size the slice by what is there, not by the limit.
	var have uint64
	if last := v.st.Last(); last > lo {
		have = last - lo
	}
	items := make([]Item, 0, min(uint64(limit), 1024, have))
	last, size := lo, 0
	err := v.st.Since(lo, limit, func(n uint64, e feed.Entry) error {
		last = n
		size += len(e.Payload)
		p, err := feed.UnmarshalPayload(e.Payload)
		switch {
		case err != nil:
			v.log.Debug("indexer: skipping undecodable payload", "arrival", n, "err", err)
		case p.Kind == feed.KindSealed:
			// Trial decryption here, in the parallel readers, not in
			// the chunk's transaction.
			items = append(items, Item{N: n, Entry: e, Kind: p.Kind, private: v.openSealed(&e, p.Sealed)})
		case p.Kind < feed.KindText || p.Kind > feed.KindMod:
			// A kind a newer version knows: stored and replicated, not shown.
		case p.Kind == feed.KindMod:
			if m, ok := newModItem(p); ok {
				items = append(items, Item{N: n, Entry: e, Kind: p.Kind, Mod: m})
			}
		default:
			it := Item{N: n, Entry: e, Kind: p.Kind, Text: p.Text}
			if a, ok := p.Ref.AuthorID(); ok {
				it.Ref = &msgRef{author: a, seq: p.Ref.Seq}
			}
			items = append(items, it)
		}
		if size >= maxBytes {
			return errChunkFull
		}
		return nil
	})
	if errors.Is(err, errChunkFull) {
		err = nil
	}
	return items, last, err
}

var errChunkFull = errors.New("chunk full")

// commit maps items into every view that has not seen them and advances each
// view's clock to last, all in one transaction. A transaction that turns out
// too big for Badger is split in two.
func (v *Views) commit(items []Item, last uint64) error {
	err := v.commitOnce(items, last)
	if errors.Is(err, badger.ErrTxnTooBig) && len(items) > 1 {
		h := len(items) / 2
		if err := v.commit(items[:h], items[h-1].N); err != nil {
			return err
		}
		return v.commit(items[h:], last)
	}
	return err
}

func (v *Views) commitOnce(items []Item, last uint64) error {
	if err := v.checkWrite(); err != nil {
		return err
	}
	v.writeMu.Lock()
	defer v.writeMu.Unlock()
	txn := v.db.NewTransaction(true)
	defer txn.Discard()
	b := &Batch{Now: v.now(), behind: v.st.Last() > last+uint64(v.chunkEntries)}
	for i := range items {
		if items[i].Kind == feed.KindMod {
			if b.modChans == nil {
				b.modChans = map[feed.DiscoveryID]bool{}
			}
			b.modChans[items[i].Entry.Channel] = true
		}
	}
	for i, vw := range v.views {
		if v.clocks[i] >= last {
			continue
		}
		j := 0
		for j < len(items) && items[j].N <= v.clocks[i] {
			j++
		}
		if j < len(items) {
			b.Items = items[j:]
			if err := vw.Map(txn, b); err != nil {
				return fmt.Errorf("view %s: %w", vw.Name(), err)
			}
			v.mapped[i].Add(int64(len(b.Items)))
		}
		if err := writeState(txn, vw.Name(), viewState{version: vw.Version(), clock: last}); err != nil {
			return err
		}
	}
	if v.beforeCommit != nil {
		if err := v.beforeCommit(last); err != nil {
			return err
		}
	}
	if b.modChans != nil {
		// Odd while moderation changes are being committed; even again
		// (and changed) once they are visible, before anyone is told
		// (ModGeneration).
		v.modGen.Add(1)
	}
	err := txn.Commit()
	if b.modChans != nil {
		v.modGen.Add(1)
	}
	if err != nil {
		return err
	}
	nicks := false
	for i := range items {
		if items[i].Kind == feed.KindNick {
			nicks = true
			break
		}
	}
	if nicks {
		v.nicks.invalidate()
	}
	lo := last
	for i := range v.clocks {
		v.clocks[i] = max(v.clocks[i], last)
		lo = min(lo, v.clocks[i])
	}
	v.advance(lo)
	return nil
}
