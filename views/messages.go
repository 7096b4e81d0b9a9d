package views

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
)

// messagesView is the chronological view: every text, emote, topic and nick
// entry of a channel as a row keyed by its place in the channel's order (see
// orderer for the rule), plus an index of the rows in arrival order and a
// count per channel. A row holds what a page shows except the author's
// nickname, which is resolved when read, so a nick change shows everywhere.
//
// Edits and deletes are not rows: each is kept as the latest change of its
// target (author, seq), applied when a page is read, with an index of the
// changes in arrival order for live readers (Edits). Only the author of a
// message can change it, and a delete is final.
type messagesView struct{ ord orderer }

func (*messagesView) Name() string    { return "messages" }
func (*messagesView) Version() uint32 { return 2 }
func (*messagesView) Prefixes() [][]byte {
	return [][]byte{prefix(tagMsg), prefix(tagArrival), prefix(tagCount), prefix(tagMsgFeed),
		prefix(tagEdit), prefix(tagEditArr), prefix(tagEdits)}
}

func (m *messagesView) Map(txn *badger.Txn, b *Batch) error {
	m.ord = orderer{tag: tagMsgFeed}
	m.ord.begin()
	counts := map[feed.DiscoveryID]uint64{}
	edits := map[feed.DiscoveryID]uint64{}
	judged, err := getU64(txn, []byte{'v', tagLateHW})
	if err != nil {
		return err
	}
	hw := judged
	for i := range b.Items {
		it := &b.Items[i]
		e := &it.Entry
		t, err := m.ord.place(txn, b.Now, it)
		if err != nil {
			return err
		}
		if it.Kind == feed.KindMod {
			continue // the moderation view's (moderation.go)
		}
		if it.Kind == feed.KindSealed {
			continue // private (private.go): never a row of the channel
		}
		if it.Kind == feed.KindEdit || it.Kind == feed.KindDelete {
			ok, err := mapEdit(txn, it)
			if err != nil {
				return err
			}
			if ok {
				edits[e.Channel]++
			}
			continue
		}
		p := pos{t: t, author: e.Author, seq: e.Seq}
		late := judgeLate(b.Now, it, t, judged)
		hw = max(hw, it.N)
		row := encodeRow(it)
		if late {
			row[0] |= rowLate
		}
		if err := txn.Set(msgKey(e.Channel, p), row); err != nil {
			return err
		}
		if err := txn.Set(arrivalKey(e.Channel, it.N), p.append(make([]byte, 0, posLen))); err != nil {
			return err
		}
		counts[e.Channel]++
	}
	for _, c := range []struct {
		tag byte
		n   map[feed.DiscoveryID]uint64
	}{{tagCount, counts}, {tagEdits, edits}} {
		for ch, n := range c.n {
			k := chanKey(c.tag, ch)
			old, err := getU64(txn, k)
			if err != nil {
				return err
			}
			if err := txn.Set(k, putU64(nil, old+n)); err != nil {
				return err
			}
		}
	}
	if hw > judged {
		if err := txn.Set([]byte{'v', tagLateHW}, putU64(nil, hw)); err != nil {
			return err
		}
	}
	return m.ord.flush(txn)
}

// rowLate marks a late row in its kind byte.
const rowLate = 0x80

// rowKind is the kind of a row.
func rowKind(row []byte) feed.Kind { return feed.Kind(row[0] &^ rowLate) }

// judgeLate reports whether it, placed at t, is late: indexed more than
// LateTolerance after t. Lateness depends on when a message arrived, which
// no feed records, so it is judged only when an entry is first indexed
// (arrival numbers above judged, v H): a rebuild, whose clock is later,
// would find everything late, so it marks nothing. The marks of old
// messages are lost with a rebuild; keeping them would cost a key per late
// message, and a catch-up after a day offline is all late messages.
func judgeLate(now time.Time, it *Item, t int64, judged uint64) bool {
	return it.N > judged && now.UnixMilli()-t > LateTolerance.Milliseconds()
}

