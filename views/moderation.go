package views

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
)

// The moderation view. Moderation is subjective: a moderation entry
// (feed.KindMod) is an author's claim; what it does for the local user
// depends on whom the local user follows. The view therefore stores every
// author's current moderation state (the map), and Moderation computes the
// effect for a set of followed authors when asked (the api). The rule is in
// docs/protocol.md §3.1.
//
// Keys (see keys.go):
//
//	v M <D 32> <X 32> <class 1> <target 32 | target 32 + seq 8>
//	    -> X's latest entry of that class about that target:
//	       seq 8, action 1, arrival 8, claimed time 8, reason
//	v O <D 32> <N 8> -> X 32, seq 8, action 1, target length 1 (32 or 40), target, reason
//	    (every moderation entry in arrival order: notices)
//
//	local state (never dropped by a rebuild):
//	v F <D 32> <A 32> -> 1 (follow A's moderation) or 0 (do not follow A)
const (
	tagMod       = 'M'
	tagModLog    = 'O'
	tagModFollow = 'F'
)

// Classes of moderation rows: the latest entry per (moderator, class,
// target) is the moderator's current state.
const (
	classRole    = 'r' // add-mod, remove-mod, add-admin, remove-admin
	classAuthor  = 'h' // hide, unhide of an author
	classBlock   = 'b' // block, unblock
	classMessage = 'm' // hide, unhide of a message
)

// Roles, as Moderation reports them.
const (
	RoleAdmin = "admin"
	RoleMod   = "mod"
)

// modItem is a decoded, valid moderation entry.
type modItem struct {
	action feed.ModAction
	reason string
	target feed.AuthorID
	msg    bool   // the target is a message (target, seq)
	seq    uint64 // the message's seq
}

// newModItem decodes a moderation payload; false if it is not valid (such
// an entry is stored and replicated, and does nothing).
func newModItem(p feed.Payload) (*modItem, bool) {
	if p.Validate() != nil {
		return nil, false
	}
	m := &modItem{action: p.Action, reason: p.Reason}
	if a, ok := p.Ref.AuthorID(); ok {
		m.target, m.msg, m.seq = a, true, p.Ref.Seq
	} else if a, ok := p.TargetID(); ok {
		m.target = a
	} else {
		return nil, false
	}
	return m, true
}

func (m *modItem) class() byte {
	switch m.action {
	case feed.ModHide, feed.ModUnhide:
		if m.msg {
			return classMessage
		}
		return classAuthor
	case feed.ModBlock, feed.ModUnblock:
		return classBlock
	}
	return classRole
}

func (m *modItem) targetBytes() []byte {
	b := append(make([]byte, 0, 40), m.target[:]...)
	if m.msg {
		b = binary.BigEndian.AppendUint64(b, m.seq)
	}
	return b
}

type moderationView struct{}

func (moderationView) Name() string    { return "moderation" }
func (moderationView) Version() uint32 { return 1 }
func (moderationView) Prefixes() [][]byte {
	return [][]byte{prefix(tagMod), prefix(tagModLog)}
}

func modRowKey(ch feed.DiscoveryID, x feed.AuthorID, class byte, target []byte) []byte {
	k := feedKey(tagMod, ch, x)
	return append(append(k, class), target...)
}

func (moderationView) Map(txn *badger.Txn, b *Batch) error {
	for i := range b.Items {
		it := &b.Items[i]
		if it.Kind != feed.KindMod || it.Mod == nil {
			continue
		}
		e, m := &it.Entry, it.Mod
		tb := m.targetBytes()
		k := modRowKey(e.Channel, e.Author, m.class(), tb)
		old, err := txn.Get(k)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			newer := false
			if err := old.Value(func(v []byte) error {
				newer = len(v) >= 8 && binary.BigEndian.Uint64(v) >= e.Seq
				return nil
			}); err != nil {
				return err
			}
			if newer {
				continue // the moderator's own later entry already holds
			}
		}
		v := putU64(make([]byte, 0, 25+len(m.reason)), e.Seq)
		v = append(v, byte(m.action))
		v = putU64(v, it.N, uint64(e.Time))
		v = append(v, m.reason...)
		if err := txn.Set(k, v); err != nil {
			return err
		}
		lv := append(make([]byte, 0, 82+len(m.reason)), e.Author[:]...)
		lv = binary.BigEndian.AppendUint64(lv, e.Seq)
		lv = append(lv, byte(m.action), byte(len(tb)))
		lv = append(append(lv, tb...), m.reason...)
		if err := txn.Set(binary.BigEndian.AppendUint64(chanKey(tagModLog, e.Channel), it.N), lv); err != nil {
			return err
		}
	}
	return nil
}

