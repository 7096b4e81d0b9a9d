package views

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/seal"
)

// The private view: the private messages (kind 8, sealed; package seal)
// that the local user can open, sent or received, in every channel.
//
//	v q <D 32> <N 8> -> status 1 (0 opened, 1 undecryptable), from A 32, to A 32,
//	                    seq 8, claimed time 8, text
//
// Every sealed entry is tried with the local box key (WithBoxKey) when it
// is read for indexing, in the indexer's parallel readers: one X25519
// multiplication per sealed entry (package seal's BenchmarkTrialOpen). An
// entry no slot of which opens is someone else's message and leaves no row.
// One whose slot opens but whose body does not, or that says it is from
// someone other than the feed's author, is kept as undecryptable: a reader
// sees that something addressed to them was broken, never its text.
const tagPrivate = 'q'

// Private is one private message as readers show it.
type Private struct {
	Channel feed.DiscoveryID // the channel whose feed carries it ("via")
	From    feed.AuthorID    // its author
	To      feed.AuthorID    // its recipient (the local user if not Own)
	Seq     uint64           // its seq in From's feed of Channel
	Time    time.Time        // the time its author claims
	Arrival uint64
	Text    string // "" if Undecryptable
	// Undecryptable: addressed to the local user (a key slot opened) but
	// the message does not open: it was changed, or forged.
	Undecryptable bool
	Own           bool   // sent by the local user
	FromDisplay   string // From as Channel shows them (Message.Display)
	ToDisplay     string // To as Channel shows them
}

// WithBoxKey gives the views the local user's X25519 key (feed.Identity's
// BoxKey), with which the private view opens private messages. Without it
// the private view holds nothing.
func WithBoxKey(k seal.PrivateKey) Option {
	return func(v *Views) { v.opener = seal.NewOpener(k) }
}

// opened is what trial decryption made of a sealed item.
type opened struct {
	msg    seal.Message
	broken bool // ErrTampered
}

// openSealed tries to open a sealed payload for the local user; nil if it is
// not theirs (or there is no key).
func (v *Views) openSealed(e *feed.Entry, sealed []byte) *opened {
	if v.opener == nil {
		return nil
	}
	m, err := v.opener.Open(sealed, e.Author, v.self)
	switch {
	case err == nil:
		return &opened{msg: m}
	case errors.Is(err, seal.ErrTampered):
		return &opened{msg: seal.Message{From: e.Author, To: v.self}, broken: true}
	}
	return nil
}

type privateView struct{}

func (privateView) Name() string       { return "private" }
func (privateView) Version() uint32    { return 1 }
func (privateView) Prefixes() [][]byte { return [][]byte{prefix(tagPrivate)} }

func (privateView) Map(txn *badger.Txn, b *Batch) error {
	for i := range b.Items {
		it := &b.Items[i]
		if it.Kind != feed.KindSealed || it.private == nil {
			continue
		}
		o := it.private
		row := make([]byte, 0, 1+64+16+len(o.msg.Text))
		if o.broken {
			row = append(row, 1)
		} else {
			row = append(row, 0)
		}
		row = append(append(row, o.msg.From[:]...), o.msg.To[:]...)
		row = putU64(row, it.Entry.Seq, uint64(it.Entry.Time))
		row = append(row, o.msg.Text...)
		if err := txn.Set(privateKey(it.Entry.Channel, it.N), row); err != nil {
			return err
		}
	}
	return nil
}

func privateKey(ch feed.DiscoveryID, n uint64) []byte {
	return binary.BigEndian.AppendUint64(chanKey(tagPrivate, ch), n)
}

const privateRowHead = 1 + 64 + 16

// Private returns up to n private messages the local user can read whose
// arrival number is above after, in arrival order: every channel's,
// except those of authors blocked (WithBlocked) and those of authors
// moderation hides or blocks in the channel the message came through. It
// reads every private row held (they are few: only the local user's own
// conversations).
func (v *Views) Private(after uint64, n int) ([]Private, error) {
	var out []Private
	err := v.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix(tagPrivate), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != 2+32+8 {
				continue
			}
			arr := binary.BigEndian.Uint64(k[34:])
			if arr <= after {
				continue
			}
			var p Private
			copy(p.Channel[:], k[2:34])
			p.Arrival = arr
			if err := it.Item().Value(func(row []byte) error {
				if len(row) < privateRowHead {
					return fmt.Errorf("corrupt private row (%d bytes)", len(row))
				}
				p.Undecryptable = row[0] == 1
				copy(p.From[:], row[1:33])
				copy(p.To[:], row[33:65])
				p.Seq = binary.BigEndian.Uint64(row[65:])
				p.Time = time.UnixMilli(int64(binary.BigEndian.Uint64(row[73:])))
				p.Text = string(row[privateRowHead:])
				return nil
			}); err != nil {
				return err
			}
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Private) int {
		switch {
		case a.Arrival < b.Arrival:
			return -1
		case a.Arrival > b.Arrival:
			return 1
		}
		return 0
	})
	var blocked map[feed.AuthorID]bool
	if v.blocked != nil {
		blocked = v.blocked()
	}
	res := out[:0]
	for _, p := range out {
		if p.From != v.self {
			if blocked[p.From] {
				continue
			}
			mod, err := v.cachedModeration(p.Channel)
			if err != nil {
				return nil, err
			}
			if mod.HidesAuthor(p.From) {
				continue
			}
		}
		p.Own = p.From == v.self
		p.FromDisplay = v.Display(p.Channel, p.From)
		p.ToDisplay = v.Display(p.Channel, p.To)
		res = append(res, p)
		if len(res) == n {
			break
		}
	}
	return res, nil
}

// The read markers of private conversations, local state that no view
// owns (never dropped by a rebuild, as "v R"):
//
//	v Q <A 32> -> arrival 8: the conversation with A was read up to it
const tagPrivRead = 'Q'

// MarkPrivateRead records that the local user read their private
// messages with peer up to arrival number n. A marker never goes back.
func (v *Views) MarkPrivateRead(peer feed.AuthorID, n uint64) error {
	if err := v.checkWrite(); err != nil {
		return fmt.Errorf("mark private read: %w", err)
	}
	k := append([]byte{'v', tagPrivRead}, peer[:]...)
	v.writeMu.Lock()
	err := v.db.Update(func(txn *badger.Txn) error {
		old, err := getU64(txn, k)
		if err != nil || old >= n {
			return err
		}
		return txn.Set(k, putU64(nil, n))
	})
	v.writeMu.Unlock()
	if err != nil {
		return fmt.Errorf("mark private read: %w", err)
	}
	return nil
}

// PrivateUnread counts, per person, the private messages they sent the
// local user that arrived after the read marker of that conversation
// (MarkPrivateRead). Blocked authors are left out, as by Private.
func (v *Views) PrivateUnread() (map[feed.AuthorID]int, error) {
	ps, err := v.Private(0, math.MaxInt)
	if err != nil {
		return nil, err
	}
	read := map[feed.AuthorID]uint64{}
	err = v.db.View(func(txn *badger.Txn) error {
		p := []byte{'v', tagPrivRead}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != 2+32 {
				continue
			}
			var a feed.AuthorID
			copy(a[:], k[2:])
			if err := it.Item().Value(func(val []byte) error {
				if len(val) == 8 {
					read[a] = binary.BigEndian.Uint64(val)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := map[feed.AuthorID]int{}
	for _, p := range ps {
		if !p.Own && p.Arrival > read[p.From] {
			out[p.From]++
		}
	}
	return out, nil
}
