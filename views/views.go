package views

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/notify"
	"github.com/kchat-p2p/kchat/seal"
)

// Errors of Views.
var (
	ErrClosed      = errors.New("views closed")                        // WaitIndexed after Close
	ErrAlreadyOpen = errors.New("views already open on this database") // a second Open on one DB
	// ErrReadOnly: views opened WithReadOnly cannot index entries the store
	// holds beyond what was indexed before.
	ErrReadOnly = errors.New("views are read-only")
)

// open guards against two indexers on one DB: both would map every entry
// and the counters would count it twice.
var (
	openMu  sync.Mutex
	openDBs = map[*badger.DB]bool{}
)

// Views is the set of kchat's views over one feed store, kept up to date by
// one indexer goroutine, and the read API over them. It is safe for
// concurrent use. At most one Views may be open on a database.
type Views struct {
	db   *badger.DB
	st   *feed.Store
	self feed.AuthorID
	log  *slog.Logger
	now  func() time.Time

	views  []View
	mapped []atomic.Int64 // entries given to each view's Map (tests, stats)
	nicks  *nickCache

	// writeMu serialises the indexer's transactions with MarkRead's, because
	// the DB is opened without conflict detection. clocks and rebuild are
	// written by the indexer goroutine under writeMu.
	writeMu sync.Mutex
	clocks  []uint64
	rebuild []bool

	indexed atomic.Uint64 // min over clocks
	waitMu  sync.Mutex
	waitCh  chan struct{} // closed and replaced when indexed advances

	changed notify.Signal
	// modGen counts indexed chunks that held moderation entries, and
	// changes of the local follow settings (ModGeneration).
	modGen atomic.Uint64
	// modCache holds channels' committed moderation as of a generation
	// (cachedModeration).
	modCacheMu sync.Mutex
	modCache   map[feed.DiscoveryID]modCached

	sub       *feed.Subscription
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once

	chunkEntries int
	chunkBytes   int
	readers      int // parallel readers while catching up
	// writeCheck, if set, runs before every write; an error refuses it.
	writeCheck func() error
	readOnly   bool
	// blocked, if set, lists the authors whose messages never count as
	// unread or as mentions.
	blocked func() map[feed.AuthorID]bool
	// opener opens private messages with the local user's key (WithBoxKey).
	opener *seal.Opener
	// beforeCommit, if set, is called before each chunk's commit (tests:
	// simulated crashes). An error rolls the chunk back.
	beforeCommit func(last uint64) error
}

// Option configures Views.
type Option func(*Views)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(v *Views) { v.log = l } }

// WithWriteCheck sets a check run before every write of the views (index
// chunks, rebuilds, read markers); an error refuses the write, and the
// indexer retries the chunk later with backoff. The node uses it to stop
// writing when the disk is nearly full (Badger writes through mmapped files,
// and a page the file system cannot back kills the process).
func WithWriteCheck(check func() error) Option { return func(v *Views) { v.writeCheck = check } }

// WithBlocked sets where the unread view learns who is blocked: their
// messages arriving from then on count neither as unread nor as mentions
// (they are hidden, so they must not ring, count or notify). It is called
// once per indexed chunk that holds other authors' messages.
func WithBlocked(blocked func() map[feed.AuthorID]bool) Option {
	return func(v *Views) { v.blocked = blocked }
}

// WithReadOnly opens the views without an indexer, for a database opened
// read-only: they show what was indexed before, MarkRead fails, and
// WaitIndexed returns ErrReadOnly for entries not indexed.
func WithReadOnly() Option { return func(v *Views) { v.readOnly = true } }

// channelAdmins lists the admins channel ch's key names (none if ch is not
// joined). It reads the store's cached channel records, not the views.
func (v *Views) channelAdmins(ch feed.DiscoveryID) []feed.AuthorID {
	c, err := v.st.Channel(ch)
	if err != nil {
		return nil
	}
	return c.Admins.IDs()
}

// committedModeration is Moderation of channel ch with its key's admins,
// as committed. The indexer calls it with writeMu held: every writer of
// moderation rows and follow settings holds writeMu, so it sees what the
// indexer's own transaction sees (less that transaction's writes).
func (v *Views) committedModeration(ch feed.DiscoveryID) (*ModState, error) {
	return v.Moderation(ch, v.channelAdmins(ch))
}

// checkWrite runs the write check, if any.
func (v *Views) checkWrite() error {
	if v.readOnly {
		return ErrReadOnly
	}
	if v.writeCheck == nil {
		return nil
	}
	return v.writeCheck()
}

// WithClock sets the local clock used by the ordering rule (tests).
func WithClock(now func() time.Time) Option { return func(v *Views) { v.now = now } }

