package feed

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/internal/notify"
)

// Errors of the store. Each is wrapped with details; test with errors.Is.
var (
	ErrNotFound       = errors.New("not found")
	ErrUnknownChannel = errors.New("unknown channel")
	ErrWrongChannel   = errors.New("entry for another channel")
	ErrWrongAuthor    = errors.New("entry for another author")
	ErrSeqGap         = errors.New("seq gap")
	ErrBadPrev        = errors.New("prev hash does not match")
	ErrForked         = errors.New("feed is forked")
	ErrBadEvidence    = errors.New("invalid fork evidence")
	ErrNoVerifiedEnd  = errors.New("no entry with a valid signature to end the run")
)

// metaVerified marks, in a stored entry's Badger user-meta byte, an entry
// whose own signature is known to verify: every own entry and the last entry
// of every accepted run. A run sent to a peer always ends at such an entry
// (docs/protocol.md, "Acceptance"), so that a receiver checking only the
// run's last signature never refuses an honest relay.
const metaVerified byte = 1

// Key layout, all under the prefix 'f' that this package owns:
//
//	f e <D 32> <author 32> <seq 8>  -> entry encoding
//	f h <D 32> <author 32>          -> head: len 8, hash 32, forked 1
//	f l <n 8>                       -> arrival log: D 32, author 32, seq 8
//	f x <D 32> <author 32>          -> fork evidence (CBOR ForkEvidence)
//	f c <D 32>                      -> joined channel (CBOR Channel)
const (
	pEntry = "fe"
	pHead  = "fh"
	pLog   = "fl"
	pFork  = "fx"
	pChan  = "fc"
)

// maxTxnEntries and maxTxnBytes bound one Badger transaction (Badger refuses
// transactions over 15% of a memtable); larger appends and batches are
// written as a sequence of transactions, each leaving a valid feed prefix.
const (
	maxTxnEntries = 2000
	maxTxnBytes   = 1 << 20
)

// Head is the state of one feed: how many entries it holds and the hash of
// the last one (zero for an empty feed).
type Head struct {
	Author AuthorID
	Len    uint64
	Hash   Hash
	Forked bool // the author signed two entries at one seq; no more are accepted
}

type feedKey struct {
	ch     DiscoveryID
	author AuthorID
}

// Store is the feed store: every channel's feeds, verified, in Badger.
// It is safe for concurrent use. Writes are serialised.
type Store struct {
	db  *badger.DB
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex // serialises writes; guards heads, last, changes and buckets
	heads   map[feedKey]Head
	last    uint64 // last arrival number written
	changes map[DiscoveryID]*changeLog
	budget  Budget
	buckets map[feedKey]*bucket

	writeCheck func() error
	recent     recent // the newest stored entries, for the indexer

	blocks *blockList // blocked (channel, author) feeds (block.go)

	chMu  sync.Mutex              // guards chans
	chans map[DiscoveryID]Channel // joined channels, as stored (nil: not read yet)

	appended sync.Map // AuthorID -> true: feeds Append wrote to since Open

	all   notify.Signal // every stored entry
	subMu sync.Mutex    // guards perCh
	perCh map[DiscoveryID]*notify.Signal
}

// Option configures a Store.
type Option func(*Store)

// WithLogger sets the store's logger.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithWriteCheck sets a check run before every write (own or replicated);
// its error refuses the write. The node uses it to refuse writes on a disk
// that is nearly full, which Badger would otherwise meet with SIGBUS.
func WithWriteCheck(check func() error) Option { return func(s *Store) { s.writeCheck = check } }

