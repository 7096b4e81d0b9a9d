package views

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
)

// Member is one author of a channel, as `kchat members` and /names show
// them: what the local store holds of their feed.
type Member struct {
	Author   feed.AuthorID
	Nick     string // latest nickname ("" if none)
	Display  string // as Message.Display (nick, nick~shortid, or the short id)
	Messages int    // text and emote entries indexed
	Bytes    int64  // summed encodings of the author's indexed entries (every kind)
	// LastArrival is the local wall time at which the author's newest entry
	// was indexed (when the views were rebuilt: the time of the rebuild).
	LastArrival time.Time
}

// membersView keeps per (channel, author) statistics:
//
//	v p <D 32> <A 32> -> messages 8, bytes 8, last arrival (unix ms, local clock) 8
type membersView struct{}

const tagMember = 'p'

func (membersView) Name() string       { return "members" }
func (membersView) Version() uint32    { return 1 }
func (membersView) Prefixes() [][]byte { return [][]byte{prefix(tagMember)} }

type memberRow struct {
	messages, bytes uint64
	last            int64
}

func (r memberRow) encode() []byte {
	return putU64(make([]byte, 0, 24), r.messages, r.bytes, uint64(r.last))
}

func decodeMemberRow(v []byte) (memberRow, error) {
	if len(v) != 24 {
		return memberRow{}, fmt.Errorf("corrupt member row (%d bytes)", len(v))
	}
	return memberRow{
		messages: binary.BigEndian.Uint64(v),
		bytes:    binary.BigEndian.Uint64(v[8:]),
		last:     int64(binary.BigEndian.Uint64(v[16:])),
	}, nil
}

func (membersView) Map(txn *badger.Txn, b *Batch) error {
	add := map[fkey]memberRow{}
	var order []fkey
	for i := range b.Items {
		it := &b.Items[i]
		k := fkey{ch: it.Entry.Channel, a: it.Entry.Author}
		r, ok := add[k]
		if !ok {
			order = append(order, k)
		}
		if it.Kind == feed.KindText || it.Kind == feed.KindEmote {
			r.messages++
		}
		r.bytes += uint64(len(it.Entry.Encode()))
		add[k] = r
	}
	now := b.Now.UnixMilli()
	for _, k := range order {
		key := feedKey(tagMember, k.ch, k.a)
		var old memberRow
		item, err := txn.Get(key)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			if err := item.Value(func(v []byte) error {
				var err error
				old, err = decodeMemberRow(v)
				return err
			}); err != nil {
				return err
			}
		}
		r := add[k]
		old.messages += r.messages
		old.bytes += r.bytes
		old.last = max(old.last, now)
		if err := txn.Set(key, old.encode()); err != nil {
			return err
		}
	}
	return nil
}

// Members lists the authors of channel ch of whom at least one entry was
// indexed, ordered by how they are shown (case-insensitively), then by id.
func (v *Views) Members(ch feed.DiscoveryID) ([]Member, error) {
	var out []Member
	gen := v.nicks.generation()
	p := chanKey(tagMember, ch)
	err := v.db.View(func(txn *badger.Txn) error {
		res := v.nicks.resolver(txn, gen)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var m Member
			copy(m.Author[:], it.Item().Key()[len(p):])
			var r memberRow
			if err := it.Item().Value(func(b []byte) error {
				var err error
				r, err = decodeMemberRow(b)
				return err
			}); err != nil {
				return err
			}
			w, err := res.get(ch, m.Author)
			if err != nil {
				return err
			}
			m.Nick, m.Display = w.nick, w.display
			m.Messages, m.Bytes = int(r.messages), int64(r.bytes)
			m.LastArrival = time.UnixMilli(r.last)
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read members: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := strings.ToLower(out[i].Display), strings.ToLower(out[j].Display)
		if a != b {
			return a < b
		}
		return bytes.Compare(out[i].Author[:], out[j].Author[:]) < 0
	})
	return out, nil
}