// Open opens the views of store st on db for the local user self and starts
// the indexer: it catches every view up with the store in the background,
// then follows the store live until Close. Open itself only reads each
// view's state, so it is fast however big the store; a caller that needs the
// views current (a one-shot CLI read) waits with CatchUp or WaitIndexed.
func Open(db *badger.DB, st *feed.Store, self feed.AuthorID, opts ...Option) (*Views, error) {
	v := &Views{
		db: db, st: st, self: self,
		log: slog.New(slog.DiscardHandler), now: time.Now,
		nicks:        newNickCache(),
		waitCh:       make(chan struct{}),
		done:         make(chan struct{}),
		chunkEntries: maxChunkEntries,
		chunkBytes:   maxChunkBytes,
		readers:      min(runtime.GOMAXPROCS(0), 4),
	}
	for _, o := range opts {
		o(v)
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	// commitOnce calls the views' Map in this order, in one transaction,
	// each with the chunk's entries after its own clock. The unread view
	// reads the rows of two views that come before it: moderation's, to
	// judge messages, and messages' (rows and arrival index), to recount a
	// channel whose moderation changed. When unread maps, both hold every
	// entry up to the chunk's last (or beyond, while unread alone
	// rebuilds), never less than unread's batch. Keep messages and
	// moderation before unread.
	v.views = []View{
		&messagesView{},
		&topicsView{},
		&usersView{},
		&moderationView{},
		&unreadView{self: self, blocked: v.blocked, admins: v.channelAdmins, committed: v.committedModeration},
		&membersView{},
		privateView{},
	}
	openMu.Lock()
	defer openMu.Unlock()
	if openDBs[db] {
		return nil, ErrAlreadyOpen
	}
	v.mapped = make([]atomic.Int64, len(v.views))
	v.clocks = make([]uint64, len(v.views))
	v.rebuild = make([]bool, len(v.views))
	if err := v.loadStates(); err != nil {
		return nil, fmt.Errorf("open views: %w", err)
	}
	if v.readOnly {
		for i, vw := range v.views {
			if v.rebuild[i] && v.st.Last() > 0 {
				// Its rows are of another version (or missing): showing
				// them could mislead, and rebuilding them needs writes.
				return nil, fmt.Errorf("open views: %w: view %s must be rebuilt first", ErrReadOnly, vw.Name())
			}
		}
	}
	lo := v.clocks[0]
	for _, c := range v.clocks {
		lo = min(lo, c)
	}
	v.indexed.Store(lo)
	ctx, cancel := context.WithCancel(context.Background())
	v.cancel = cancel
	openDBs[db] = true
	if v.readOnly {
		close(v.done)
		return v, nil
	}
	// Subscribe before the first catch-up, so no write is missed.
	v.sub = st.Subscribe()
	go v.run(ctx)
	return v, nil
}

// Close stops the indexer and waits for it. A chunk being indexed is either
// committed whole or rolled back. Close does not close db.
func (v *Views) Close() error {
	v.closeOnce.Do(func() {
		v.cancel()
		<-v.done
		openMu.Lock()
		delete(openDBs, v.db)
		openMu.Unlock()
	})
	return nil
}

// Indexed is the arrival number every view has processed: each entry the
// store numbered up to it is visible in every view.
func (v *Views) Indexed() uint64 { return v.indexed.Load() }

// WaitIndexed returns once Indexed() >= n, or with ctx's error, or with
// ErrClosed after Close.
func (v *Views) WaitIndexed(ctx context.Context, n uint64) error {
	for {
		v.waitMu.Lock()
		ch := v.waitCh
		v.waitMu.Unlock()
		if v.indexed.Load() >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-v.done:
			if v.indexed.Load() >= n {
				return nil
			}
			if v.readOnly {
				return fmt.Errorf("%w: %d entries are not indexed", ErrReadOnly, n-v.indexed.Load())
			}
			return ErrClosed
		}
	}
}

// CatchUp waits until the views hold every entry the store held when it was
// called: WaitIndexed(ctx, st.Last()).
func (v *Views) CatchUp(ctx context.Context) error {
	return v.WaitIndexed(ctx, v.st.Last())
}

// advance publishes a new Indexed value and wakes waiters and subscribers.
func (v *Views) advance(n uint64) {
	v.indexed.Store(n)
	v.waitMu.Lock()
	close(v.waitCh)
	v.waitCh = make(chan struct{})
	v.waitMu.Unlock()
	v.notify()
}

// Subscription signals changes to the views: after each indexed chunk and
// after MarkRead. Signals coalesce (internal/notify): a busy subscriber
// gets one signal for many chunks, then reads what is new (with Arrived,
// Last or Unread). Nothing queues.
type Subscription = notify.Subscription

// Subscribe returns a subscription to changes of the views.
func (v *Views) Subscribe() *Subscription { return v.changed.Subscribe() }

func (v *Views) notify() { v.changed.Notify() }
