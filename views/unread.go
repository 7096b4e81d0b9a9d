package views

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"sync/atomic"
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
// they already added to the counts (reading the channel does, and so does a
// recount, below).
//
// Messages moderation hides (ModState.Hides: the message hidden, or its
// author hidden or blocked, for the local user) are not counted either. A
// message is judged when it is indexed, against the moderation committed
// before its chunk. The view keeps no row per message: when moderation of
// a channel changes (the chunk holds moderation entries of the channel, or
// a follow setting changed: Views.SetFollow, ClearFollow), the channel's
// counts are recounted from scratch from what the messages view stores
// (recountUnread): so a hide takes a message off the counts and its
// mentions, an unhide (an unblock, a moderator removed) puts it back, and a
// hide in the same chunk counts whichever came first. A recount judges
// mentions with the local user's nickname as it is then, and leaves out
// the authors blocked then.
//
// While the indexer catches up (more than a chunk is left after this one:
// Batch.behind), a recount waits: the chunk's messages are counted against
// the moderation as the chunk leaves it, the channel is marked (v c), and
// it is recounted once, by the first chunk that is not behind. Recounting
// the whole backlog at every chunk made a catch-up of a moderated channel
// quadratic (50k messages with a hide in every 250: 4.6 s instead of 0.4).
type unreadView struct {
	self    feed.AuthorID
	blocked func() map[feed.AuthorID]bool
	// admins lists the admins a channel's key names (for moderation).
	admins func(feed.DiscoveryID) []feed.AuthorID
	// committed reads a channel's moderation from the committed rows, in
	// a transaction of its own (nil: read it in Map's).
	committed func(feed.DiscoveryID) (*ModState, error)
	// settled is set once a chunk that is not behind found no channel
	// waiting for a recount; marking one clears it. It only spares the
	// look for marks: a mark is always in the transaction that counts.
	settled atomic.Bool
}

func (*unreadView) Name() string { return "unread" }

// Version 2: moderation-hidden messages are not counted.
func (*unreadView) Version() uint32 { return 2 }
func (*unreadView) Prefixes() [][]byte {
	return [][]byte{prefix(tagUnread), prefix(tagSelf), prefix(tagRecount)}
}

