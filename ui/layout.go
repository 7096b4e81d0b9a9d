package ui

import (
	"crypto/sha256"
	"encoding/binary"
	"strings"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/views"
)

// The message pane's model: items (messages and local notes) are laid out
// into rows of styled spans for a given width. This file knows nothing of
// tview or tcell; the widget maps each style to terminal attributes.

// style is the role of a span; the widget decides how each role looks.
type style uint8

const (
	stNormal   style = iota
	stTime           // the HH:MM column
	stSkewed         // the HH:MM of a message the ordering rule moved (clock skew)
	stNick           // another author's nickname (colour from span.color)
	stOwnNick        // the local user's nickname
	stMentionN       // the nickname on a line that mentions the user
	stMention        // the text of a line that mentions the user
	stOwnText        // the text of the user's own line
	stEmote          // /me text
	stEvent          // topic and nick changes
	stNote           // local information (command output)
	stError          // local errors
	stSep            // the column separator
	stDay            // day separator
	stReadLine       // the "new messages" line
)

// span is a run of text drawn in one style. color is a nick colour index
// (see nickColor) for stNick, stOwnNick and stMentionN.
type span struct {
	text  string
	st    style
	color int
}

// row is one screen row of the message pane.
type row []span

// String is the row's plain text (tests, debugging).
func (r row) String() string {
	var b strings.Builder
	for _, s := range r {
		b.WriteString(s.text)
	}
	return b.String()
}

// nickColors is the number of distinct nickname colours.
const nickColors = 12

// nickColor derives a stable colour index from an author id, so a nickname
// keeps its colour across sessions and a copied nickname usually differs.
func nickColor(a feed.AuthorID) int {
	h := sha256.Sum256(a[:])
	return int(binary.BigEndian.Uint32(h[:4]) % nickColors)
}

// item is one entry of a buffer: a message, or a local note (command output,
// errors, summaries) that lives only in this UI session.
type item struct {
	msg     views.Message
	note    string   // non-empty for a local note
	isError bool     // the note is an error
	raw     []string // a note drawn from column 0 without a prefix, so it can be
	// copied in one piece (a key): the first form that fits the width is shown
	at time.Time
	// hideQuote: the message this one replies to is hidden here (its
	// author blocked, or moderation hides it): the quote says so instead
	// of quoting it. Set by buffer.view before laying out.
	hideQuote bool

	gen  int   // cache generation rows were computed for
	rows []row // cached layout
}

func (it *item) isNote() bool { return it.note != "" }

// when is the time the item is ordered and shown at.
func (it *item) when() time.Time {
	if it.isNote() {
		return it.at
	}
	return it.msg.Time
}

// geometry is how rows are laid out at one width.
type geometry struct {
	width    int
	showTime bool
	nickW    int  // width of the right-aligned nickname column
	full     bool // long messages whole, not folded at maxShownLines (/expand)
}

const (
	timeW = 7 // "15:04  ", or "15:04~ " for a message moved by the ordering rule
	sepW  = 3 // " │ "
)

// newGeometry chooses the columns for a pane width and the widest nickname
// among the loaded messages.
func newGeometry(width, widestNick int) geometry {
	g := geometry{width: max(width, 1), showTime: width >= 34}
	g.nickW = min(max(widestNick, 3), 16)
	// Keep at least 20 cells of text when possible.
	if room := g.width - g.prefix(); room < 20 {
		g.nickW = max(3, g.nickW-(20-room))
	}
	return g
}

func (g geometry) prefix() int {
	p := g.nickW + sepW
	if g.showTime {
		p += timeW
	}
	return p
}

func (g geometry) textWidth() int { return max(g.width-g.prefix(), 1) }

// stamp is the time shown in an item's first row. skewed marks a message
// whose author's clock disagreed with the ordering rule (views.Message.Time
// differs from Claimed), or that arrived late, backdated or held back
// (views.Message.Late): it is drawn as "15:04~" in its own style.
type stamp struct {
	t      time.Time
	skewed bool
}

// skewShown is how far a message's place may differ from its author's claim
// before the time column says so.
const skewShown = views.FutureTolerance

