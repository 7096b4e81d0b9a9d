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
type messagesView struct{ ord orderer }

func (*messagesView) Name() string    { return "messages" }
func (*messagesView) Version() uint32 { return 1 }
func (*messagesView) Prefixes() [][]byte {
	return [][]byte{prefix(tagMsg), prefix(tagArrival), prefix(tagCount), prefix(tagMsgFeed)}
}

func (m *messagesView) Map(txn *badger.Txn, b *Batch) error {
	m.ord = orderer{tag: tagMsgFeed}
	m.ord.begin()
	counts := map[feed.DiscoveryID]uint64{}
	for i := range b.Items {
		it := &b.Items[i]
		e := &it.Entry
		t, err := m.ord.place(txn, b.Now, it)
		if err != nil {
			return err
		}
		p := pos{t: t, author: e.Author, seq: e.Seq}
		if err := txn.Set(msgKey(e.Channel, p), encodeRow(it)); err != nil {
			return err
		}
		if err := txn.Set(arrivalKey(e.Channel, it.N), p.append(make([]byte, 0, posLen))); err != nil {
			return err
		}
		counts[e.Channel]++
	}
	for ch, n := range counts {
		k := chanKey(tagCount, ch)
		old, err := getU64(txn, k)
		if err != nil {
			return err
		}
		if err := txn.Set(k, putU64(nil, old+n)); err != nil {
			return err
		}
	}
	return m.ord.flush(txn)
}

// Row: kind 1, claimed time 8, arrival 8, text.
func encodeRow(it *Item) []byte {
	b := make([]byte, 0, 17+len(it.Text))
	b = append(b, byte(it.Kind))
	b = putU64(b, uint64(it.Entry.Time), it.N)
	return append(b, it.Text...)
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
}

func (v *Views) newPage(txn *badger.Txn, ch feed.DiscoveryID, gen uint64, n int) *page {
	return &page{v: v, txn: txn, ch: ch, r: v.nicks.resolver(txn, gen), out: make([]Message, 0, n)}
}

func (p *page) add(key, row []byte) error {
	ps, err := parsePos(key[34:])
	if err != nil {
		return err
	}
	if len(row) < 17 {
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
		Kind:    feed.Kind(row[0]),
		Text:    string(row[17:]),
		Time:    time.UnixMilli(ps.t),
		Claimed: time.UnixMilli(int64(binary.BigEndian.Uint64(row[1:]))),
		Arrival: binary.BigEndian.Uint64(row[9:]),
		Nick:    who.nick,
		Display: who.display,
		Own:     ps.author == p.v.self,
		Cursor:  ps.cursor(),
	}
	m.Mention = !m.Own && (m.Kind == feed.KindText || m.Kind == feed.KindEmote) && mentions(m.Text, p.me)
	p.out = append(p.out, m)
	return nil
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