// WithClock sets the clock used to time own entries (tests).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// Open opens the feed store on db. The caller owns db and closes it after
// the store is no longer used.
func Open(db *badger.DB, opts ...Option) (*Store, error) {
	s := &Store{db: db, log: slog.New(slog.DiscardHandler), now: time.Now,
		heads: map[feedKey]Head{}, perCh: map[DiscoveryID]*notify.Signal{},
		changes: map[DiscoveryID]*changeLog{}, budget: DefaultBudget, buckets: map[feedKey]*bucket{}}
	for _, o := range opts {
		o(s)
	}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pLog), Reverse: true})
		defer it.Close()
		it.Seek(append([]byte(pLog), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
		if it.Valid() {
			s.last = binary.BigEndian.Uint64(it.Item().Key()[len(pLog):])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open feed store: %w", err)
	}
	if err := s.openBlocks(); err != nil {
		return nil, err
	}
	return s, nil
}

func entryKey(ch DiscoveryID, a AuthorID, seq uint64) []byte {
	k := make([]byte, 0, len(pEntry)+72)
	k = append(append(append(k, pEntry...), ch[:]...), a[:]...)
	return binary.BigEndian.AppendUint64(k, seq)
}

func headKey(ch DiscoveryID, a AuthorID) []byte {
	k := make([]byte, 0, len(pHead)+64)
	return append(append(append(k, pHead...), ch[:]...), a[:]...)
}

func logKey(n uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(pLog), n)
}

func encodeHead(h Head) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 41), h.Len)
	b = append(b, h.Hash[:]...)
	if h.Forked {
		return append(b, 1)
	}
	return append(b, 0)
}

func decodeHead(a AuthorID, b []byte) (Head, error) {
	if len(b) != 41 {
		return Head{}, fmt.Errorf("corrupt head record (%d bytes)", len(b))
	}
	h := Head{Author: a, Len: binary.BigEndian.Uint64(b), Forked: b[40] == 1}
	copy(h.Hash[:], b[8:40])
	return h, nil
}

// head returns the cached or stored head. Caller holds s.mu.
func (s *Store) head(ch DiscoveryID, a AuthorID) (Head, error) {
	fk := feedKey{ch, a}
	if h, ok := s.heads[fk]; ok {
		return h, nil
	}
	h, err := s.Head(ch, a)
	if err != nil {
		return h, err
	}
	s.heads[fk] = h
	return h, nil
}

// Head returns the head of author's feed in channel ch (Len 0 if none).
func (s *Store) Head(ch DiscoveryID, a AuthorID) (Head, error) {
	h := Head{Author: a}
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(headKey(ch, a))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			h, err = decodeHead(a, v)
			return err
		})
	})
	if err != nil {
		return Head{Author: a}, fmt.Errorf("read head: %w", err)
	}
	return h, nil
}

// Heads lists the feeds of channel ch with their heads, ordered by author.
func (s *Store) Heads(ch DiscoveryID) ([]Head, error) {
	var out []Head
	prefix := append([]byte(pHead), ch[:]...)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var a AuthorID
			copy(a[:], it.Item().Key()[len(prefix):])
			if err := it.Item().Value(func(v []byte) error {
				h, err := decodeHead(a, v)
				out = append(out, h)
				return err
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list feeds: %w", err)
	}
	return out, nil
}

// Get reads entry seq of author's feed in ch.
func (s *Store) Get(ch DiscoveryID, a AuthorID, seq uint64) (Entry, error) {
	if e, ok := s.recent.get(ch, a, seq); ok {
		return e, nil // just stored: sessions check peers' heads against it
	}
	var e Entry
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		e, err = getEntry(txn, ch, a, seq)
		return err
	})
	return e, err
}

func getEntry(txn *badger.Txn, ch DiscoveryID, a AuthorID, seq uint64) (Entry, error) {
	it, err := txn.Get(entryKey(ch, a, seq))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Entry{}, fmt.Errorf("entry %s/%d: %w", a.Short(), seq, ErrNotFound)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("read entry: %w", err)
	}
	var e Entry
	err = it.Value(func(v []byte) error {
		e, err = DecodeEntry(v)
		return err
	})
	return e, err
}

// Range calls fn for entries from seq onwards of author's feed in ch, in seq
// order, until the feed ends, limit entries were given (limit 0: no limit),
// or fn returns an error (returned as is).
func (s *Store) Range(ch DiscoveryID, a AuthorID, from uint64, limit int, fn func(Entry) error) error {
	prefix := append(append([]byte(pEntry), ch[:]...), a[:]...)
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		n := 0
		for it.Seek(entryKey(ch, a, from)); it.Valid(); it.Next() {
			var e Entry
			err := it.Item().Value(func(v []byte) error {
				var err error
				e, err = DecodeEntry(v)
				return err
			})
			if err != nil {
				return fmt.Errorf("read entry: %w", err)
			}
			if err := fn(e); err != nil {
				return err
			}
			if n++; limit > 0 && n >= limit {
				return nil
			}
		}
		return nil
	})
}

