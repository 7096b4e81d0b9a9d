package views

import (
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"unicode"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
	"github.com/mtibben/confusables"
)

// usersView keeps each author's latest nickname per channel (latest in the
// author's own feed order) and, for collision detection, who claims each
// nickname. Nicknames collide when they look alike: case-insensitively,
// ignoring invisible format characters, and by their UTS #39 confusable
// skeleton ("alice" and "аlice" with a Cyrillic a collide).
type usersView struct{}

func (usersView) Name() string    { return "users" }
func (usersView) Version() uint32 { return 3 } // 2: claims indexed by lookalike key; 3: previous nicknames
func (usersView) Prefixes() [][]byte {
	return [][]byte{prefix(tagNick), prefix(tagNickIdx), prefix(tagNickWas)}
}

// maxNick is the longest nickname (in bytes) the views accept; longer or
// empty nick entries from other clients are ignored.
const maxNick = 64

func (usersView) Map(txn *badger.Txn, b *Batch) error {
	for i := range b.Items {
		it := &b.Items[i]
		if it.Kind != feed.KindNick || it.Text == "" || len(it.Text) > maxNick {
			continue
		}
		ch, a := it.Entry.Channel, it.Entry.Author
		old, err := getString(txn, feedKey(tagNick, ch, a))
		if err != nil {
			return err
		}
		if old == it.Text {
			continue
		}
		if old != "" {
			if err := txn.Delete(nickIdxKey(ch, old, a)); err != nil {
				return err
			}
			// The nickname this entry replaces, for "ann is now known
			// as annie".
			if err := txn.Set(nickWasKey(ch, a, it.Entry.Seq), []byte(old)); err != nil {
				return err
			}
		}
		if err := txn.Set(nickIdxKey(ch, it.Text, a), nil); err != nil {
			return err
		}
		if err := txn.Set(feedKey(tagNick, ch, a), []byte(it.Text)); err != nil {
			return err
		}
	}
	return nil
}

func nickWasKey(ch feed.DiscoveryID, a feed.AuthorID, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(feedKey(tagNickWas, ch, a), seq)
}

// previousNick is the nickname that author a's nick entry seq replaced
// ("" if it was their first).
func previousNick(txn *badger.Txn, ch feed.DiscoveryID, a feed.AuthorID, seq uint64) (string, error) {
	return getString(txn, nickWasKey(ch, a, seq))
}

func fold(nick string) string { return strings.ToLower(nick) }

// lookalike is the key under which nicknames that look alike collide: the
// nickname without format characters, lower-cased, mapped to its UTS #39
// confusable skeleton (github.com/mtibben/confusables) and lower-cased
// again (the skeleton maps "0" to "O").
func lookalike(nick string) string {
	return strings.ToLower(confusables.Skeleton(strings.ToLower(StripFormat(nick))))
}

// HasFormat reports whether s holds an invisible format character (Unicode
// category Cf: U+200B zero width space, U+2060 word joiner, U+FEFF, bidi
// controls...). A nickname or channel name with one could pass for another.
func HasFormat(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.Is(unicode.Cf, r) }) >= 0
}

// StripFormat removes format characters (category Cf) from s.
func StripFormat(s string) string {
	if !HasFormat(s) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, s)
}

// nickIdxPrefix is the prefix of the claims of nick in ch.
func nickIdxPrefix(ch feed.DiscoveryID, nick string) []byte {
	f := lookalike(nick)
	if len(f) > 255 {
		f = f[:255]
	}
	k := append(chanKey(tagNickIdx, ch), byte(len(f)))
	return append(k, f...)
}

func nickIdxKey(ch feed.DiscoveryID, nick string, a feed.AuthorID) []byte {
	return append(nickIdxPrefix(ch, nick), a[:]...)
}

func getString(txn *badger.Txn, k []byte) (string, error) {
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var s string
	err = item.Value(func(v []byte) error { s = string(v); return nil })
	return s, err
}

// who is an author as a channel shows them.
type who struct{ nick, display string }

// lookupWho reads an author's nickname and display form.
//
// Display is the nickname; or nickname~shortid when another author in the
// channel claims a nickname that looks the same (see lookalike), or when the
// nickname itself contains "~" (so no one can pose as "alice~1a2b3c4d") or
// an invisible format character (so "alice"+U+200B cannot pass for
// "alice"); or the short id when the author has no nickname. Format
// characters are removed from the display form.
func lookupWho(txn *badger.Txn, ch feed.DiscoveryID, a feed.AuthorID) (who, error) {
	nick, err := getString(txn, feedKey(tagNick, ch, a))
	if err != nil || nick == "" {
		return who{display: a.Short()}, err
	}
	w := who{nick: nick, display: nick}
	if strings.Contains(nick, "~") || HasFormat(nick) {
		w.display = StripFormat(nick) + "~" + a.Short()
		return w, nil
	}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: nickIdxPrefix(ch, nick)})
	defer it.Close()
	claims := 0
	for it.Rewind(); it.Valid() && claims < 2; it.Next() {
		claims++
	}
	if claims > 1 {
		w.display = nick + "~" + a.Short()
	}
	return w, nil
}

// nickCache caches who per (channel, author). The indexer invalidates it
// after a chunk that held nick entries; a reader stores what it read only if
// no invalidation happened since it began (generation), so a read that
// raced with a nick change never caches the old value.
type nickCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[fkey]who
}

const nickCacheMax = 10000

func newNickCache() *nickCache { return &nickCache{m: map[fkey]who{}} }

func (c *nickCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *nickCache) invalidate() {
	c.mu.Lock()
	c.gen++
	c.m = map[fkey]who{}
	c.mu.Unlock()
}

func (c *nickCache) lookup(k fkey) (who, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.m[k]
	return w, ok
}

func (c *nickCache) store(gen uint64, k fkey, w who) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.m) >= nickCacheMax {
		c.m = map[fkey]who{}
	}
	c.m[k] = w
}

// resolver resolves authors for one read transaction, which must have begun
// after gen was taken.
type resolver struct {
	c   *nickCache
	txn *badger.Txn
	gen uint64
	m   map[fkey]who
}

func (c *nickCache) resolver(txn *badger.Txn, gen uint64) *resolver {
	return &resolver{c: c, txn: txn, gen: gen, m: map[fkey]who{}}
}

func (r *resolver) get(ch feed.DiscoveryID, a feed.AuthorID) (who, error) {
	k := fkey{ch, a}
	if w, ok := r.m[k]; ok {
		return w, nil
	}
	w, ok := r.c.lookup(k)
	if !ok {
		var err error
		if w, err = lookupWho(r.txn, ch, a); err != nil {
			return w, err
		}
		r.c.store(r.gen, k, w)
	}
	r.m[k] = w
	return w, nil
}

// Nick returns a's latest nickname in ch, or "" if none (or on a read error,
// which is logged).
func (v *Views) Nick(ch feed.DiscoveryID, a feed.AuthorID) string {
	return v.who(ch, a).nick
}

// Display returns how to show a in ch, as Message.Display.
func (v *Views) Display(ch feed.DiscoveryID, a feed.AuthorID) string {
	return v.who(ch, a).display
}

func (v *Views) who(ch feed.DiscoveryID, a feed.AuthorID) who {
	gen := v.nicks.generation()
	var w who
	err := v.db.View(func(txn *badger.Txn) error {
		var err error
		w, err = v.nicks.resolver(txn, gen).get(ch, a)
		return err
	})
	if err != nil {
		v.log.Error("read nickname", "channel", ch.Short(), "author", a.Short(), "err", err)
		return who{display: a.Short()}
	}
	return w
}