// mapEdit records an edit or delete as the latest change of its target. It
// is ignored (false) unless it changes one of its own author's earlier
// messages, and once the target is deleted.
func mapEdit(txn *badger.Txn, it *Item) (bool, error) {
	e := &it.Entry
	if it.Ref == nil || it.Ref.author != e.Author || it.Ref.seq >= e.Seq {
		return false, nil
	}
	k := editKey(e.Channel, e.Author, it.Ref.seq)
	old, err := txn.Get(k)
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
	case err != nil:
		return false, err
	default:
		deleted := false
		if err := old.Value(func(v []byte) error { deleted = len(v) > 0 && feed.Kind(v[0]) == feed.KindDelete; return nil }); err != nil {
			return false, err
		}
		if deleted {
			return false, nil
		}
	}
	v := make([]byte, 0, 9+len(it.Text))
	v = append(v, byte(it.Kind))
	v = append(putU64(v, it.N), it.Text...)
	if err := txn.Set(k, v); err != nil {
		return false, err
	}
	ref := binary.BigEndian.AppendUint64(append(make([]byte, 0, 40), e.Author[:]...), it.Ref.seq)
	return true, txn.Set(editArrivalKey(e.Channel, it.N), ref)
}

// Row: kind 1 (high bit rowLate), claimed time 8, arrival 8, ref length 1 (0 or 40), ref
// (author 32, seq 8), text.
const rowHead = 18

func encodeRow(it *Item) []byte {
	b := make([]byte, 0, rowHead+40+len(it.Text))
	b = append(b, byte(it.Kind))
	b = putU64(b, uint64(it.Entry.Time), it.N)
	if it.Ref != nil && (it.Kind == feed.KindText || it.Kind == feed.KindEmote) {
		b = append(b, 40)
		b = binary.BigEndian.AppendUint64(append(b, it.Ref.author[:]...), it.Ref.seq)
	} else {
		b = append(b, 0)
	}
	return append(b, it.Text...)
}

// rowText is the text of a row (nil if the row is malformed).
func rowText(row []byte) []byte {
	if len(row) < rowHead || len(row) < rowHead+int(row[rowHead-1]) {
		return nil
	}
	return row[rowHead+int(row[rowHead-1]):]
}

func getU64(txn *badger.Txn, k []byte) (uint64, error) {
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var n uint64
	err = item.Value(func(v []byte) error {
		if len(v) < 8 {
			return fmt.Errorf("corrupt counter (%d bytes)", len(v))
		}
		n = binary.BigEndian.Uint64(v)
		return nil
	})
	return n, err
}

// page reads messages of ch into a Message slice, resolving nicknames once
// per author.
type page struct {
	v    *Views
	txn  *badger.Txn
	ch   feed.DiscoveryID
	r    *resolver
	me   string // the local user's nick, case-folded
	meOK bool
	out  []Message

	edits, editsOK bool // the channel has edits (read once)
}

func (v *Views) newPage(txn *badger.Txn, ch feed.DiscoveryID, gen uint64, n int) *page {
	return &page{v: v, txn: txn, ch: ch, r: v.nicks.resolver(txn, gen), out: make([]Message, 0, min(n, 64))}
}

func (p *page) add(key, row []byte) error {
	ps, err := parsePos(key[34:])
	if err != nil {
		return err
	}
	if len(row) < rowHead || len(row) < rowHead+int(row[rowHead-1]) || (row[rowHead-1] != 0 && row[rowHead-1] != 40) {
		return fmt.Errorf("corrupt message row (%d bytes)", len(row))
	}
	if !p.meOK {
		me, err := p.r.get(p.ch, p.v.self)
		if err != nil {
			return err
		}
		p.me, p.meOK = fold(me.nick), true
	}
	who, err := p.r.get(p.ch, ps.author)
	if err != nil {
		return err
	}
	m := Message{
		Channel: p.ch,
		Author:  ps.author,
		Seq:     ps.seq,
		Kind:    rowKind(row),
		Late:    row[0]&rowLate != 0,
		Text:    string(rowText(row)),
		Time:    time.UnixMilli(ps.t),
		Claimed: time.UnixMilli(int64(binary.BigEndian.Uint64(row[1:]))),
		Arrival: binary.BigEndian.Uint64(row[9:]),
		Nick:    who.nick,
		Display: who.display,
		Own:     ps.author == p.v.self,
		Cursor:  ps.cursor(),
	}
	if m.Kind == feed.KindText || m.Kind == feed.KindEmote {
		if err := p.applyEdit(&m); err != nil {
			return err
		}
		if row[rowHead-1] == 40 {
			var r msgRef
			copy(r.author[:], row[rowHead:])
			r.seq = binary.BigEndian.Uint64(row[rowHead+32:])
			if m.ReplyTo, err = p.reply(r); err != nil {
				return err
			}
		}
	}
	// A reply to one of the user's messages is a mention too (IRC clients
	// highlight "nick: ..." answers; a reply is the explicit form).
	if m.Kind == feed.KindNick {
		if m.PrevNick, err = previousNick(p.txn, p.ch, m.Author, m.Seq); err != nil {
			return err
		}
	}
	m.Mention = !m.Own && !m.Deleted && (m.Kind == feed.KindText || m.Kind == feed.KindEmote) &&
		(mentions(m.Text, p.me) || m.ReplyTo != nil && m.ReplyTo.Author == p.v.self)
	p.out = append(p.out, m)
	return nil
}

