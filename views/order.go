package views

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
)

// FutureTolerance is how far ahead of the local clock an author's claimed
// time may be and still be believed.
const FutureTolerance = time.Minute

// LateTolerance: a message indexed more than this after the time it is
// placed at is Late (see Message.Late). Ten minutes leaves room for slow
// links and short disconnections; a message claiming to be 30 minutes old
// (backdated) is marked.
const LateTolerance = 10 * time.Minute

// The ordering rule. Authors' clocks disagree, and a claimed time is only a
// claim, so a message's place in a channel (Message.Time) is derived from it
// when the message is indexed:
//
//  1. Start from the time the author claims (Entry.Time).
//  2. If that is more than FutureTolerance ahead of the local clock at
//     indexing time, use the local clock instead: an entry from the future is
//     shown when it arrived, and cannot pin itself below everything later.
//  3. If that is earlier than the Time given to the same author's previous
//     entry in the channel, use that Time: one author's messages never appear
//     out of their own (seq) order, whatever their clock did.
//
// Messages are ordered by (Time, author id, seq). Time is fixed once indexed
// (it is in the row's key); rebuilding a view applies the rule again with the
// clock of the rebuild, which moves only entries that were in the future.
//
// orderer applies the rule. Its per-feed state (the Time of each author's
// newest entry per channel) lives under the owning view's tag, in the view's
// transaction; within a batch it is cached and written once per feed.
type orderer struct {
	tag   byte
	state map[fkey]int64
}

type fkey struct {
	ch feed.DiscoveryID
	a  feed.AuthorID
}

// place returns the ordering time of it, given the batch's local clock.
func (o *orderer) place(txn *badger.Txn, now time.Time, it *Item) (int64, error) {
	k := fkey{it.Entry.Channel, it.Entry.Author}
	prev, ok := o.state[k]
	if !ok {
		var err error
		if prev, ok, err = o.load(txn, k); err != nil {
			return 0, err
		}
	}
	t := it.Entry.Time
	if nowMs := now.UnixMilli(); t > nowMs+FutureTolerance.Milliseconds() {
		t = nowMs
	}
	if ok && t < prev {
		t = prev
	}
	o.state[k] = t
	return t, nil
}

func (o *orderer) load(txn *badger.Txn, k fkey) (int64, bool, error) {
	item, err := txn.Get(feedKey(o.tag, k.ch, k.a))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	var t int64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("corrupt feed order state (%d bytes)", len(v))
		}
		t = int64(binary.BigEndian.Uint64(v))
		return nil
	})
	return t, true, err
}

// begin starts a batch; flush writes the state the batch changed.
func (o *orderer) begin() { o.state = map[fkey]int64{} }

func (o *orderer) flush(txn *badger.Txn) error {
	for k, t := range o.state {
		if err := txn.Set(feedKey(o.tag, k.ch, k.a), binary.BigEndian.AppendUint64(nil, uint64(t))); err != nil {
			return err
		}
	}
	o.state = nil
	return nil
}