// DropAuthor removes author a's rows from every view of channel ch (after
// the feed store purged a's feed): messages, edits, the topic if a set it,
// nickname, member statistics. It first waits until the views have indexed
// everything the store holds, so that no chunk read before the purge can
// bring rows back. Unread counts are left as they are (they are reset when
// the channel is read).
func (v *Views) DropAuthor(ctx context.Context, ch feed.DiscoveryID, a feed.AuthorID) error {
	if err := v.CatchUp(ctx); err != nil {
		return fmt.Errorf("drop author %s: %w", a.Short(), err)
	}
	if err := v.checkWrite(); err != nil {
		return fmt.Errorf("drop author %s: %w", a.Short(), err)
	}
	// Whole per-author key ranges.
	for _, p := range [][]byte{
		feedKey(tagEdit, ch, a), feedKey(tagMsgFeed, ch, a), feedKey(tagTopFeed, ch, a),
		feedKey(tagNick, ch, a), feedKey(tagNickWas, ch, a), feedKey(tagMember, ch, a),
	} {
		if err := v.dropPrefix(ctx, p); err != nil {
			return fmt.Errorf("drop author %s: %w", a.Short(), err)
		}
	}
	// Rows of the channel that name the author inside them: counted, so the
	// channel's counters can be lowered.
	chLen := 2 + 32
	rows, err := v.dropMatching(ctx, chanKey(tagMsg, ch), func(k, _ []byte) bool {
		return len(k) == chLen+posLen && bytes.Equal(k[chLen+8:chLen+40], a[:])
	})
	if err == nil {
		_, err = v.dropMatching(ctx, chanKey(tagArrival, ch), func(_, val []byte) bool {
			return len(val) == posLen && bytes.Equal(val[8:40], a[:])
		})
	}
	var edits int
	if err == nil {
		edits, err = v.dropMatching(ctx, chanKey(tagEditArr, ch), func(_, val []byte) bool {
			return len(val) >= 32 && bytes.Equal(val[:32], a[:])
		})
	}
	if err == nil {
		_, err = v.dropMatching(ctx, chanKey(tagNickIdx, ch), func(k, _ []byte) bool {
			return len(k) > 32 && bytes.Equal(k[len(k)-32:], a[:])
		})
	}
	if err == nil {
		_, err = v.dropMatching(ctx, chanKey(tagPrivate, ch), func(_, val []byte) bool {
			return len(val) >= 33 && bytes.Equal(val[1:33], a[:])
		})
	}
	if err == nil {
		_, err = v.dropMatching(ctx, chanKey(tagTopic, ch), func(k, val []byte) bool {
			return len(k) == chLen && len(val) >= 40 && bytes.Equal(val[8:40], a[:])
		})
	}
	if err != nil {
		return fmt.Errorf("drop author %s: %w", a.Short(), err)
	}
	v.writeMu.Lock()
	err = v.db.Update(func(txn *badger.Txn) error {
		for _, c := range []struct {
			tag byte
			n   int
		}{{tagCount, rows}, {tagEdits, edits}} {
			if c.n == 0 {
				continue
			}
			k := chanKey(c.tag, ch)
			old, err := getU64(txn, k)
			if err != nil {
				return err
			}
			if err := txn.Set(k, putU64(nil, old-min(old, uint64(c.n)))); err != nil {
				return err
			}
		}
		return nil
	})
	v.writeMu.Unlock()
	if err != nil {
		return fmt.Errorf("drop author %s: %w", a.Short(), err)
	}
	v.nicks.invalidate()
	v.notify()
	return nil
}

// dropMatching deletes the keys under p for which match(key, value) holds,
// in transactions of at most 1000 deletions, and returns how many it
// deleted.
func (v *Views) dropMatching(ctx context.Context, p []byte, match func(k, val []byte) bool) (int, error) {
	total := 0
	from := p
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var keys [][]byte
		var next []byte
		err := v.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true, PrefetchSize: 100})
			defer it.Close()
			for it.Seek(from); it.Valid(); it.Next() {
				if len(keys) >= 1000 {
					next = it.Item().KeyCopy(nil)
					return nil
				}
				k := it.Item().Key()
				if err := it.Item().Value(func(val []byte) error {
					if match(k, val) {
						keys = append(keys, it.Item().KeyCopy(nil))
					}
					return nil
				}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		if len(keys) > 0 {
			if err := v.checkWrite(); err != nil {
				return total, err
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
				return total, err
			}
			total += len(keys)
		}
		if next == nil {
			return total, nil
		}
		from = next
	}
}