// hasEdits reports whether the page's channel has any edit or delete, read
// once per page: most channels have none, and their pages then cost no
// lookups.
func (p *page) hasEdits() (bool, error) {
	if !p.editsOK {
		n, err := getU64(p.txn, chanKey(tagEdits, p.ch))
		if err != nil {
			return false, err
		}
		p.edits, p.editsOK = n > 0, true
	}
	return p.edits, nil
}

// edit returns the latest change of a's message seq: its kind (0 if none)
// and text.
func (p *page) edit(a feed.AuthorID, seq uint64) (feed.Kind, string, error) {
	if ok, err := p.hasEdits(); err != nil || !ok {
		return 0, "", err
	}
	item, err := p.txn.Get(editKey(p.ch, a, seq))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", err
	}
	var kind feed.Kind
	var text string
	err = item.Value(func(v []byte) error {
		if len(v) < 9 {
			return fmt.Errorf("corrupt edit (%d bytes)", len(v))
		}
		kind, text = feed.Kind(v[0]), string(v[9:])
		return nil
	})
	return kind, text, err
}

// applyEdit shows m as its latest edit, or as deleted.
func (p *page) applyEdit(m *Message) error {
	kind, text, err := p.edit(m.Author, m.Seq)
	switch {
	case err != nil:
		return err
	case kind == feed.KindEdit:
		m.Text, m.Edited = text, true
	case kind == feed.KindDelete:
		m.Text, m.Deleted = "", true
	}
	return nil
}

// reply describes the message r that a message replies to.
func (p *page) reply(r msgRef) (*Reply, error) {
	who, err := p.r.get(p.ch, r.author)
	if err != nil {
		return nil, err
	}
	out := &Reply{Author: r.author, Seq: r.seq, Display: who.display}
	e, err := p.v.st.Get(p.ch, r.author, r.seq)
	if errors.Is(err, feed.ErrNotFound) {
		out.Missing = true
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	if pl, err := feed.UnmarshalPayload(e.Payload); err == nil && (pl.Kind == feed.KindText || pl.Kind == feed.KindEmote) {
		out.Text = pl.Text
	} else {
		out.Missing = true
		return out, nil
	}
	kind, text, err := p.edit(r.author, r.seq)
	switch {
	case err != nil:
		return nil, err
	case kind == feed.KindEdit:
		out.Text = text
	case kind == feed.KindDelete:
		out.Text, out.Deleted = "", true
	}
	return out, nil
}

// Edits returns up to n edits and deletes in ch whose arrival number is
// greater than after, in arrival order: what a live reader must change in
// messages it already shows. Only accepted changes are listed (an author's
// own message, not yet deleted).
func (v *Views) Edits(ch feed.DiscoveryID, after uint64, n int) ([]Edit, error) {
	if n <= 0 {
		return nil, nil
	}
	var out []Edit
	err := v.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: chanKey(tagEditArr, ch), PrefetchValues: true, PrefetchSize: min(n, 100)})
		defer it.Close()
		for it.Seek(editArrivalKey(ch, after+1)); it.Valid() && len(out) < n; it.Next() {
			k := it.Item().Key()
			ed := Edit{Arrival: binary.BigEndian.Uint64(k[len(k)-8:])}
			if err := it.Item().Value(func(ref []byte) error {
				if len(ref) != 40 {
					return fmt.Errorf("corrupt edit index (%d bytes)", len(ref))
				}
				copy(ed.Author[:], ref)
				ed.Seq = binary.BigEndian.Uint64(ref[32:])
				return nil
			}); err != nil {
				return err
			}
			// The latest change of the target (a later one may have
			// superseded this one: readers get the current state).
			item, err := txn.Get(editKey(ch, ed.Author, ed.Seq))
			if err != nil {
				return fmt.Errorf("edit index points at a missing edit: %w", err)
			}
			if err := item.Value(func(e []byte) error {
				if len(e) < 9 {
					return fmt.Errorf("corrupt edit (%d bytes)", len(e))
				}
				ed.Deleted = feed.Kind(e[0]) == feed.KindDelete
				if !ed.Deleted {
					ed.Text = string(e[9:])
				}
				return nil
			}); err != nil {
				return err
			}
			out = append(out, ed)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read edits: %w", err)
	}
	return out, nil
}