// Last is the arrival number of the newest stored entry (0: none). Every
// stored entry, own or replicated, gets the next number in the order it was
// written; Since walks them. Views keep one such number as their clock.
func (s *Store) Last() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Since calls fn for every entry with arrival number > after, in arrival
// order, up to limit entries (0: all), and stops at fn's first error.
// Entries of one feed always arrive in seq order.
func (s *Store) Since(after uint64, limit int, fn func(n uint64, e Entry) error) error {
	// Just stored: from memory (what the indexer asks for while it keeps up).
	if es, n, ok := s.recent.since(after, limit); ok {
		for i := range es {
			if err := fn(n+uint64(i), es[i]); err != nil {
				return err
			}
		}
		after += uint64(len(es))
		if limit > 0 {
			if limit -= len(es); limit == 0 {
				return nil
			}
		}
	}
	return s.db.View(func(txn *badger.Txn) error {
		logIt := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pLog), PrefetchValues: true, PrefetchSize: 256})
		defer logIt.Close()
		entIt := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pEntry)})
		defer entIt.Close()
		count := 0
		refs := make([]arrivalRef, 0, 512)
		logIt.Seek(logKey(after + 1))
		for {
			// Read a chunk of arrival records, then resolve them run by run:
			// consecutive entries of one feed are adjacent keys, read with one
			// seek and Next, not a lookup each.
			refs = refs[:0]
			for ; logIt.Valid() && len(refs) < cap(refs) && (limit == 0 || count+len(refs) < limit); logIt.Next() {
				r, err := decodeRef(logIt.Item())
				if err != nil {
					return err
				}
				refs = append(refs, r)
			}
			if len(refs) == 0 {
				return nil
			}
			for i, r := range refs {
				if i == 0 || r.ch != refs[i-1].ch || r.author != refs[i-1].author || r.seq != refs[i-1].seq+1 {
					entIt.Seek(entryKey(r.ch, r.author, r.seq))
				} else {
					entIt.Next()
				}
				if !entIt.Valid() || !bytes.Equal(entIt.Item().Key(), entryKey(r.ch, r.author, r.seq)) {
					return fmt.Errorf("arrival %d: entry %s/%d: %w", r.n, r.author.Short(), r.seq, ErrNotFound)
				}
				var e Entry
				if err := entIt.Item().Value(func(v []byte) error {
					var err error
					e, err = DecodeEntry(v)
					return err
				}); err != nil {
					return fmt.Errorf("arrival %d: %w", r.n, err)
				}
				if err := fn(r.n, e); err != nil {
					return err
				}
				count++
			}
			if limit > 0 && count >= limit {
				return nil
			}
		}
	})
}

type arrivalRef struct {
	n      uint64
	ch     DiscoveryID
	author AuthorID
	seq    uint64
}

func decodeRef(it *badger.Item) (arrivalRef, error) {
	r := arrivalRef{n: binary.BigEndian.Uint64(it.Key()[len(pLog):])}
	err := it.Value(func(v []byte) error {
		if len(v) != 72 {
			return fmt.Errorf("corrupt arrival record %d", r.n)
		}
		copy(r.ch[:], v[:32])
		copy(r.author[:], v[32:64])
		r.seq = binary.BigEndian.Uint64(v[64:])
		return nil
	})
	return r, err
}

