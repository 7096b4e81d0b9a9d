package views

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
)

// unreadView counts, per channel, the messages (text and emote, not the
// local user's own) that arrived after the channel's read marker, and how
// many of them mention the local user. A mention is the local user's latest
// nickname in the channel, as known when the message was indexed, appearing
// in the text as a whole word, case-insensitively; or a reply to one of the
// local user's messages.
//
// The read marker is local state (not derived from feeds, never dropped by a
// rebuild): the arrival number up to which the user has read, and the cursor
// of the newest message then, for the "last read" line. Counting by arrival
// rather than by position means a message that arrives late but sorts into
// the past (its author was offline) is still counted as unread.
//
// Messages of blocked authors (WithBlocked) are not counted: the UI hides
// them, so they must not raise counts or mentions. The block list is read
// when a message is indexed; blocking someone later does not take back what
// they already added to the counts (reading the channel does).
//
// Messages moderation hides (ModState.Hides: the message hidden, or its
// author hidden or blocked, for the local user) are not counted either, and
// moderation catches up with what it counted before: every message after
// the marker that is not from a blocked author has a row (v U) recording
// whether it is a mention and whether moderation hid it when last looked
// at. A message is judged when it is indexed, against the moderation rows
// of its whole chunk (the moderation view maps first, views.go), so a hide
// in the same chunk counts whichever came first. When a chunk holds
// moderation entries of a channel, its rows are judged again against the
// new state: a message hidden since is taken off the counts (never below
// zero), and one no longer hidden (an unhide, an unblock, a moderator
// removed) is put back. A change of a follow setting (local, not an entry)
// judges the channel's rows again too (Views.SetFollow, ClearFollow).
type unreadView struct {
	self    feed.AuthorID
	blocked func() map[feed.AuthorID]bool
	// admins lists the admins a channel's key names (for moderation).
	admins func(feed.DiscoveryID) []feed.AuthorID
	// committed reads a channel's moderation from the committed rows, in
	// a transaction of its own (nil: read it in Map's).
	committed func(feed.DiscoveryID) (*ModState, error)
}

// Flags of a "v U" row.
const (
	unreadMention = 1 << iota // the message mentions the local user
	unreadHidden              // moderation hid it: it is not in the counts
)

// unreadMsgKey is the "v U" row of author a's message seq in ch:
// arrival 8, flags 1.
func unreadMsgKey(ch feed.DiscoveryID, a feed.AuthorID, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(feedKey(tagUnreadMsg, ch, a), seq)
}

func (*unreadView) Name() string    { return "unread" }
func (*unreadView) Version() uint32 { return 2 }
func (*unreadView) Prefixes() [][]byte {
	return [][]byte{prefix(tagUnread), prefix(tagSelf), prefix(tagUnreadMsg)}
}