// Errors of FindMember.
var (
	ErrNoSuchAuthor    = errors.New("no such author")
	ErrAmbiguousAuthor = errors.New("ambiguous author")
)

// MinIDPrefix is the shortest author id prefix (hex digits) FindMember
// accepts.
const MinIDPrefix = 8

// NickSuffixMatch reports whether who is "NICK~HEX" naming author a whose
// nickname is nick: HEX may be shorter than the suffix shown ("ben~0c96"
// for "ben~0c96d2e1"), as long as it starts a's id.
func NickSuffixMatch(who, nick string, a feed.AuthorID) bool {
	n, suf, ok := strings.Cut(who, "~")
	if !ok || nick == "" || n != nick || suf == "" {
		return false
	}
	suf = strings.ToLower(suf)
	return strings.Trim(suf, "0123456789abcdef") == "" && strings.HasPrefix(a.String(), suf)
}

// FindMember finds the author who means: a 64-hex author id (whether or not
// among ms), a nickname as displayed (Display: nick, or nick~shortid where
// shown), a nickname (Nick) that only one of ms has, or a prefix of at least
// MinIDPrefix hex digits of one author's id, or a nickname with a shorter
// ~suffix (NickSuffixMatch). None is ErrNoSuchAuthor, more
// than one ErrAmbiguousAuthor (the message lists them).
func FindMember(ms []Member, who string) (feed.AuthorID, error) {
	who = strings.TrimPrefix(strings.TrimSpace(who), "@")
	if a, err := feed.ParseAuthorID(who); err == nil {
		return a, nil
	}
	var found []Member
	for _, m := range ms {
		if m.Display == who {
			return m.Author, nil
		}
	}
	lw := strings.ToLower(who)
	hexPrefix := len(who) >= MinIDPrefix && strings.Trim(lw, "0123456789abcdef") == ""
	for _, m := range ms {
		if (m.Nick != "" && m.Nick == who) || (hexPrefix && strings.HasPrefix(m.Author.String(), lw)) ||
			NickSuffixMatch(who, m.Nick, m.Author) {
			found = append(found, m)
		}
	}
	switch len(found) {
	case 0:
		if len(who) < MinIDPrefix && strings.Trim(lw, "0123456789abcdef") == "" {
			return feed.AuthorID{}, fmt.Errorf("%w: %q (give a nickname, or at least %d hex digits of an id)", ErrNoSuchAuthor, who, MinIDPrefix)
		}
		return feed.AuthorID{}, fmt.Errorf("%w: %q", ErrNoSuchAuthor, who)
	case 1:
		return found[0].Author, nil
	}
	var names []string
	for _, m := range found {
		names = append(names, m.Nick+"~"+m.Author.Short())
	}
	sort.Strings(names)
	return feed.AuthorID{}, fmt.Errorf("%w: %q could be %s: give the ~suffix or more of the id", ErrAmbiguousAuthor, who, strings.Join(names, ", "))
}

// DropChannel removes every row of channel ch from every view, and its read
// marker (after the feed store purged the channel). Like DropAuthor it first
// waits until the views have indexed everything the store holds.
func (v *Views) DropChannel(ctx context.Context, ch feed.DiscoveryID) error {
	if err := v.CatchUp(ctx); err != nil {
		return fmt.Errorf("drop channel %s: %w", ch.Short(), err)
	}
	if err := v.checkWrite(); err != nil {
		return fmt.Errorf("drop channel %s: %w", ch.Short(), err)
	}
	prefixes := [][]byte{prefix(tagMarker)}
	for _, vw := range v.views {
		prefixes = append(prefixes, vw.Prefixes()...)
	}
	for _, p := range prefixes {
		if err := v.dropPrefix(ctx, append(append([]byte(nil), p...), ch[:]...)); err != nil {
			return fmt.Errorf("drop channel %s: %w", ch.Short(), err)
		}
	}
	v.nicks.invalidate()
	v.notify()
	return nil
}