// Append signs payloads as the next entries of id's feed in channel ch and
// stores them durably (fsync) before returning them. All payloads are
// checked before anything is written.
func (s *Store) Append(ctx context.Context, id *Identity, ch DiscoveryID, payloads ...Payload) ([]Entry, error) {
	raws := make([][]byte, len(payloads))
	for i, p := range payloads {
		b, err := p.Marshal()
		if err != nil {
			return nil, err
		}
		raws[i] = b
	}
	if _, err := s.Channel(ch); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.head(ch, id.ID())
	if err != nil {
		return nil, err
	}
	if h.Forked {
		return nil, fmt.Errorf("append to own feed: %w", ErrForked)
	}
	out := make([]Entry, 0, len(raws))
	now := s.now().UnixMilli()
	for i, raw := range raws {
		e, err := NewEntry(id, ch, h, now, raw)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i+1, err)
		}
		out = append(out, e)
		h.Len, h.Hash = e.Seq+1, e.Hash()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.write(ch, id.ID(), out, len(out)); err != nil {
		return nil, err
	}
	// fsync while still holding the write lock: until it returns, no other
	// write can signal subscribers, so replication never sends an own entry
	// that a crash could still lose. (Lost after being sent, it would be
	// written again differently at the same seq: a fork of our own feed.)
	if err := s.db.Sync(); err != nil {
		return nil, fmt.Errorf("sync store: %w", err)
	}
	s.appended.Store(id.ID(), true)
	s.notify(ch)
	return out, nil
}

// Appended reports whether Append wrote to a's feed (in any channel) since
// the store was opened: a is written here, so its new entries have no
// other source. Replication pushes them at once and relays other feeds'
// entries lazily.
func (s *Store) Appended(a AuthorID) bool {
	_, ok := s.appended.Load(a)
	return ok
}

// write stores verified, contiguous entries of one feed that extend its
// current head, in transactions of at most maxTxnEntries. The last
// `verified` entries (all of them for own appends, the last one for a
// replicated run) are marked as having a valid signature of their own.
// Caller holds s.mu.
func (s *Store) write(ch DiscoveryID, a AuthorID, es []Entry, verified int) error {
	if s.writeCheck != nil {
		if err := s.writeCheck(); err != nil {
			return err
		}
	}
	firstVerified := len(es) - verified
	done := 0
	for len(es) > 0 {
		n, size := 0, 0
		for n < len(es) && n < maxTxnEntries && (n == 0 || size+len(es[n].Encode()) <= maxTxnBytes) {
			size += len(es[n].Encode()) + 160
			n++
		}
		chunk := es[:n]
		txn := s.db.NewTransaction(true)
		last := s.last
		for i := range chunk {
			e := &chunk[i]
			last++
			ref := make([]byte, 0, 72)
			ref = binary.BigEndian.AppendUint64(append(append(ref, ch[:]...), a[:]...), e.Seq)
			be := badger.NewEntry(entryKey(ch, a, e.Seq), e.Encode())
			if done+i >= firstVerified {
				be = be.WithMeta(metaVerified)
			}
			if err := txn.SetEntry(be); err != nil {
				txn.Discard()
				return fmt.Errorf("store entry: %w", err)
			}
			if err := txn.Set(logKey(last), ref); err != nil {
				txn.Discard()
				return fmt.Errorf("store entry: %w", err)
			}
		}
		tail := &chunk[n-1]
		h := Head{Author: a, Len: tail.Seq + 1, Hash: tail.Hash()}
		if err := txn.Set(headKey(ch, a), encodeHead(h)); err != nil {
			txn.Discard()
			return fmt.Errorf("store head: %w", err)
		}
		if err := txn.Commit(); err != nil {
			return fmt.Errorf("commit entries: %w", err)
		}
		s.recent.add(s.last+1, chunk, max(0, n-max(0, firstVerified-done)))
		s.last = last
		s.heads[feedKey{ch, a}] = h
		s.changed(ch, a)
		es = es[n:]
		done += n
	}
	return nil
}

// checkRun checks what can be checked of a run of author a's feed in ch
// without the store: one channel, one author, consecutive seqs, sizes,
// payloads, and the hash chain inside the run.
func checkRun(ch DiscoveryID, a AuthorID, batch []Entry) error {
	first := batch[0].Seq
	for i := range batch {
		e := &batch[i]
		switch {
		case e.Channel != ch:
			return fmt.Errorf("%w: entry %d of batch", ErrWrongChannel, i)
		case e.Author != a:
			return fmt.Errorf("%w: entry %d of batch is by %s", ErrWrongAuthor, i, e.Author.Short())
		case e.Seq != first+uint64(i):
			return fmt.Errorf("%w: entry %d of batch has seq %d, want %d", ErrSeqGap, i, e.Seq, first+uint64(i))
		case len(e.Payload) > MaxPayload || len(e.Encode()) > MaxEntry:
			return fmt.Errorf("%w: entry %d of batch", ErrTooLarge, i)
		}
		if i > 0 && e.Prev != batch[i-1].Hash() {
			return fmt.Errorf("%w: entry seq %d does not chain to seq %d", ErrBadPrev, e.Seq, e.Seq-1)
		}
		if e.Seq == 0 && e.Prev != (Hash{}) {
			return fmt.Errorf("%w: seq 0 must have a zero prev", ErrBadPrev)
		}
		if err := checkPayloadWellFormed(e.Payload); err != nil {
			return fmt.Errorf("entry %d of batch: %w", i, err)
		}
	}
	return nil
}

