package views

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
)

// MaxSearchScan bounds how many messages one Search looks at, so a search in
// a huge channel answers in bounded time (continue with the returned cursor).
const MaxSearchScan = 200_000

// Search returns up to n messages of ch older than cursor c (the zero
// Cursor: from the newest) whose text contains query, case-insensitively,
// oldest first. It stops after MaxSearchScan messages; next is where to
// continue ("" when the start of the channel was reached).
func (v *Views) Search(ch feed.DiscoveryID, query string, c Cursor, n int) (found []Message, next Cursor, err error) {
	q := []byte(strings.ToLower(query))
	if n <= 0 || len(q) == 0 {
		return nil, "", nil
	}
	pre := chanKey(tagMsg, ch)
	from := append(slices.Clip(pre), bytes.Repeat([]byte{0xff}, posLen+1)...)
	if c != "" {
		p, err := parseCursor(c)
		if err != nil {
			return nil, "", err
		}
		from = msgKey(ch, p)
	}
	gen := v.nicks.generation()
	err = v.db.View(func(txn *badger.Txn) error {
		pg := v.newPage(txn, ch, gen, n)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pre, Reverse: true, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		it.Seek(from)
		if c != "" && it.Valid() && bytes.Equal(it.Item().Key(), from) {
			it.Next()
		}
		scanned := 0
		for ; it.Valid() && len(pg.out) < n; it.Next() {
			if scanned++; scanned > MaxSearchScan {
				ps, err := parsePos(it.Item().KeyCopy(nil)[34:])
				if err != nil {
					return err
				}
				next = ps.cursor()
				break
			}
			item := it.Item()
			if err := item.Value(func(row []byte) error {
				text := rowText(row)
				if text == nil {
					return nil
				}
				if edits, err := pg.hasEdits(); err != nil {
					return err
				} else if k := rowKind(row); edits && (k == feed.KindText || k == feed.KindEmote) {
					// Search what is shown: the latest edit; never a
					// deleted message's text.
					ps, err := parsePos(item.Key()[34:])
					if err != nil {
						return err
					}
					switch kind, edited, err := pg.edit(ps.author, ps.seq); {
					case err != nil:
						return err
					case kind == feed.KindDelete:
						return nil
					case kind == feed.KindEdit:
						text = []byte(edited)
					}
				}
				if !containsFold(text, q) {
					return nil
				}
				return pg.add(item.Key(), row)
			}); err != nil {
				return err
			}
		}
		if len(pg.out) == n && it.Valid() {
			next = pg.out[n-1].Cursor
		}
		found = pg.out
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("search: %w", err)
	}
	slices.Reverse(found)
	return found, next, nil
}

// containsFold reports whether text contains the lower-case query, ignoring
// case (ASCII fast path; other scripts by lower-casing the text).
func containsFold(text, lowerQuery []byte) bool {
	for _, c := range text {
		if c >= 0x80 {
			return bytes.Contains(bytes.ToLower(text), lowerQuery)
		}
	}
	if len(lowerQuery) > len(text) {
		return false
	}
	for i := 0; i+len(lowerQuery) <= len(text); i++ {
		j := 0
		for ; j < len(lowerQuery); j++ {
			c := text[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lowerQuery[j] {
				break
			}
		}
		if j == len(lowerQuery) {
			return true
		}
	}
	return false
}
