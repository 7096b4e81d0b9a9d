package ui

import (
	"bytes"
	"sort"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/views"
)

// buffer is the scrollback of one channel (or of the status window): the
// loaded part of the channel's history, always contiguous up to the newest
// message, plus local notes; the scroll position; the last-read line.
//
// Scrolling is counted in rows from the bottom, so loading older pages at
// the top never moves what the user is looking at.
type buffer struct {
	ch     feed.DiscoveryID
	status bool // the status window (no channel)
	full   bool // long messages shown whole (/expand)

	items   []*item
	loaded  bool // the first page has arrived
	atStart bool // no older messages exist than items[0]
	loading bool // an older page has been asked for
	stale   bool // arrivals were missed: reload the newest page when shown

	summary *item // the one "N messages arrived" line of a catch-up
	synced  int   // its count

	// readAfter is the read marker frozen when the channel was opened: the
	// "new messages" line is drawn after the message with this cursor.
	readAfter views.Cursor
	// readTop puts the line above everything loaded (the marker is older
	// than the loaded page, or the user never read the channel).
	readTop   bool
	readLabel string // "1,204 new messages"

	scroll    int // rows hidden below the view; 0 follows new messages
	below     int // messages that arrived below the view while scrolled up
	widest    int // widest display name, for the nick column
	gen       int // layout cache generation
	lastGeo   geometry
	lastRows  int // rows drawn at the last layout (page size)
	wantOlder bool

	mod *bufMod // what moderation hides here (mod.go)
}

func newBuffer(ch feed.DiscoveryID) *buffer { return &buffer{ch: ch} }

// less orders messages as the chronological view does: time, author, seq.
func less(a, b *views.Message) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.Before(b.Time)
	}
	if c := bytes.Compare(a.Author[:], b.Author[:]); c != 0 {
		return c < 0
	}
	return a.Seq < b.Seq
}

func itemLess(a, b *item) bool {
	if a.isNote() || b.isNote() {
		// Notes sort by time; at equal times after messages.
		if !a.when().Equal(b.when()) {
			return a.when().Before(b.when())
		}
		return !a.isNote() && b.isNote()
	}
	return less(&a.msg, &b.msg)
}

func (b *buffer) invalidate() { b.gen++ }

func (b *buffer) noteWidest(m *views.Message) {
	if w := textWidth(displayName(m)); w > b.widest {
		b.widest = w
		b.invalidate()
	}
}

// setPage replaces the contents with the newest page of the channel.
// full says whether the page was as long as asked (older messages may exist).
func (b *buffer) setPage(msgs []views.Message, full bool) {
	var notes []*item
	for _, it := range b.items {
		if it.isNote() {
			notes = append(notes, it)
		}
	}
	b.items = b.items[:0]
	for i := range msgs {
		b.items = append(b.items, &item{msg: msgs[i]})
		b.noteWidest(&msgs[i])
	}
	// Keep local notes that fall inside the page.
	for _, n := range notes {
		if len(msgs) == 0 || !n.at.Before(msgs[0].Time) || !full {
			b.items = append(b.items, n)
		}
	}
	sort.SliceStable(b.items, func(i, j int) bool { return itemLess(b.items[i], b.items[j]) })
	b.loaded, b.atStart, b.loading = true, !full, false
	b.scroll, b.below = 0, 0
	b.invalidate()
}

// prependOlder adds a page of older messages (oldest first) at the top.
func (b *buffer) prependOlder(msgs []views.Message, full bool) {
	b.loading = false
	if !full {
		b.atStart = true
	}
	if len(msgs) == 0 {
		return
	}
	seen := b.keys()
	add := make([]*item, 0, len(msgs)+len(b.items))
	for i := range msgs {
		if seen[key(&msgs[i])] {
			continue
		}
		add = append(add, &item{msg: msgs[i]})
		b.noteWidest(&msgs[i])
	}
	b.items = append(add, b.items...)
	sort.SliceStable(b.items, func(i, j int) bool { return itemLess(b.items[i], b.items[j]) })
	if b.readTop && b.readAfter != "" {
		// The read marker may be in the older page: the line moves there.
		for _, it := range add {
			if it.msg.Cursor == b.readAfter {
				b.readTop = false
				b.invalidate()
				break
			}
		}
	}
}