// Last returns the newest n messages of ch, oldest first.
func (v *Views) Last(ch feed.DiscoveryID, n int) ([]Message, error) {
	return v.Before(ch, "", n)
}

// Before returns the n messages of ch just older than cursor c (the zero
// Cursor: the newest n), oldest first. The cost is proportional to n.
func (v *Views) Before(ch feed.DiscoveryID, c Cursor, n int) ([]Message, error) {
	return v.scan(ch, c, n, true)
}

// After returns the n messages of ch just newer than cursor c (the zero
// Cursor: the oldest n), oldest first.
func (v *Views) After(ch feed.DiscoveryID, c Cursor, n int) ([]Message, error) {
	return v.scan(ch, c, n, false)
}

func (v *Views) scan(ch feed.DiscoveryID, c Cursor, n int, reverse bool) ([]Message, error) {
	if n <= 0 {
		return nil, nil
	}
	pre := chanKey(tagMsg, ch)
	var from []byte
	if c == "" {
		from = pre
		if reverse {
			// Past every key of the channel: pre + 0xff... longer than a position.
			from = append(slices.Clip(pre), bytes.Repeat([]byte{0xff}, posLen+1)...)
		}
	} else {
		p, err := parseCursor(c)
		if err != nil {
			return nil, err
		}
		from = msgKey(ch, p)
	}
	gen := v.nicks.generation()
	var out []Message
	err := v.db.View(func(txn *badger.Txn) error {
		pg := v.newPage(txn, ch, gen, n)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pre, Reverse: reverse, PrefetchValues: true, PrefetchSize: min(n, 100)})
		defer it.Close()
		it.Seek(from)
		if c != "" && it.Valid() && string(it.Item().Key()) == string(from) {
			it.Next() // the cursor's own message is not part of the page
		}
		for ; it.Valid() && len(pg.out) < n; it.Next() {
			item := it.Item()
			if err := item.Value(func(row []byte) error { return pg.add(item.Key(), row) }); err != nil {
				return err
			}
		}
		out = pg.out
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	if reverse {
		slices.Reverse(out)
	}
	return out, nil
}

// Arrived returns up to n messages of ch whose arrival number is greater
// than after, in arrival order: what is new, wherever it sorts. Pass the last
// Message.Arrival seen (or Indexed() when starting to follow).
func (v *Views) Arrived(ch feed.DiscoveryID, after uint64, n int) ([]Message, error) {
	if n <= 0 {
		return nil, nil
	}
	pre := chanKey(tagArrival, ch)
	gen := v.nicks.generation()
	var out []Message
	err := v.db.View(func(txn *badger.Txn) error {
		pg := v.newPage(txn, ch, gen, n)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pre, PrefetchValues: true, PrefetchSize: min(n, 100)})
		defer it.Close()
		for it.Seek(arrivalKey(ch, after+1)); it.Valid() && len(pg.out) < n; it.Next() {
			ref, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			k := append(slices.Clip(chanKey(tagMsg, ch)), ref...)
			row, err := txn.Get(k)
			if err != nil {
				return fmt.Errorf("arrival index points at a missing row: %w", err)
			}
			if err := row.Value(func(r []byte) error { return pg.add(k, r) }); err != nil {
				return err
			}
		}
		out = pg.out
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read arrived messages: %w", err)
	}
	return out, nil
}

// Count returns the number of messages in ch.
func (v *Views) Count(ch feed.DiscoveryID) (int, error) {
	var n uint64
	err := v.db.View(func(txn *badger.Txn) error {
		var err error
		n, err = getU64(txn, chanKey(tagCount, ch))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("count messages: %w", err)
	}
	return int(n), nil
}
