package views

import (
	"bytes"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
)

// topicsView keeps each channel's latest topic: the topic entry that sorts
// last in the channel's order (the ordering rule of the messages view, kept
// with its own per-feed state so either view can be rebuilt alone); and
// each author's latest topic, to fall back on when the latest is by an
// author who is blocked or whom moderation hides (Topic).
type topicsView struct{ ord orderer }

func (*topicsView) Name() string { return "topics" }

// Version 2: each author's latest topic too (v T).
func (*topicsView) Version() uint32 { return 2 }
func (*topicsView) Prefixes() [][]byte {
	return [][]byte{prefix(tagTopic), prefix(tagTopFeed), prefix(tagTopicBy)}
}

// tagTopicBy keys each author's latest topic in a channel.
const tagTopicBy = 'T'

func topicByKey(ch feed.DiscoveryID, a feed.AuthorID) []byte {
	return append(chanKey(tagTopicBy, ch), a[:]...)
}

// setIfLater sets k to row (position 48, text) unless k holds a row whose
// position sorts at or after row's.
func setIfLater(txn *badger.Txn, k, row []byte) error {
	cur, err := getString(txn, k)
	if err != nil {
		return err
	}
	if len(cur) >= posLen && bytes.Compare([]byte(cur[:posLen]), row[:posLen]) >= 0 {
		return nil
	}
	return txn.Set(k, row)
}

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
		row := append(pos{t: t, author: it.Entry.Author, seq: it.Entry.Seq}.append(nil), it.Text...)
		if err := setIfLater(txn, chanKey(tagTopic, it.Entry.Channel), row); err != nil {
			return err
		}
		if err := setIfLater(txn, topicByKey(it.Entry.Channel, it.Entry.Author), row); err != nil {
			return err
		}
	}
	return tv.ord.flush(txn)
}

// Topic returns the latest topic of ch ("" if none was set), leaving out
// topics of authors who are blocked (WithBlocked) or whom moderation hides
// or blocks in ch: then the latest topic of anyone else is the topic.
func (v *Views) Topic(ch feed.DiscoveryID) (string, error) {
	row, err := v.topicRow(ch, chanKey(tagTopic, ch))
	if err != nil || len(row) < posLen {
		return "", err
	}
	hidden, err := v.topicHidden(ch)
	if err != nil {
		return "", err
	}
	if p, err := parsePos(row[:posLen]); err != nil || !hidden(p.author) {
		return string(row[posLen:]), err
	}
	// The latest is hidden: the latest of the others.
	var best []byte
	err = v.db.View(func(txn *badger.Txn) error {
		pre := chanKey(tagTopicBy, ch)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pre, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != len(pre)+32 || hidden(feed.AuthorID(k[len(pre):])) {
				continue
			}
			if err := it.Item().Value(func(r []byte) error {
				if len(r) >= posLen && (best == nil || bytes.Compare(r[:posLen], best[:posLen]) > 0) {
					best = bytes.Clone(r)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || best == nil {
		return "", err
	}
	return string(best[posLen:]), nil
}

// topicRow reads the topic row at k.
func (v *Views) topicRow(ch feed.DiscoveryID, k []byte) ([]byte, error) {
	var row string
	err := v.db.View(func(txn *badger.Txn) error {
		var err error
		row, err = getString(txn, k)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read topic of %s: %w", ch.Short(), err)
	}
	return []byte(row), nil
}

// topicHidden is who does not set ch's topic for the local user.
func (v *Views) topicHidden(ch feed.DiscoveryID) (func(feed.AuthorID) bool, error) {
	st, err := v.cachedModeration(ch)
	if err != nil {
		return nil, err
	}
	var blocked map[feed.AuthorID]bool
	read := false
	return func(a feed.AuthorID) bool {
		if st.HidesAuthor(a) {
			return true
		}
		if !read && v.blocked != nil {
			blocked, read = v.blocked(), true
		}
		return blocked[a]
	}, nil
}