// VerifiedPrefix returns how many leading entries of a run can be accepted
// on their own: the run up to its last entry whose own signature verifies
// (0 if none). It is for runs from peers that may end a frame at an entry
// whose signature does not verify (protocol version 1); the cost is one
// signature check per entry walked back.
func VerifiedPrefix(batch []Entry) int {
	for i := len(batch) - 1; i >= 0; i-- {
		if batch[i].VerifySignature() == nil {
			return i + 1
		}
	}
	return 0
}

// Apply verifies a run of entries of author a's feed in channel ch, received
// from elsewhere, and stores the part that is new. The run must be
// contiguous in seq; it is verified with the hash chain from the local head
// and ONE signature check on its last entry (which commits to all earlier
// ones through prev). On any violation nothing is stored and the error says
// why. Entries already held are skipped; a valid entry that differs from the
// one held at its seq is a fork: the evidence is recorded, the feed refuses
// further entries, and ErrForked is returned. A run that would take the
// author over its budget is refused whole with a *ThrottleError. Apply
// returns how many entries were new.
func (s *Store) Apply(ctx context.Context, ch DiscoveryID, a AuthorID, batch []Entry) (int, error) {
	if len(batch) == 0 {
		return 0, nil
	}
	if _, err := s.Channel(ch); err != nil {
		return 0, err
	}
	tail := &batch[len(batch)-1]
	if held, err := s.holds(ch, a, tail); err != nil || held {
		// Every peer of a mesh pushes a new entry before it hears that we
		// hold it: most batches on the live path are copies. A tail that
		// hashes to a held entry is those signed bytes: nothing to store,
		// so no signature or hash chain to check (a batch that only ends
		// like ours stores nothing either).
		return 0, err
	}
	if err := checkRun(ch, a, batch); err != nil {
		return 0, err
	}
	first := batch[0].Seq
	if err := tail.VerifySignature(); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blocks.has(ch, a) {
		return 0, fmt.Errorf("feed %s: %w", a.Short(), ErrBlocked)
	}
	h, err := s.head(ch, a)
	if err != nil {
		return 0, err
	}
	if h.Forked {
		return 0, fmt.Errorf("feed %s: %w", a.Short(), ErrForked)
	}
	if first > h.Len {
		return 0, fmt.Errorf("%w: batch starts at seq %d, feed %s has %d entries", ErrSeqGap, first, a.Short(), h.Len)
	}
	if first < h.Len {
		// The batch overlaps what we hold. Both runs are hash chains, so the
		// last overlapping entry matching proves the whole overlap matches.
		i := min(tail.Seq, h.Len-1) - first
		held, err := s.Get(ch, a, batch[i].Seq)
		if err != nil {
			return 0, err
		}
		if held.Hash() != batch[i].Hash() {
			if err := s.recordFork(ch, a, h, held, batch[i]); err != nil {
				return 0, err
			}
			return 0, fmt.Errorf("feed %s seq %d: %w", a.Short(), batch[i].Seq, ErrForked)
		}
		if tail.Seq < h.Len {
			return 0, nil
		}
		batch = batch[h.Len-first:]
	} else if batch[0].Prev != h.Hash {
		return 0, fmt.Errorf("%w: seq %d does not chain to the held head of feed %s", ErrBadPrev, first, a.Short())
	}
	var size int64
	for i := range batch {
		size += int64(len(batch[i].Encode()))
	}
	if wait, ok := s.take(feedKey{ch, a}, size, s.now()); !ok {
		return 0, &ThrottleError{Author: a, RetryAfter: wait}
	}
	if err := s.write(ch, a, batch, 1); err != nil {
		return 0, err
	}
	s.notify(ch)
	return len(batch), nil
}