type msgKey struct {
	a   feed.AuthorID
	seq uint64
}

func key(m *views.Message) msgKey { return msgKey{m.Author, m.Seq} }

func (b *buffer) keys() map[msgKey]bool {
	seen := make(map[msgKey]bool, len(b.items))
	for _, it := range b.items {
		if !it.isNote() {
			seen[key(&it.msg)] = true
		}
	}
	return seen
}

// merge inserts newly arrived messages that belong to the loaded range:
// anything newer than the oldest loaded message (or everything, when the
// whole history is loaded). Older ones are found when paging back.
// It returns how many were inserted.
func (b *buffer) merge(msgs []views.Message) int {
	if !b.loaded {
		return 0
	}
	var first *views.Message
	for _, it := range b.items {
		if !it.isNote() {
			first = &it.msg
			break
		}
	}
	seen := b.keys()
	n := 0
	rowsAdded := 0
	for i := range msgs {
		m := &msgs[i]
		if seen[key(m)] {
			continue
		}
		if first != nil && !b.atStart && less(m, first) {
			continue
		}
		it := &item{msg: *m}
		b.insert(it)
		seen[key(m)] = true
		b.noteWidest(m)
		n++
		if b.lastGeo.width > 0 {
			rowsAdded += len(layoutItem(it, b.lastGeo))
		}
	}
	if n > 0 && b.scroll > 0 {
		// Keep the view still; count what is waiting below.
		b.scroll += rowsAdded
		b.below += n
	}
	return n
}

// applyEdits changes loaded messages (and the replies quoting them) to
// their latest edit, or to deleted. It returns how many items changed.
func (b *buffer) applyEdits(eds []views.Edit) int {
	if len(eds) == 0 {
		return 0
	}
	byKey := make(map[msgKey]*views.Edit, len(eds))
	for i := range eds {
		byKey[msgKey{eds[i].Author, eds[i].Seq}] = &eds[i]
	}
	n := 0
	for _, it := range b.items {
		if it.isNote() {
			continue
		}
		m := &it.msg
		if ed := byKey[key(m)]; ed != nil && (m.Kind == feed.KindText || m.Kind == feed.KindEmote) {
			m.Text, m.Edited, m.Deleted = ed.Text, !ed.Deleted, ed.Deleted
			if ed.Deleted {
				m.Mention = false
			}
			n++
		}
		if r := m.ReplyTo; r != nil {
			if ed := byKey[msgKey{r.Author, r.Seq}]; ed != nil && !r.Missing {
				cp := *r
				cp.Text, cp.Deleted = ed.Text, ed.Deleted
				m.ReplyTo = &cp
				n++
			}
		}
	}
	if n > 0 {
		b.invalidate()
	}
	return n
}

// lastBy returns the newest loaded text or emote message, not deleted,
// for which match is true; nil if none is loaded.
func (b *buffer) lastBy(match func(m *views.Message) bool) *views.Message {
	for i := len(b.items) - 1; i >= 0; i-- {
		it := b.items[i]
		if it.isNote() {
			continue
		}
		m := &it.msg
		if !m.Deleted && (m.Kind == feed.KindText || m.Kind == feed.KindEmote) && match(m) {
			return m
		}
	}
	return nil
}

// insert places it in order (usually at the end).
func (b *buffer) insert(it *item) {
	i := sort.Search(len(b.items), func(i int) bool { return itemLess(it, b.items[i]) })
	b.items = append(b.items, nil)
	copy(b.items[i+1:], b.items[i:])
	b.items[i] = it
}