func (u *unreadView) Map(txn *badger.Txn, b *Batch) error {
	type chanState struct {
		marker      uint64
		me          string // own nick, folded
		meChanged   bool
		msgs, ments int64
		mod         *ModState // read when first needed
		modChanged  bool      // the batch holds moderation entries
	}
	chans := map[feed.DiscoveryID]*chanState{}
	var blocked map[feed.AuthorID]bool // read once per chunk, when needed
	blockedRead := false
	modState := func(ch feed.DiscoveryID, cs *chanState) (*ModState, error) {
		if cs.mod != nil {
			return cs.mod, nil
		}
		var s *ModState
		var err error
		if u.committed != nil && !b.modChans[ch] {
			// No moderation entry of ch in the chunk: what is
			// committed is what txn holds. Reading it elsewhere spares
			// txn's iterators, which sort all the chunk's pending
			// writes (a quarter of the commit time when catching up).
			s, err = u.committed(ch)
		} else {
			var admins []feed.AuthorID
			if u.admins != nil {
				admins = u.admins(ch)
			}
			s, err = readModeration(txn, u.self, ch, admins)
		}
		if err != nil {
			return nil, err
		}
		cs.mod = s
		return cs.mod, nil
	}
	for i := range b.Items {
		it := &b.Items[i]
		ch := it.Entry.Channel
		cs := chans[ch]
		if cs == nil {
			m, err := readMarker(txn, ch)
			if err != nil {
				return err
			}
			me, err := getString(txn, chanKey(tagSelf, ch))
			if err != nil {
				return err
			}
			cs = &chanState{marker: m.arrival, me: me}
			chans[ch] = cs
		}
		if it.Kind == feed.KindMod {
			cs.modChanged = cs.modChanged || it.Mod != nil
			continue
		}
		if it.Entry.Author == u.self {
			if it.Kind == feed.KindNick && it.Text != "" && len(it.Text) <= maxNick {
				cs.me, cs.meChanged = fold(it.Text), true
			}
			continue
		}
		if (it.Kind != feed.KindText && it.Kind != feed.KindEmote) || it.N <= cs.marker {
			continue
		}
		if !blockedRead && u.blocked != nil {
			blocked, blockedRead = u.blocked(), true
		}
		if blocked[it.Entry.Author] {
			continue
		}
		mod, err := modState(ch, cs)
		if err != nil {
			return err
		}
		var flags byte
		if mentions(it.Text, cs.me) || it.Ref != nil && it.Ref.author == u.self {
			flags |= unreadMention
		}
		if _, hidden := mod.Hides(it.Entry.Author, it.Entry.Seq); hidden {
			flags |= unreadHidden
		} else {
			cs.msgs++
			if flags&unreadMention != 0 {
				cs.ments++
			}
		}
		if err := txn.Set(unreadMsgKey(ch, it.Entry.Author, it.Entry.Seq), append(putU64(nil, it.N), flags)); err != nil {
			return err
		}
	}
	for ch, cs := range chans {
		if cs.meChanged {
			if err := txn.Set(chanKey(tagSelf, ch), []byte(cs.me)); err != nil {
				return err
			}
		}
		if cs.modChanged {
			mod, err := modState(ch, cs)
			if err != nil {
				return err
			}
			dm, dn, err := rejudge(txn, ch, cs.marker, mod)
			if err != nil {
				return err
			}
			cs.msgs += dm
			cs.ments += dn
		}
		if err := addUnread(txn, ch, cs.msgs, cs.ments); err != nil {
			return err
		}
	}
	return nil
}

// addUnread adds msgs and ments (either may be negative) to ch's counts.
func addUnread(txn *badger.Txn, ch feed.DiscoveryID, msgs, ments int64) error {
	if msgs == 0 && ments == 0 {
		return nil
	}
	n, err := readUnread(txn, ch)
	if err != nil {
		return err
	}
	// Never below zero: the rows and the counts agree, but a count must
	// not wrap whatever a bug or an old row makes of them.
	n.Messages = int(max(int64(n.Messages)+msgs, 0))
	n.Mentions = int(max(int64(n.Mentions)+ments, 0))
	return txn.Set(chanKey(tagUnread, ch), putU64(nil, uint64(n.Messages), uint64(n.Mentions)))
}

// rejudgeUnread judges ch's unread rows again against its moderation as
// txn sees it (a follow setting changed) and updates the counts.
func (v *Views) rejudgeUnread(txn *badger.Txn, ch feed.DiscoveryID) error {
	m, err := readMarker(txn, ch)
	if err != nil {
		return err
	}
	mod, err := readModeration(txn, v.self, ch, v.channelAdmins(ch))
	if err != nil {
		return err
	}
	msgs, ments, err := rejudge(txn, ch, m.arrival, mod)
	if err != nil {
		return err
	}
	return addUnread(txn, ch, msgs, ments)
}