// holds reports whether the store holds entry e (the same bytes) of
// author a's feed in ch, as Apply would find it: not for a blocked or
// forked feed, whose batches Apply must refuse or record.
func (s *Store) holds(ch DiscoveryID, a AuthorID, e *Entry) (bool, error) {
	s.mu.Lock()
	h, err := s.head(ch, a)
	blocked := s.blocks.has(ch, a)
	s.mu.Unlock()
	if err != nil || blocked || h.Forked || e.Seq >= h.Len {
		return false, err
	}
	if e.Seq == h.Len-1 {
		return e.Hash() == h.Hash, nil
	}
	held, err := s.Get(ch, a, e.Seq)
	if err != nil {
		return false, err
	}
	return held.Hash() == e.Hash(), nil
}

// Run returns a run of author a's feed in ch from seq from that a peer can
// accept with one signature check: at most maxEntries entries and maxBytes
// of encodings (a single entry may be larger), ending at an entry whose own
// signature verifies. Stored runs always end at such an entry, so one exists
// within the limits the run was received with. It returns no entries (and
// no error) when from is past the head.
func (s *Store) Run(ch DiscoveryID, a AuthorID, from uint64, maxEntries, maxBytes int) ([]Entry, error) {
	if out, ok := s.recent.run(ch, a, from, maxEntries, maxBytes); ok {
		return out, nil // just stored: every session of the channel sends it on
	}
	var out []Entry
	lastMarked := -1
	prefix := append(append([]byte(pEntry), ch[:]...), a[:]...)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		total := 0
		for it.Seek(entryKey(ch, a, from)); it.Valid() && len(out) < maxEntries; it.Next() {
			item := it.Item()
			var e Entry
			if err := item.Value(func(v []byte) error {
				var err error
				e, err = DecodeEntry(v)
				return err
			}); err != nil {
				return fmt.Errorf("read entry: %w", err)
			}
			if len(out) > 0 && total+len(e.Encode()) > maxBytes {
				return nil
			}
			total += len(e.Encode())
			if item.UserMeta()&metaVerified != 0 {
				lastMarked = len(out)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil || len(out) == 0 {
		return nil, err
	}
	switch {
	case lastMarked == len(out)-1:
		return out, nil
	case out[len(out)-1].VerifySignature() == nil:
		return out, nil // stored before entries were marked, or an inner entry
	case lastMarked >= 0:
		return out[:lastMarked+1], nil
	}
	if n := VerifiedPrefix(out); n > 0 {
		return out[:n], nil
	}
	return nil, fmt.Errorf("feed %s from seq %d: %w", a.Short(), from, ErrNoVerifiedEnd)
}

// ForkEvidence is two valid entries by one author at one seq.
type ForkEvidence struct {
	Author AuthorID `cbor:"1,keyasint"`
	Seq    uint64   `cbor:"2,keyasint"`
	Held   []byte   `cbor:"3,keyasint"` // encoding of the entry held first
	Other  []byte   `cbor:"4,keyasint"` // encoding of the conflicting entry
}

// Portable reports whether both entries of the evidence carry a valid
// signature of their own, so that it can be handed to a peer on its own
// (a fork frame). An entry authenticated only by a later entry's signature
// is valid evidence here but proves nothing alone.
func (ev ForkEvidence) Portable() bool {
	for _, raw := range [][]byte{ev.Held, ev.Other} {
		e, err := DecodeEntry(raw)
		if err != nil || e.VerifySignature() != nil {
			return false
		}
	}
	return true
}

// recordFork stores fork evidence and freezes the feed. Caller holds s.mu.
func (s *Store) recordFork(ch DiscoveryID, a AuthorID, h Head, held, other Entry) error {
	ev, err := encMode.Marshal(ForkEvidence{Author: a, Seq: held.Seq, Held: held.Encode(), Other: other.Encode()})
	if err != nil {
		return fmt.Errorf("encode fork evidence: %w", err)
	}
	h.Forked = true
	err = s.db.Update(func(txn *badger.Txn) error {
		k := append(append([]byte(pFork), ch[:]...), a[:]...)
		if err := txn.Set(k, ev); err != nil {
			return err
		}
		return txn.Set(headKey(ch, a), encodeHead(h))
	})
	if err != nil {
		return fmt.Errorf("record fork: %w", err)
	}
	s.heads[feedKey{ch, a}] = h
	s.changed(ch, a)
	s.notify(ch)
	s.log.Warn("feed forked: author signed two entries at one seq", "channel", ch.Short(), "author", a.Short(), "seq", held.Seq)
	return nil
}

// RecordFork checks fork evidence received from a peer, two entries x and y
// of channel ch by one author at one seq with different hashes and each
// with a valid signature of its own, and records it: the author's feed is
// frozen here too. It reports whether the evidence was new (false if the
// feed was already known to be forked). Invalid evidence is ErrBadEvidence.
func (s *Store) RecordFork(ch DiscoveryID, x, y Entry) (bool, error) {
	switch {
	case x.Channel != ch || y.Channel != ch:
		return false, fmt.Errorf("%w: entry for another channel", ErrBadEvidence)
	case x.Author != y.Author:
		return false, fmt.Errorf("%w: entries by two authors", ErrBadEvidence)
	case x.Seq != y.Seq:
		return false, fmt.Errorf("%w: entries at seqs %d and %d", ErrBadEvidence, x.Seq, y.Seq)
	case x.Hash() == y.Hash():
		return false, fmt.Errorf("%w: the same entry twice", ErrBadEvidence)
	}
	for _, e := range []*Entry{&x, &y} {
		if err := e.VerifySignature(); err != nil {
			return false, fmt.Errorf("%w: %w", ErrBadEvidence, err)
		}
	}
	if _, err := s.Channel(ch); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.head(ch, x.Author)
	if err != nil {
		return false, err
	}
	if h.Forked {
		return false, nil
	}
	// Keep the entry we hold at that seq (if any) as the "held" one.
	held, other := x, y
	if h.Len > x.Seq {
		if e, err := s.Get(ch, x.Author, x.Seq); err == nil && e.Hash() == y.Hash() {
			held, other = y, x
		}
	}
	return true, s.recordFork(ch, x.Author, h, held, other)
}

// Forks returns the fork evidence recorded in channel ch.
func (s *Store) Forks(ch DiscoveryID) ([]ForkEvidence, error) {
	var out []ForkEvidence
	prefix := append([]byte(pFork), ch[:]...)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var ev ForkEvidence
			if err := it.Item().Value(func(v []byte) error { return decMode.Unmarshal(v, &ev) }); err != nil {
				return err
			}
			out = append(out, ev)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read forks: %w", err)
	}
	return out, nil
}

// Fork returns the fork evidence of author a in ch (ErrNotFound if none).
func (s *Store) Fork(ch DiscoveryID, a AuthorID) (ForkEvidence, error) {
	var ev ForkEvidence
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(append(append([]byte(pFork), ch[:]...), a[:]...))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("fork evidence of %s: %w", a.Short(), ErrNotFound)
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error { return decMode.Unmarshal(v, &ev) })
	})
	return ev, err
}

// Subscription signals that new entries were stored (in one channel, or in
// any). Signals coalesce: a subscriber that is busy gets one signal for many
// writes, then reads what is new with Since or Changes. Nothing queues, so
// a slow subscriber costs no memory.
type Subscription = notify.Subscription

// Subscribe returns a subscription to new entries of every channel.
func (s *Store) Subscribe() *Subscription { return s.all.Subscribe() }

// SubscribeChannel returns a subscription to changes of channel ch only
// (new entries, a feed found forked, blocked or purged): a session of one
// channel is not woken by traffic in the others.
func (s *Store) SubscribeChannel(ch DiscoveryID) *Subscription {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	sig := s.perCh[ch]
	if sig == nil {
		sig = new(notify.Signal)
		s.perCh[ch] = sig
	}
	return sig.Subscribe()
}

func (s *Store) notify(ch DiscoveryID) {
	s.all.Notify()
	s.subMu.Lock()
	sig := s.perCh[ch]
	s.subMu.Unlock()
	if sig != nil {
		sig.Notify()
	}
}