// addRaw appends a note drawn without prefix, from the first column, so
// it can be copied from the terminal in one piece (channel keys).
func (b *buffer) addRaw(now time.Time, forms ...string) {
	b.addNote(forms[0], false, now)
	b.items[len(b.items)-1].raw = forms
}

// addNote appends a local note at time now.
func (b *buffer) addNote(text string, isErr bool, now time.Time) {
	// A note is shown at the bottom even if the newest message claims a
	// later time (clock skew): give it that time.
	if n := len(b.items); n > 0 && b.items[n-1].when().After(now) {
		now = b.items[n-1].when()
	}
	it := &item{note: text, isError: isErr, at: now}
	b.items = append(b.items, it)
	if b.scroll > 0 && b.lastGeo.width > 0 {
		b.scroll += len(layoutItem(it, b.lastGeo))
	}
}

// refreshDisplay updates the display names of loaded messages.
func (b *buffer) refreshDisplay(names map[feed.AuthorID]string) {
	for _, it := range b.items {
		if it.isNote() {
			continue
		}
		if d, ok := names[it.msg.Author]; ok && d != it.msg.Display {
			it.msg.Display = d
			b.noteWidest(&it.msg)
		}
		if r := it.msg.ReplyTo; r != nil {
			if d, ok := names[r.Author]; ok && d != r.Display {
				rc := *r // the Reply may be shared with another copy of the message
				rc.Display = d
				it.msg.ReplyTo = &rc
			}
		}
	}
	b.invalidate()
}

// authors lists the authors of loaded messages, most recent first.
func (b *buffer) authors() []feed.AuthorID {
	var out []feed.AuthorID
	seen := map[feed.AuthorID]bool{}
	for i := len(b.items) - 1; i >= 0; i-- {
		it := b.items[i]
		if it.isNote() || seen[it.msg.Author] {
			continue
		}
		seen[it.msg.Author] = true
		out = append(out, it.msg.Author)
	}
	// Authors quoted by replies, whose names are shown too.
	for i := len(b.items) - 1; i >= 0; i-- {
		it := b.items[i]
		if it.isNote() || it.msg.ReplyTo == nil || seen[it.msg.ReplyTo.Author] {
			continue
		}
		seen[it.msg.ReplyTo.Author] = true
		out = append(out, it.msg.ReplyTo.Author)
	}
	return out
}

// oldest is the cursor of the oldest loaded message ("" if none).
func (b *buffer) oldest() views.Cursor {
	for _, it := range b.items {
		if !it.isNote() {
			return it.msg.Cursor
		}
	}
	return ""
}

// setReadLine freezes the last-read line for this visit of the channel.
func (b *buffer) setReadLine(marker views.Cursor, unread int) {
	b.readAfter, b.readTop, b.readLabel = "", false, ""
	if unread <= 0 {
		return
	}
	b.readLabel = plural(unread, "new message", "new messages")
	b.readAfter = marker
	found := false
	if marker != "" {
		for _, it := range b.items {
			if !it.isNote() && it.msg.Cursor == marker {
				found = true
				break
			}
		}
	}
	if !found {
		b.readTop = true
	}
	b.invalidate()
}

// trim drops all but the newest keep items (after returning to the bottom
// from far back in history), so memory stays bounded.
func (b *buffer) trim(keep int) {
	if b.scroll != 0 || len(b.items) <= keep {
		return
	}
	b.items = append([]*item(nil), b.items[len(b.items)-keep:]...)
	b.atStart = false
	b.invalidate()
}

// view lays out the rows visible in a pane of width x height, bottom
// anchored and scrolled up by b.scroll rows. It clamps the scroll at the top
// of what is loaded and sets wantOlder when fewer than a page of rows is
// left above the view and older messages may exist.
// itemRows is it laid out at g (cached per layout generation).
func (b *buffer) itemRows(it *item, g geometry) []row {
	if it.gen != b.gen || it.rows == nil {
		it.rows, it.gen = layoutItem(it, g), b.gen
	}
	return it.rows
}