// Map counts the chunk's messages. It reads what two views mapped before it
// in the same transaction (views.go lists them in that order): the
// moderation view's rows, for the moderation of the chunk's channels, and,
// for a recount, the messages view's rows and arrival index, which then
// hold every message up to the chunk's last.
func (u *unreadView) Map(txn *badger.Txn, b *Batch) error {
	type chanState struct {
		marker      uint64
		me          string // own nick, folded
		meChanged   bool
		msgs, ments uint64
		mod         *ModState // read when first needed
	}
	chans := map[feed.DiscoveryID]*chanState{}
	var blocked map[feed.AuthorID]bool // read once per chunk, when needed
	blockedRead := false
	readBlocked := func() map[feed.AuthorID]bool {
		if !blockedRead && u.blocked != nil {
			blocked, blockedRead = u.blocked(), true
		}
		return blocked
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
		if it.Entry.Author == u.self {
			if it.Kind == feed.KindNick && it.Text != "" && len(it.Text) <= maxNick {
				cs.me, cs.meChanged = fold(it.Text), true
			}
			continue
		}
		if (it.Kind != feed.KindText && it.Kind != feed.KindEmote) || it.N <= cs.marker {
			continue
		}
		if b.modChans[ch] && !b.behind {
			continue // recounted below
		}
		if readBlocked()[it.Entry.Author] {
			continue
		}
		if cs.mod == nil {
			// No moderation entry of ch in the chunk: what is
			// committed is what txn holds. Reading it elsewhere spares
			// txn's iterators, which sort all the chunk's pending
			// writes (a quarter of the commit time when catching up).
			var err error
			if b.modChans[ch] {
				// Behind, with moderation of ch in the chunk: as the
				// chunk leaves it (the recount once caught up corrects
				// what it changes of the messages counted before).
				cs.mod, err = readModeration(txn, u.self, ch, u.channelAdmins(ch))
			} else if u.committed != nil {
				cs.mod, err = u.committed(ch)
			} else {
				cs.mod, err = readModeration(txn, u.self, ch, u.channelAdmins(ch))
			}
			if err != nil {
				return err
			}
		}
		if _, hidden := cs.mod.Hides(it.Entry.Author, it.Entry.Seq); hidden {
			continue
		}
		cs.msgs++
		if mentions(it.Text, cs.me) || it.Ref != nil && it.Ref.author == u.self {
			cs.ments++
		}
	}
	// The chunk's last message: the messages view's rows may go further
	// while this view alone rebuilds, and those are counted when this view
	// indexes them.
	var upTo uint64
	if len(b.Items) > 0 {
		upTo = b.Items[len(b.Items)-1].N
	}
	// The channels to recount now: those whose moderation changed in the
	// chunk, and those marked while catching up, unless still behind.
	recount := map[feed.DiscoveryID]bool{}
	if !b.behind {
		for ch := range b.modChans {
			recount[ch] = true
		}
		if !u.settled.Load() {
			marked, err := recountMarks(txn)
			if err != nil {
				return err
			}
			for _, ch := range marked {
				recount[ch] = true
				if err := txn.Delete(chanKey(tagRecount, ch)); err != nil {
					return err
				}
			}
			if len(marked) == 0 {
				u.settled.Store(true)
			}
		}
	}
	for ch, cs := range chans {
		if cs.meChanged {
			if err := txn.Set(chanKey(tagSelf, ch), []byte(cs.me)); err != nil {
				return err
			}
		}
		if recount[ch] {
			continue // below
		}
		if b.modChans[ch] {
			// Behind: recounted once caught up.
			if err := txn.Set(chanKey(tagRecount, ch), nil); err != nil {
				return err
			}
			u.settled.Store(false)
		}
		if cs.msgs == 0 {
			continue
		}
		n, err := readUnread(txn, ch)
		if err != nil {
			return err
		}
		n.Messages += int(cs.msgs)
		n.Mentions += int(cs.ments)
		if err := putUnread(txn, ch, n); err != nil {
			return err
		}
	}
	for ch := range recount {
		// Once per channel per chunk, from what txn holds (this chunk's
		// rows and moderation included).
		var m marker
		var me string
		if cs := chans[ch]; cs != nil {
			m.arrival, me = cs.marker, cs.me
		} else {
			var err error
			if m, err = readMarker(txn, ch); err != nil {
				return err
			}
			if me, err = getString(txn, chanKey(tagSelf, ch)); err != nil {
				return err
			}
		}
		mod, err := readModeration(txn, u.self, ch, u.channelAdmins(ch))
		if err != nil {
			return err
		}
		n, err := recountUnread(txn, u.self, ch, m.arrival, upTo, me, mod, readBlocked())
		if err != nil {
			return err
		}
		if err := putUnread(txn, ch, n); err != nil {
			return err
		}
	}
	return nil
}

// recountMarks lists the channels marked for a recount (v c).
func recountMarks(txn *badger.Txn) ([]feed.DiscoveryID, error) {
	pre := prefix(tagRecount)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: pre})
	defer it.Close()
	var out []feed.DiscoveryID
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) != len(pre)+len(feed.DiscoveryID{}) {
			return nil, fmt.Errorf("unread view: malformed recount mark %x", k)
		}
		out = append(out, feed.DiscoveryID(k[len(pre):]))
	}
	return out, nil
}

func (u *unreadView) channelAdmins(ch feed.DiscoveryID) []feed.AuthorID {
	if u.admins == nil {
		return nil
	}
	return u.admins(ch)
}

func putUnread(txn *badger.Txn, ch feed.DiscoveryID, n Unread) error {
	return txn.Set(chanKey(tagUnread, ch), putU64(nil, uint64(n.Messages), uint64(n.Mentions)))
}

