package views

import (
	"bytes"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
)

// topicsView keeps each channel's latest topic: the topic entry that sorts
// last in the channel's order (the ordering rule of the messages view, kept
// with its own per-feed state so either view can be rebuilt alone).
type topicsView struct{ ord orderer }

func (*topicsView) Name() string       { return "topics" }
func (*topicsView) Version() uint32    { return 1 }
func (*topicsView) Prefixes() [][]byte { return [][]byte{prefix(tagTopic), prefix(tagTopFeed)} }

// Row: position 48, topic text.
func (tv *topicsView) Map(txn *badger.Txn, b *Batch) error {
	tv.ord = orderer{tag: tagTopFeed}
	tv.ord.begin()
	for i := range b.Items {
		it := &b.Items[i]
		t, err := tv.ord.place(txn, b.Now, it)
		if err != nil || it.Kind != feed.KindTopic {
			if err != nil {
				return err
			}
			continue
		}
		p := pos{t: t, author: it.Entry.Author, seq: it.Entry.Seq}.append(nil)
		k := chanKey(tagTopic, it.Entry.Channel)
		cur, err := getString(txn, k)
		if err != nil {
			return err
		}
		if len(cur) >= posLen && bytes.Compare([]byte(cur[:posLen]), p) >= 0 {
			continue // a later topic is already set
		}
		if err := txn.Set(k, append(p, it.Text...)); err != nil {
			return err
		}
	}
	return tv.ord.flush(txn)
}

// Topic returns the latest topic of ch ("" if none was set).
func (v *Views) Topic(ch feed.DiscoveryID) (string, error) {
	var row string
	err := v.db.View(func(txn *badger.Txn) error {
		var err error
		row, err = getString(txn, chanKey(tagTopic, ch))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read topic: %w", err)
	}
	if len(row) < posLen {
		return "", nil
	}
	return row[posLen:], nil
}