// ModEntry is one moderation entry: Moderator's current state about a
// target (Moderation), or one event (ModEvents).
type ModEntry struct {
	Moderator feed.AuthorID
	Seq       uint64 // of the entry in the moderator's feed
	Action    feed.ModAction
	Target    feed.AuthorID
	// Message is set when the target is a message: Target's entry MsgSeq.
	Message bool
	MsgSeq  uint64
	Reason  string
	N       uint64    // arrival number
	Time    time.Time // as the moderator claims
}

// MsgID names one message of a channel.
type MsgID struct {
	Author feed.AuthorID
	Seq    uint64
}

// ModState is what moderation does for the local user in one channel.
type ModState struct {
	// Roles are the authors whose moderation counts: RoleAdmin or RoleMod.
	Roles map[feed.AuthorID]string
	// Hidden messages and authors, and blocked authors, each with one
	// entry that says so (of the moderator with the lowest id, when
	// several do).
	HiddenMessages map[MsgID]ModEntry
	HiddenAuthors  map[feed.AuthorID]ModEntry
	Blocked        map[feed.AuthorID]ModEntry
	// Current lists every moderator's current state that counts (a role
	// holder's latest entry per target), ordered by arrival.
	Current []ModEntry
}

// Role is a's role ("" if none).
func (s *ModState) Role(a feed.AuthorID) string { return s.Roles[a] }

// Hides reports whether the message seq of author a is hidden or blocked
// (hidden itself, or its author hidden or blocked), with the entry that
// says so.
func (s *ModState) Hides(a feed.AuthorID, seq uint64) (ModEntry, bool) {
	if e, ok := s.Blocked[a]; ok {
		return e, true
	}
	if e, ok := s.HiddenAuthors[a]; ok {
		return e, true
	}
	e, ok := s.HiddenMessages[MsgID{a, seq}]
	return e, ok
}

// HidesAuthor reports whether author a is hidden or blocked (all their
// messages are hidden).
func (s *ModState) HidesAuthor(a feed.AuthorID) bool {
	_, blocked := s.Blocked[a]
	_, hidden := s.HiddenAuthors[a]
	return blocked || hidden
}

// SetFollow records the local user's choice about author a's moderation in
// channel ch: follow (their entries count, and those of whomever they
// appoint) or not (they count for nothing, even as an admin the key
// names). ClearFollow returns to the default.
func (v *Views) SetFollow(ch feed.DiscoveryID, a feed.AuthorID, follow bool) error {
	val := []byte{0}
	if follow {
		val[0] = 1
	}
	return v.writeFollow(ch, a, val)
}

// ClearFollow forgets the local choice about a's moderation in ch.
func (v *Views) ClearFollow(ch feed.DiscoveryID, a feed.AuthorID) error {
	return v.writeFollow(ch, a, nil)
}

func (v *Views) writeFollow(ch feed.DiscoveryID, a feed.AuthorID, val []byte) error {
	if err := v.checkWrite(); err != nil {
		return fmt.Errorf("follow: %w", err)
	}
	v.writeMu.Lock()
	v.modGen.Add(1) // odd: a change is being committed (ModGeneration)
	err := v.db.Update(func(txn *badger.Txn) error {
		var err error
		if val == nil {
			err = txn.Delete(feedKey(tagModFollow, ch, a))
		} else {
			err = txn.Set(feedKey(tagModFollow, ch, a), val)
		}
		if err != nil {
			return err
		}
		// What moderation hides may change: the unread counts follow.
		return v.recountUnreadFollow(txn, ch)
	})
	v.modGen.Add(1)
	v.writeMu.Unlock()
	if err != nil {
		return fmt.Errorf("follow: %w", err)
	}
	v.notify()
	return nil
}