// rulesAbove are the rows drawn above it, bottom-up: a day separator when
// prev (the visible item before it) is on another day, and the "new
// messages" line.
func (b *buffer) rulesAbove(it, prev *item, width int) []row {
	var rs []row
	if prev == nil || !sameDay(prev.when(), it.when()) {
		rs = append(rs, ruleRow(dayLabel(it.when()), width, stDay))
	}
	if b.readLabel != "" && !b.readTop && prev != nil && !prev.isNote() && prev.msg.Cursor == b.readAfter {
		rs = append(rs, ruleRow(b.readLabel, width, stReadLine))
	}
	if b.readLabel != "" && b.readTop && prev == nil {
		rs = append(rs, ruleRow(b.readLabel, width, stReadLine))
	}
	return rs
}

// olderMention returns the scroll that puts the newest loaded mention older
// than what the view shows now in the middle of the view, and false if no
// such mention is loaded. It lays out as view does (at the last geometry).
func (b *buffer) olderMention(hidden func(feed.AuthorID) bool) (int, bool) {
	g, h := b.lastGeo, b.lastRows
	if g.width == 0 || h == 0 {
		return 0, false
	}
	if hidden == nil {
		hidden = func(feed.AuthorID) bool { return false }
	}
	var visible []int
	for i, it := range b.items {
		if it.isNote() || !hidden(it.msg.Author) {
			visible = append(visible, i)
		}
	}
	below := 0 // rows below the item being looked at
	for k := len(visible) - 1; k >= 0; k-- {
		it := b.items[visible[k]]
		n := len(b.itemRows(it, g))
		if !it.isNote() && it.msg.Mention {
			if target := max(below+n-h/2, 0); target > b.scroll {
				return target, true
			}
		}
		var prev *item
		if k > 0 {
			prev = b.items[visible[k-1]]
		}
		below += n + len(b.rulesAbove(it, prev, g.width))
	}
	return 0, false
}

// scrollTo returns the scroll that shows the message at cursor c in the
// middle of the view; ok is false if it is not loaded (or hidden).
func (b *buffer) scrollTo(c views.Cursor, hidden func(feed.AuthorID) bool) (int, bool) {
	g, h := b.lastGeo, b.lastRows
	if g.width == 0 || h == 0 {
		return 0, false
	}
	if hidden == nil {
		hidden = func(feed.AuthorID) bool { return false }
	}
	var visible []int
	for i, it := range b.items {
		if it.isNote() || !hidden(it.msg.Author) {
			visible = append(visible, i)
		}
	}
	below := 0
	for k := len(visible) - 1; k >= 0; k-- {
		it := b.items[visible[k]]
		n := len(b.itemRows(it, g))
		if !it.isNote() && it.msg.Cursor == c {
			return max(below+n-h/2, 0), true
		}
		var prev *item
		if k > 0 {
			prev = b.items[visible[k-1]]
		}
		below += n + len(b.rulesAbove(it, prev, g.width))
	}
	return 0, false
}

// has reports whether the message at cursor c is loaded.
func (b *buffer) has(c views.Cursor) bool {
	for _, it := range b.items {
		if !it.isNote() && it.msg.Cursor == c {
			return true
		}
	}
	return false
}

// newerMention is the scroll that shows the next newer loaded message
// mentioning the user than the view shows now (0, the newest, when there
// is none); ok is false at the bottom already.
func (b *buffer) newerMention(hidden func(feed.AuthorID) bool) (int, bool) {
	g, h := b.lastGeo, b.lastRows
	if g.width == 0 || h == 0 || b.scroll == 0 {
		return 0, false
	}
	if hidden == nil {
		hidden = func(feed.AuthorID) bool { return false }
	}
	var visible []int
	for i, it := range b.items {
		if it.isNote() || !hidden(it.msg.Author) {
			visible = append(visible, i)
		}
	}
	best := 0
	below := 0
	for k := len(visible) - 1; k >= 0; k-- {
		it := b.items[visible[k]]
		n := len(b.itemRows(it, g))
		if !it.isNote() && it.msg.Mention {
			target := max(below+n-h/2, 0)
			if target >= b.scroll {
				break // this one and older ones are not newer
			}
			best = target
		}
		var prev *item
		if k > 0 {
			prev = b.items[visible[k-1]]
		}
		below += n + len(b.rulesAbove(it, prev, g.width))
	}
	return best, true
}

