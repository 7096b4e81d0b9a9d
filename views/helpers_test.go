package views

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/storage"
)

// fakeClock is a settable local clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// t0 is the tests' "now".
var t0 = time.Date(2030, 1, 2, 12, 0, 0, 0, time.UTC)

// env is a data dir with a store that joined one channel, the local user
// "me", and open views.
type env struct {
	t     testing.TB
	dir   string
	db    *badger.DB
	st    *feed.Store
	ch    feed.Channel
	d     feed.DiscoveryID
	me    *author
	clock *fakeClock
	v     *Views
	opts  []Option
}

func newEnv(t testing.TB, opts ...Option) *env {
	t.Helper()
	return newEnvAdmins(t, nil, opts...)
}

// newEnvAdmins is newEnv with a channel whose key names admins.
func newEnvAdmins(t testing.TB, admins []*author, opts ...Option) *env {
	t.Helper()
	k, err := feed.NewChannelKey()
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]feed.AuthorID, len(admins))
	for i, a := range admins {
		ids[i] = a.ID()
	}
	ch := feed.Channel{Key: k, Name: "general", Admins: feed.NewAdminSet(ids)}
	e := &env{t: t, dir: t.TempDir(), ch: ch, clock: &fakeClock{t: t0}}
	e.d = e.ch.ID()
	e.me = newAuthor(t)
	e.opts = opts
	e.openStore()
	if err := e.st.Join(e.ch); err != nil {
		t.Fatal(err)
	}
	e.openViews()
	t.Cleanup(e.close)
	return e
}

func (e *env) openStore() {
	e.t.Helper()
	db, err := storage.Open(e.dir, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	st, err := feed.Open(db)
	if err != nil {
		e.t.Fatal(err)
	}
	e.db, e.st = db, st
}

func (e *env) openViews(opts ...Option) {
	e.t.Helper()
	all := append([]Option{WithClock(e.clock.Now)}, e.opts...)
	v, err := Open(e.db, e.st, e.me.id.ID(), append(all, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.v = v
}

func (e *env) close() {
	if e.v != nil {
		e.v.Close()
		e.v = nil
	}
	if e.db != nil {
		e.db.Close()
		e.db = nil
	}
}

// reopen closes views and DB and opens both again.
func (e *env) reopen(opts ...Option) {
	e.t.Helper()
	e.close()
	e.openStore()
	e.openViews(opts...)
}

// wait blocks until the views hold everything the store holds.
func (e *env) wait() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.v.CatchUp(ctx); err != nil {
		e.t.Fatalf("catch up to %d (at %d): %v", e.st.Last(), e.v.Indexed(), err)
	}
}

// author writes a feed by building signed entries locally (fast: no fsync)
// and applying them to a store, as replication does.
type author struct {
	t    testing.TB
	id   *feed.Identity
	head map[feed.DiscoveryID]feed.Head
}

func newAuthor(t testing.TB) *author {
	id, err := feed.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return &author{t: t, id: id, head: map[feed.DiscoveryID]feed.Head{}}
}

func (a *author) ID() feed.AuthorID { return a.id.ID() }

// entry signs the next entry of a's feed in d with raw payload bytes.
func (a *author) entryRaw(d feed.DiscoveryID, at time.Time, payload []byte) feed.Entry {
	h := a.head[d]
	e, err := feed.NewEntry(a.id, d, h, at.UnixMilli(), payload)
	if err != nil {
		a.t.Fatal(err)
	}
	a.head[d] = feed.Head{Author: a.ID(), Len: e.Seq + 1, Hash: e.Hash()}
	return e
}

func (a *author) entries(d feed.DiscoveryID, at time.Time, ps ...feed.Payload) []feed.Entry {
	out := make([]feed.Entry, len(ps))
	for i, p := range ps {
		b, err := p.Marshal()
		if err != nil {
			a.t.Fatal(err)
		}
		out[i] = a.entryRaw(d, at, b)
	}
	return out
}

// say stores payloads by a, claimed at time at, in the env's channel.
func (e *env) say(a *author, at time.Time, ps ...feed.Payload) []feed.Entry {
	e.t.Helper()
	es := a.entries(e.d, at, ps...)
	e.apply(a, es)
	return es
}

func (e *env) apply(a *author, es []feed.Entry) {
	e.t.Helper()
	for len(es) > 0 {
		n := min(len(es), 1000)
		if _, err := e.st.Apply(context.Background(), e.d, a.ID(), es[:n]); err != nil {
			e.t.Fatal(err)
		}
		es = es[n:]
	}
}

func text(s string) feed.Payload  { return feed.Payload{Kind: feed.KindText, Text: s} }
func emote(s string) feed.Payload { return feed.Payload{Kind: feed.KindEmote, Text: s} }
func nick(s string) feed.Payload  { return feed.Payload{Kind: feed.KindNick, Text: s} }
func topic(s string) feed.Payload { return feed.Payload{Kind: feed.KindTopic, Text: s} }

func texts(prefix string, n int) []feed.Payload {
	out := make([]feed.Payload, n)
	for i := range out {
		out[i] = text(fmt.Sprintf("%s %d", prefix, i))
	}
	return out
}

func textsOf(ms []Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Text
	}
	return out
}

// countKeys counts the keys under p (raw check of the view's rows).
func countKeys(t testing.TB, db *badger.DB, p []byte) int {
	t.Helper()
	n := 0
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func storedStates(t testing.TB, db *badger.DB) map[string]viewState {
	t.Helper()
	out := map[string]viewState{}
	err := db.View(func(txn *badger.Txn) error {
		for _, name := range []string{"messages", "topics", "users", "unread", "members", "private"} {
			s, ok, err := readState(txn, name)
			if err != nil {
				return err
			}
			if ok {
				out[name] = s
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mapped returns how many entries each view's Map was given.
func (v *Views) mappedCounts() map[string]int64 {
	out := map[string]int64{}
	for i, vw := range v.views {
		out[vw.Name()] = v.mapped[i].Load()
	}
	return out
}

func withChunk(entries int) Option { return func(v *Views) { v.chunkEntries = entries } }

func withBeforeCommit(f func(last uint64) error) Option {
	return func(v *Views) { v.beforeCommit = f }
}