// msgStamp is the stamp of a message.
func msgStamp(m *views.Message) stamp {
	d := m.Time.Sub(m.Claimed)
	return stamp{t: m.Time, skewed: m.Late || d > skewShown || d < -skewShown}
}

// head is the first prefix of an item: time, nickname column, separator.
func (g geometry) head(ts stamp, nick span) row {
	var r row
	if g.showTime {
		if ts.skewed {
			r = append(r, span{text: ts.t.Local().Format("15:04") + "~ ", st: stSkewed})
		} else {
			r = append(r, span{text: ts.t.Local().Format("15:04") + "  ", st: stTime})
		}
	}
	nick.text = padLeft(truncateWidth(nick.text, g.nickW), g.nickW)
	return append(r, nick, span{text: " │ ", st: stSep})
}

// cont is the prefix of continuation rows: blank columns, so nothing in a
// message can line up as another author's line.
func (g geometry) cont() row {
	p := g.nickW
	if g.showTime {
		p += timeW
	}
	return row{{text: strings.Repeat(" ", p)}, {text: " ┆ ", st: stSep}}
}

// displayName is the cleaned name shown for a message's author.
func displayName(m *views.Message) string {
	d := m.Display
	if d == "" {
		d = m.Author.Short()
	}
	return cleanInline(d, 40)
}

// maxNoteLines caps the lines of one of the UI's notes: /help and /names
// are longer than a message may show, but a note may quote peer text (a
// topic), so it is capped too.
const maxNoteLines = 400

// layoutItem lays out one item at geometry g.
func layoutItem(it *item, g geometry) []row {
	if it.isNote() && len(it.raw) > 0 {
		text := it.raw[len(it.raw)-1]
		for _, alt := range it.raw {
			if textWidth(alt) <= g.width {
				text = alt
				break
			}
		}
		var rows []row
		for _, l := range cleanLines(text) {
			for _, rg := range wrapRanges(l, g.width) {
				rows = append(rows, row{{text: l[rg[0]:rg[1]], st: stNote}})
			}
		}
		return rows
	}
	if it.isNote() {
		mark, st := "--", stNote
		if it.isError {
			mark, st = "!!", stError
		}
		return g.wrapN(stamp{t: it.at}, span{text: mark, st: st}, []span{{text: it.note, st: st}}, maxNoteLines)
	}
	m := &it.msg
	name := displayName(m)
	nick := span{text: name, st: stNick, color: nickColor(m.Author)}
	textSt := stNormal
	switch {
	case m.Own:
		nick.st, textSt = stOwnNick, stOwnText
	case m.Mention:
		nick.st, textSt = stMentionN, stMention
	}
	switch m.Kind {
	case feed.KindText:
		body := append(replySpans(it), span{text: m.Text, st: textSt})
		if m.Deleted {
			body = append(replySpans(it), span{text: "(message deleted)", st: stEvent})
		}
		return g.wrap(msgStamp(m), nick, append(body, editedSpans(m)...))
	case feed.KindEmote:
		st := stEmote
		if m.Mention {
			st = stMention
		}
		if m.Deleted {
			return g.wrap(msgStamp(m), span{text: "*", st: stEmote}, []span{nick, {text: " (action deleted)", st: stEvent}})
		}
		body := append(replySpans(it), nick, span{text: " " + m.Text, st: st})
		return g.wrap(msgStamp(m), span{text: "*", st: stEmote}, append(body, editedSpans(m)...))
	case feed.KindTopic:
		if strings.TrimSpace(m.Text) == "" {
			return g.wrap(msgStamp(m), span{text: "--", st: stEvent}, []span{nick, {text: " cleared the topic", st: stEvent}})
		}
		return g.wrap(msgStamp(m), span{text: "--", st: stEvent}, []span{nick, {text: " set the topic: ", st: stEvent}, {text: m.Text, st: stNormal}})
	case feed.KindNick:
		if m.Own {
			return g.wrap(msgStamp(m), span{text: "--", st: stEvent}, []span{
				{text: "you are now known as ", st: stEvent},
				{text: cleanInline(m.Text, 64), st: nick.st, color: nick.color}})
		}
		was := cleanInline(m.PrevNick, 40)
		if was == "" {
			was = m.Author.Short() // their first nickname
		}
		return g.wrap(msgStamp(m), span{text: "--", st: stEvent}, []span{
			{text: was, st: nick.st, color: nick.color},
			{text: " is now known as ", st: stEvent},
			{text: cleanInline(m.Text, 64), st: nick.st, color: nick.color}})
	}
	return nil
}