// recountUnread counts ch's unread messages and mentions from scratch from
// the messages view's rows txn sees: the arrival index after the read
// marker, up to arrival upTo, leaving out the local user's own messages,
// those of blocked authors and those mod hides. A mention is nick (folded)
// in the text as a word, or a reply to the local user.
//
// Its cost is the channel's unread backlog (an index row and a message row
// read per unread message), paid only when the channel's moderation
// changes, never for messages as they are indexed: the views keep no row
// per unread message, which would slow down indexing a big catch-up, where
// everything is unread.
func recountUnread(txn *badger.Txn, self feed.AuthorID, ch feed.DiscoveryID, marker, upTo uint64,
	nick string, mod *ModState, blocked map[feed.AuthorID]bool) (Unread, error) {
	var n Unread
	if upTo <= marker {
		return n, nil
	}
	count := func(a feed.AuthorID, seq uint64, r []byte) {
		if a == self || blocked[a] || len(r) < rowHead {
			return
		}
		if k := rowKind(r); k != feed.KindText && k != feed.KindEmote {
			return
		}
		if _, hidden := mod.Hides(a, seq); hidden {
			return
		}
		n.Messages++
		toSelf := r[rowHead-1] == 40 && len(r) >= rowHead+40 && feed.AuthorID(r[rowHead:rowHead+32]) == self
		if toSelf || mentions(string(rowText(r)), nick) {
			n.Mentions++
		}
	}
	if marker == 0 {
		// Never read (a channel just joined, catching up): everything is
		// unread, and the rows read in key order cost a fraction of a
		// lookup each.
		pre := chanKey(tagMsg, ch)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pre, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != len(pre)+posLen {
				continue
			}
			p, err := parsePos(k[len(pre):])
			if err != nil {
				return n, err
			}
			err = it.Item().Value(func(r []byte) error {
				if len(r) >= rowHead && binary.BigEndian.Uint64(r[9:17]) <= upTo {
					count(p.author, p.seq, r)
				}
				return nil
			})
			if err != nil {
				return n, err
			}
		}
		return n, nil
	}
	pre := chanKey(tagArrival, ch)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: pre, PrefetchValues: true})
	defer it.Close()
	for it.Seek(arrivalKey(ch, marker+1)); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) != len(pre)+8 {
			continue
		}
		if binary.BigEndian.Uint64(k[len(pre):]) > upTo {
			break
		}
		ref, err := it.Item().ValueCopy(nil)
		if err != nil {
			return n, err
		}
		p, err := parsePos(ref)
		if err != nil {
			return n, err
		}
		if p.author == self || blocked[p.author] {
			continue
		}
		if _, hidden := mod.Hides(p.author, p.seq); hidden {
			continue
		}
		row, err := txn.Get(msgKey(ch, p))
		if err != nil {
			return n, fmt.Errorf("arrival index points at a missing row: %w", err)
		}
		if err := row.Value(func(r []byte) error { count(p.author, p.seq, r); return nil }); err != nil {
			return n, err
		}
	}
	return n, nil
}

// recountUnreadFollow recounts ch's unread counts in txn, where a follow
// setting changed: up to what the unread view has indexed (its clock; the
// caller holds writeMu, so the clock is the committed one).
func (v *Views) recountUnreadFollow(txn *badger.Txn, ch feed.DiscoveryID) error {
	m, err := readMarker(txn, ch)
	if err != nil {
		return err
	}
	nick, err := getString(txn, chanKey(tagSelf, ch))
	if err != nil {
		return err
	}
	mod, err := readModeration(txn, v.self, ch, v.channelAdmins(ch))
	if err != nil {
		return err
	}
	var blocked map[feed.AuthorID]bool
	if v.blocked != nil {
		blocked = v.blocked()
	}
	n, err := recountUnread(txn, v.self, ch, m.arrival, v.clocks[v.unreadIndex()], nick, mod, blocked)
	if err != nil {
		return err
	}
	return putUnread(txn, ch, n)
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
	v.writeMu.Lock()
	err := v.db.Update(func(txn *badger.Txn) error {
		pre := chanKey(tagMsg, ch)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pre, Reverse: true})
		it.Seek(append(pre, bytes.Repeat([]byte{0xff}, posLen+1)...))
		val := putU64(make([]byte, 0, 8+posLen), v.clocks[v.unreadIndex()])
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
	return nil
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