// Follows returns the local follow settings of channel ch: true for a
// followed author, false for one not followed.
func (v *Views) Follows(ch feed.DiscoveryID) (map[feed.AuthorID]bool, error) {
	var out map[feed.AuthorID]bool
	err := v.db.View(func(txn *badger.Txn) error {
		var err error
		out, err = readFollows(txn, ch)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read follows: %w", err)
	}
	return out, nil
}

func readFollows(txn *badger.Txn, ch feed.DiscoveryID) (map[feed.AuthorID]bool, error) {
	out := map[feed.AuthorID]bool{}
	p := chanKey(tagModFollow, ch)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()[len(p):]
		if len(k) != 32 {
			continue
		}
		var a feed.AuthorID
		copy(a[:], k)
		if err := it.Item().Value(func(val []byte) error {
			out[a] = len(val) == 1 && val[0] == 1
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ModGeneration changes whenever moderation may have changed: a chunk with
// moderation entries was indexed, or a follow setting changed. It is odd
// while such a change is being committed, and changes again once the
// change is visible, before the views' change signal fires. So moderation
// read while the generation stayed the same even number is what every
// change up to it made, and may be kept until the generation moves; and
// a message the views show was committed after its chunk's moderation
// made the generation move (read the messages, then the generation).
func (v *Views) ModGeneration() uint64 { return v.modGen.Load() }

type modCached struct {
	gen uint64
	st  *ModState
}

// cachedModeration is ch's committed moderation (committedModeration),
// read again only when the moderation generation moved since, or was
// moving (odd) while, it was read. The result is shared: read only.
func (v *Views) cachedModeration(ch feed.DiscoveryID) (*ModState, error) {
	g := v.modGen.Load()
	if g%2 == 0 {
		v.modCacheMu.Lock()
		c, ok := v.modCache[ch]
		v.modCacheMu.Unlock()
		if ok && c.gen == g {
			return c.st, nil
		}
	}
	st, err := v.committedModeration(ch)
	if err != nil {
		return nil, err
	}
	if g%2 == 0 && v.modGen.Load() == g {
		v.modCacheMu.Lock()
		if v.modCache == nil {
			v.modCache = map[feed.DiscoveryID]modCached{}
		}
		v.modCache[ch] = modCached{gen: g, st: st}
		v.modCacheMu.Unlock()
	}
	return st, nil
}

// modRow is one decoded "v M" row.
type modRow struct {
	class byte
	ModEntry
}

func decodeModRow(ch feed.DiscoveryID, key, val []byte) (modRow, bool) {
	k := key[len(chanKey(tagMod, ch)):]
	if len(k) != 32+1+32 && len(k) != 32+1+40 {
		return modRow{}, false
	}
	if len(val) < 25 {
		return modRow{}, false
	}
	var r modRow
	copy(r.Moderator[:], k[:32])
	r.class = k[32]
	copy(r.Target[:], k[33:65])
	if len(k) == 73 {
		r.Message, r.MsgSeq = true, binary.BigEndian.Uint64(k[65:])
	}
	r.Seq = binary.BigEndian.Uint64(val)
	r.Action = feed.ModAction(val[8])
	r.N = binary.BigEndian.Uint64(val[9:])
	r.Time = time.UnixMilli(int64(binary.BigEndian.Uint64(val[17:])))
	r.Reason = string(val[25:])
	return r, true
}

// Moderation computes what moderation does for the local user in channel
// ch, whose key names admins (docs/protocol.md §3.1):
//
//  1. The roots are the admins the key names and the authors the local user
//     follows, less those the local user does not follow. Roots are admins.
//  2. Appointments go by layers from the roots. An author who is not yet
//     decided gets a role when some admin of the layers so far currently
//     appoints them (their latest role entry about the author is add-admin
//     or add-mod), unless some admin of the layers so far currently
//     removes them (latest entry remove-admin or remove-mod): a removal
//     wins, and is final. Admin if any appointing admin says add-admin,
//     else mod. Only admins appoint; authors not followed get no role.
//  3. A message or author is hidden (blocked) when some role holder's
//     current state (latest entry of that class about it) is hide (block).
//     Actions against a role holder or the local user count for nothing.
func (v *Views) Moderation(ch feed.DiscoveryID, admins []feed.AuthorID) (*ModState, error) {
	var s *ModState
	err := v.db.View(func(txn *badger.Txn) error {
		var err error
		s, err = readModeration(txn, v.self, ch, admins)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read moderation: %w", err)
	}
	return s, nil
}

// readModeration computes channel ch's moderation for self from the rows
// and follow settings txn sees (Moderation; the unread view, whose txn
// also holds the moderation view's rows of the chunk being indexed).
func readModeration(txn *badger.Txn, self feed.AuthorID, ch feed.DiscoveryID, admins []feed.AuthorID) (*ModState, error) {
	follows, err := readFollows(txn, ch)
	if err != nil {
		return nil, err
	}
	var rows []modRow
	p := chanKey(tagMod, ch)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		if err := it.Item().Value(func(val []byte) error {
			if r, ok := decodeModRow(ch, it.Item().Key(), val); ok {
				rows = append(rows, r)
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return computeModeration(self, admins, follows, rows), nil
}

func computeModeration(self feed.AuthorID, admins []feed.AuthorID, follows map[feed.AuthorID]bool, rows []modRow) *ModState {
	s := &ModState{Roles: map[feed.AuthorID]string{}, HiddenMessages: map[MsgID]ModEntry{},
		HiddenAuthors: map[feed.AuthorID]ModEntry{}, Blocked: map[feed.AuthorID]ModEntry{}}
	for _, a := range admins {
		if f, set := follows[a]; !set || f {
			s.Roles[a] = RoleAdmin
		}
	}
	for a, f := range follows {
		if f {
			s.Roles[a] = RoleAdmin
		}
	}
	// roleOf[X][T]: X's current role entry about T.
	roleOf := map[feed.AuthorID]map[feed.AuthorID]feed.ModAction{}
	for _, r := range rows {
		if r.class != classRole {
			continue
		}
		if roleOf[r.Moderator] == nil {
			roleOf[r.Moderator] = map[feed.AuthorID]feed.ModAction{}
		}
		roleOf[r.Moderator][r.Target] = r.Action
	}
	decided := map[feed.AuthorID]bool{}
	var layer []feed.AuthorID
	for a := range s.Roles {
		decided[a] = true
		layer = append(layer, a)
	}
	admitted := slices.Clone(layer) // admins of the layers so far
	for len(layer) > 0 {
		// Candidates: undecided authors some admin so far appoints.
		cand := map[feed.AuthorID]bool{}
		for _, x := range admitted {
			for t, act := range roleOf[x] {
				if !decided[t] && (act == feed.ModAddAdmin || act == feed.ModAddMod) {
					cand[t] = true
				}
			}
		}
		layer = nil
		for t := range cand {
			decided[t] = true
			if f, set := follows[t]; set && !f {
				continue
			}
			role := ""
			removed := false
			for _, x := range admitted {
				switch roleOf[x][t] {
				case feed.ModRemoveAdmin, feed.ModRemoveMod:
					removed = true
				case feed.ModAddAdmin:
					role = RoleAdmin
				case feed.ModAddMod:
					if role == "" {
						role = RoleMod
					}
				}
			}
			if removed || role == "" {
				continue
			}
			s.Roles[t] = role
			if role == RoleAdmin {
				layer = append(layer, t)
			}
		}
		admitted = append(admitted, layer...)
	}
	sort.Slice(rows, func(i, j int) bool {
		if c := bytes.Compare(rows[i].Moderator[:], rows[j].Moderator[:]); c != 0 {
			return c < 0
		}
		return rows[i].N < rows[j].N
	})
	for _, r := range rows {
		if s.Roles[r.Moderator] == "" {
			continue
		}
		if r.class != classRole && (s.Roles[r.Target] != "" || r.Target == self) {
			continue // never against a role holder or the local user
		}
		switch {
		case r.class == classMessage && r.Action == feed.ModHide:
			if _, ok := s.HiddenMessages[MsgID{r.Target, r.MsgSeq}]; !ok {
				s.HiddenMessages[MsgID{r.Target, r.MsgSeq}] = r.ModEntry
			}
		case r.class == classAuthor && r.Action == feed.ModHide:
			if _, ok := s.HiddenAuthors[r.Target]; !ok {
				s.HiddenAuthors[r.Target] = r.ModEntry
			}
		case r.class == classBlock && r.Action == feed.ModBlock:
			if _, ok := s.Blocked[r.Target]; !ok {
				s.Blocked[r.Target] = r.ModEntry
			}
		}
		s.Current = append(s.Current, r.ModEntry)
	}
	sort.Slice(s.Current, func(i, j int) bool { return s.Current[i].N < s.Current[j].N })
	return s
}

// ModEvents returns the moderation entries of channel ch indexed after
// arrival number after, oldest first, at most limit (notices). They are
// every author's entries, whether they count for the local user or not.
func (v *Views) ModEvents(ch feed.DiscoveryID, after uint64, limit int) ([]ModEntry, error) {
	var out []ModEntry
	err := v.db.View(func(txn *badger.Txn) error {
		p := chanKey(tagModLog, ch)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true})
		defer it.Close()
		for it.Seek(binary.BigEndian.AppendUint64(slices.Clone(p), after+1)); it.Valid() && len(out) < limit; it.Next() {
			k := it.Item().Key()[len(p):]
			if len(k) != 8 {
				continue
			}
			n := binary.BigEndian.Uint64(k)
			if err := it.Item().Value(func(val []byte) error {
				if len(val) < 42 {
					return nil
				}
				var e ModEntry
				copy(e.Moderator[:], val)
				e.Seq = binary.BigEndian.Uint64(val[32:])
				e.Action = feed.ModAction(val[40])
				tl := int(val[41])
				if (tl != 32 && tl != 40) || len(val) < 42+tl {
					return nil
				}
				copy(e.Target[:], val[42:74])
				if tl == 40 {
					e.Message, e.MsgSeq = true, binary.BigEndian.Uint64(val[74:82])
				}
				e.Reason = string(val[42+tl:])
				e.N = n
				out = append(out, e)
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read moderation events: %w", err)
	}
	return out, nil
}