func (b *buffer) view(width, height int, hidden func(feed.AuthorID) bool) []row {
	if width < 1 || height < 1 {
		return nil
	}
	if hidden == nil {
		hidden = func(feed.AuthorID) bool { return false }
	}
	g := newGeometry(width, b.widest)
	g.full = b.full
	if g != b.lastGeo {
		b.lastGeo = g
		b.invalidate()
	}
	b.lastRows = height
	need := b.scroll + height + height // rows below + view + one page above
	var rev []row                      // rows bottom-up
	push := func(rs []row) {
		for i := len(rs) - 1; i >= 0; i-- {
			rev = append(rev, rs[i])
		}
	}
	// prevVisible finds the visible item before index i.
	prevVisible := func(i int) *item {
		for j := i - 1; j >= 0; j-- {
			it := b.items[j]
			if it.isNote() || !hidden(it.msg.Author) {
				return it
			}
		}
		return nil
	}
	collapsed, by := 0, "" // a run of messages moderation hides (mod.go)
	for i := len(b.items) - 1; i >= 0 && len(rev) < need; i-- {
		it := b.items[i]
		if !it.isNote() && (hidden(it.msg.Author) || b.modHidesEvent(it)) {
			continue
		}
		if who, ok := b.modHides(it); ok {
			collapsed, by = collapsed+1, who
			continue
		}
		if r := it.msg.ReplyTo; r != nil && !it.isNote() {
			if hq := hidden(r.Author) || b.modHidesRef(r); hq != it.hideQuote {
				it.hideQuote, it.rows = hq, nil
			}
		}
		if collapsed > 0 {
			push(collapsedRow(collapsed, by))
			collapsed = 0
		}
		push(b.itemRows(it, g))
		push(b.rulesAbove(it, prevVisible(i), width))
	}
	if collapsed > 0 {
		push(collapsedRow(collapsed, by))
	}
	if len(b.items) == 0 && b.loaded && b.atStart && !b.status {
		push([]row{{{text: "No messages yet. Say hello!", st: stNote}}})
	}
	above := len(rev) - b.scroll - height
	b.wantOlder = above < height && !b.atStart && !b.loading && b.loaded
	// Clamp at the top of what is loaded.
	if maxScroll := max(len(rev)-height, 0); b.scroll > maxScroll {
		b.scroll = maxScroll
	}
	if b.scroll == 0 {
		b.below = 0
	}
	lo := b.scroll
	hi := min(b.scroll+height, len(rev))
	out := make([]row, 0, hi-lo)
	for i := hi - 1; i >= lo; i-- {
		out = append(out, rev[i])
	}
	return out
}

// page is how far PgUp/PgDn scroll: a whole page, keeping one row.
func (b *buffer) page() int { return max(b.lastRows-1, 1) }

func (b *buffer) scrollUp(n int) { b.scroll += n }

func (b *buffer) scrollDown(n int) {
	b.scroll = max(b.scroll-n, 0)
}

// summarise counts a catch-up batch in ONE line at the bottom, updated in
// place, instead of announcing each message.
func (b *buffer) summarise(n int, now time.Time) {
	b.synced += n
	if b.summary != nil {
		for i, it := range b.items {
			if it == b.summary {
				b.items = append(b.items[:i], b.items[i+1:]...)
				break
			}
		}
	}
	b.addNote(plural(b.synced, "message", "messages")+" arrived while catching up with peers", false, now)
	b.summary = b.items[len(b.items)-1]
}

// resetSummary starts a new catch-up count (the user spoke).
func (b *buffer) resetSummary() { b.summary, b.synced = nil, 0 }