// rejudge judges again, against mod, every "v U" row of ch after the read
// marker, records what changed and returns the change to the counts: a
// message moderation now hides leaves them, one it no longer hides comes
// back. Rows at or before the marker (left by a MarkRead whose clean-up did
// not finish) are not counted and are skipped.
func rejudge(txn *badger.Txn, ch feed.DiscoveryID, marker uint64, mod *ModState) (msgs, ments int64, err error) {
	type change struct {
		key []byte
		val []byte
	}
	var changes []change
	p := chanKey(tagUnreadMsg, ch)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true})
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) != len(p)+32+8 {
			continue
		}
		var a feed.AuthorID
		copy(a[:], k[len(p):])
		seq := binary.BigEndian.Uint64(k[len(p)+32:])
		err = it.Item().Value(func(v []byte) error {
			if len(v) != 9 || binary.BigEndian.Uint64(v) <= marker {
				return nil
			}
			_, hidden := mod.Hides(a, seq)
			was := v[8]&unreadHidden != 0
			if hidden == was {
				return nil
			}
			d := int64(1)
			if hidden {
				d = -1
			}
			msgs += d
			if v[8]&unreadMention != 0 {
				ments += d
			}
			nv := slices.Clone(v)
			nv[8] ^= unreadHidden
			changes = append(changes, change{it.Item().KeyCopy(nil), nv})
			return nil
		})
		if err != nil {
			break
		}
	}
	it.Close()
	if err != nil {
		return 0, 0, err
	}
	for _, c := range changes {
		if err := txn.Set(c.key, c.val); err != nil {
			return 0, 0, err
		}
	}
	return msgs, ments, nil
}

// mentions reports whether text contains nick (already folded) as a whole
// word, case-insensitively: the characters either side of it are not
// letters, digits or '_'.
func mentions(text, nick string) bool {
	if nick == "" {
		return false
	}
	t := fold(text)
	for off := 0; ; {
		i := strings.Index(t[off:], nick)
		if i < 0 {
			return false
		}
		i += off
		before, _ := utf8.DecodeLastRuneInString(t[:i])
		after, _ := utf8.DecodeRuneInString(t[i+len(nick):])
		if !isWord(before) && !isWord(after) {
			return true
		}
		_, w := utf8.DecodeRuneInString(t[i:])
		off = i + w
	}
}

func isWord(r rune) bool {
	return r != utf8.RuneError && (r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r))
}

type marker struct {
	arrival uint64
	pos     []byte // empty or posLen bytes
}

func readMarker(txn *badger.Txn, ch feed.DiscoveryID) (marker, error) {
	v, err := getString(txn, chanKey(tagMarker, ch))
	if err != nil || v == "" {
		return marker{}, err
	}
	if len(v) != 8 && len(v) != 8+posLen {
		return marker{}, fmt.Errorf("corrupt read marker (%d bytes)", len(v))
	}
	return marker{arrival: binary.BigEndian.Uint64([]byte(v)), pos: []byte(v[8:])}, nil
}

func readUnread(txn *badger.Txn, ch feed.DiscoveryID) (Unread, error) {
	v, err := getString(txn, chanKey(tagUnread, ch))
	if err != nil || v == "" {
		return Unread{}, err
	}
	if len(v) != 16 {
		return Unread{}, fmt.Errorf("corrupt unread counts (%d bytes)", len(v))
	}
	b := []byte(v)
	return Unread{Messages: int(binary.BigEndian.Uint64(b)), Mentions: int(binary.BigEndian.Uint64(b[8:]))}, nil
}

// Unread returns ch's counts of messages after the read marker.
func (v *Views) Unread(ch feed.DiscoveryID) (Unread, error) {
	var n Unread
	err := v.db.View(func(txn *badger.Txn) error {
		var err error
		n, err = readUnread(txn, ch)
		return err
	})
	if err != nil {
		return Unread{}, fmt.Errorf("read unread counts: %w", err)
	}
	return n, nil
}