// replyQuote is how much of a replied-to message a reply quotes.
const replyQuote = 40

// replySpans is the quote a reply starts with: "↪ ann: the first words… ".
func replySpans(it *item) []span {
	r := it.msg.ReplyTo
	if r == nil {
		return nil
	}
	if it.hideQuote {
		return []span{{text: "↪ (a hidden message) ", st: stEvent}}
	}
	who := cleanInline(r.Display, 24)
	if who == "" {
		who = r.Author.Short()
	}
	var quote string
	switch {
	case r.Missing:
		quote = "(a message not here yet)"
	case r.Deleted:
		quote = "(deleted)"
	default:
		quote = cleanInline(r.Text, replyQuote)
	}
	return []span{{text: "↪ ", st: stEvent}, {text: who, st: stNick, color: nickColor(r.Author)}, {text: ": " + quote + " ", st: stEvent}}
}

// editedSpans marks an edited message.
func editedSpans(m *views.Message) []span {
	if !m.Edited || m.Deleted {
		return nil
	}
	return []span{{text: " (edited)", st: stEvent}}
}

// wrap lays out body after the head: the text is cleaned (untrusted),
// split at the author's line breaks, and word-wrapped to the text column.
func (g geometry) wrap(ts stamp, nick span, body []span) []row {
	if g.full {
		return g.wrapN(ts, nick, body, 0)
	}
	return g.wrapN(ts, nick, body, maxShownLines)
}

// wrapN is wrap showing at most limit lines of the body (0: all).
func (g geometry) wrapN(ts stamp, nick span, body []span, limit int) []row {
	// Clean each span and split it into lines; lines of the whole body are
	// then the concatenation across spans.
	type piece struct {
		text  string
		st    style
		color int
	}
	lines := [][]piece{nil}
	for _, s := range body {
		ls := cleanLines(s.text)
		for i, l := range ls {
			if i > 0 {
				lines = append(lines, nil)
			}
			if l != "" {
				lines[len(lines)-1] = append(lines[len(lines)-1], piece{l, s.st, s.color})
			}
		}
	}
	hidden := 0
	if limit > 0 && len(lines) > limit {
		hidden = len(lines) - limit
		lines = lines[:limit]
	}
	tw := g.textWidth()
	var rows []row
	for _, ps := range lines {
		// Concatenate, wrap, then cut the spans at the wrap points.
		var full strings.Builder
		for _, p := range ps {
			full.WriteString(p.text)
		}
		for _, rg := range wrapRanges(full.String(), tw) {
			var r row
			if len(rows) == 0 {
				r = g.head(ts, nick)
			} else {
				r = g.cont()
			}
			off := 0
			for _, p := range ps {
				a, b := max(rg[0], off), min(rg[1], off+len(p.text))
				if a < b {
					r = append(r, span{text: p.text[a-off : b-off], st: p.st, color: p.color})
				}
				off += len(p.text)
			}
			rows = append(rows, r)
		}
	}
	if hidden > 0 {
		r := append(g.cont(), span{text: "… " + plural(hidden, "more line", "more lines") + " not shown (/expand shows them)", st: stNote})
		rows = append(rows, r)
	}
	return rows
}

// ruleRow is a full-width separator with a label in the middle.
func ruleRow(label string, width int, st style) row {
	label = " " + truncateWidth(label, max(width-6, 1)) + " "
	lw := textWidth(label)
	left := max((width-lw)/2, 0)
	right := max(width-lw-left, 0)
	return row{{text: strings.Repeat("─", left) + label + strings.Repeat("─", right), st: st}}
}

// dayLabel names a local calendar day.
func dayLabel(t time.Time) string { return t.Local().Format("Monday 2 January 2006") }

func sameDay(a, b time.Time) bool {
	a, b = a.Local(), b.Local()
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd
}