// MarkRead moves ch's read marker to the newest message: everything indexed
// so far counts as read, and the counts restart from zero.
func (v *Views) MarkRead(ch feed.DiscoveryID) error {
	if err := v.checkWrite(); err != nil {
		return fmt.Errorf("mark read: %w", err)
	}
	var marker uint64
	v.writeMu.Lock()
	err := v.db.Update(func(txn *badger.Txn) error {
		pre := chanKey(tagMsg, ch)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pre, Reverse: true})
		it.Seek(append(pre, bytes.Repeat([]byte{0xff}, posLen+1)...))
		marker = v.clocks[v.unreadIndex()]
		val := putU64(make([]byte, 0, 8+posLen), marker)
		if it.Valid() {
			val = append(val, it.Item().Key()[len(pre):]...)
		}
		it.Close()
		if err := txn.Set(chanKey(tagMarker, ch), val); err != nil {
			return err
		}
		return txn.Set(chanKey(tagUnread, ch), putU64(nil, 0, 0))
	})
	v.writeMu.Unlock()
	if err != nil {
		return fmt.Errorf("mark read: %w", err)
	}
	v.notify()
	if err := v.dropReadRows(ch, marker); err != nil {
		// Harmless: rows at or before the marker are not counted, and
		// the next MarkRead drops them.
		v.log.Warn("mark read: dropping the read messages' rows", "err", err)
	}
	return nil
}

// dropReadRows deletes ch's "v U" rows at or before arrival marker, in
// transactions of up to 1000 deletions (a channel read after a long time
// may have many). Rows the indexer adds meanwhile are after the marker and
// stay.
func (v *Views) dropReadRows(ch feed.DiscoveryID, marker uint64) error {
	p := chanKey(tagUnreadMsg, ch)
	from := p
	for {
		if err := v.checkWrite(); err != nil {
			return err
		}
		v.writeMu.Lock()
		done := true
		err := v.db.Update(func(txn *badger.Txn) error {
			var keys [][]byte
			it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true})
			for it.Seek(from); it.Valid(); it.Next() {
				if len(keys) == 1000 {
					from, done = it.Item().KeyCopy(nil), false
					break
				}
				var n uint64
				if err := it.Item().Value(func(val []byte) error {
					if len(val) == 9 {
						n = binary.BigEndian.Uint64(val)
					}
					return nil
				}); err != nil {
					it.Close()
					return err
				}
				if n <= marker {
					keys = append(keys, it.Item().KeyCopy(nil))
				}
			}
			it.Close()
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		v.writeMu.Unlock()
		if err != nil || done {
			return err
		}
	}
}

func (v *Views) unreadIndex() int {
	for i, vw := range v.views {
		if _, ok := vw.(*unreadView); ok {
			return i
		}
	}
	panic("views: no unread view")
}

// ReadMarker returns the cursor of the newest message when ch was last
// marked read ("" if never, or if the channel was empty then). Messages after
// it in Before/After order are below the "last read" line.
func (v *Views) ReadMarker(ch feed.DiscoveryID) (Cursor, error) {
	var m marker
	err := v.db.View(func(txn *badger.Txn) error {
		var err error
		m, err = readMarker(txn, ch)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read marker: %w", err)
	}
	if len(m.pos) == 0 {
		return "", nil
	}
	p, err := parsePos(m.pos)
	if err != nil {
		return "", err
	}
	return p.cursor(), nil
}

// ReadArrival returns the arrival number up to which ch was marked read (0
// if never): Arrived(ch, ReadArrival(ch), n) lists what is unread, wherever
// it sorts, including late messages placed above the "last read" line.
func (v *Views) ReadArrival(ch feed.DiscoveryID) (uint64, error) {
	var m marker
	err := v.db.View(func(txn *badger.Txn) error {
		var err error
		m, err = readMarker(txn, ch)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("read marker: %w", err)
	}
	return m.arrival, nil
}
