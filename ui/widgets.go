package ui

import (
	"strconv"
	"strings"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"
	"github.com/rivo/uniseg"
)

// The screen:
//
//	┌ channels ┐┌ messages ──────────────────────────────┐
//	│ 1 general ││ 15:04  alice │ hello                  │
//	│ 2 dev   3!││ 15:05    bob │ hi alice               │
//	└───────────┘└────────────────────────────────────────┘
//	 #general  topic text                    3 peers  synced
//	 [nick] input line_
//
// The channel list is hidden below listMinWidth columns; the status bar
// then shows channel activity instead.

const listMinWidth = 60

// nickPalette: 256-colour indices for nickname colours, chosen to be told
// apart on dark and light backgrounds.
var nickPalette = [nickColors]int{167, 173, 179, 143, 107, 72, 74, 68, 134, 170, 205, 110}

// styleOf maps a span role to terminal attributes.
func styleOf(sp span) tcell.Style {
	s := tcell.StyleDefault
	switch sp.st {
	case stTime, stSep, stEvent, stDay:
		return s.Foreground(tcell.ColorGray)
	case stSkewed:
		return s.Foreground(tcell.ColorOlive)
	case stNick:
		return s.Foreground(tcell.PaletteColor(nickPalette[sp.color%nickColors]))
	case stOwnNick:
		return s.Foreground(tcell.PaletteColor(nickPalette[sp.color%nickColors])).Bold(true).Underline(true)
	case stMentionN:
		return s.Foreground(tcell.ColorBlack).Background(tcell.ColorYellow).Bold(true)
	case stMention:
		return s.Foreground(tcell.ColorYellow).Bold(true)
	case stEmote:
		return s.Italic(true)
	case stNote:
		return s.Foreground(tcell.ColorTeal)
	case stError:
		return s.Foreground(tcell.ColorRed).Bold(true)
	case stReadLine:
		return s.Foreground(tcell.ColorRed)
	}
	return s
}

// drawText draws clean text at (x, y), at most maxW cells, and returns the
// width drawn. It never interprets markup: text is drawn as it is (callers
// pass text that went through cleanLines/cleanInline).
func drawText(scr tcell.Screen, x, y, maxW int, text string, st tcell.Style) int {
	w := 0
	state := -1
	for len(text) > 0 && w < maxW {
		var c string
		var cw int
		c, text, cw, state = uniseg.FirstGraphemeClusterInString(text, state)
		if cw == 0 {
			continue
		}
		if w+cw > maxW {
			break
		}
		rs := []rune(c)
		for i := cw - 1; i > 0; i-- {
			scr.SetContent(x+w+i, y, ' ', nil, st) // the cells a wide character covers
		}
		scr.SetContent(x+w, y, rs[0], rs[1:], st)
		w += cw
	}
	return w
}

func fill(scr tcell.Screen, x, y, w int, st tcell.Style) {
	for i := 0; i < w; i++ {
		scr.SetContent(x+i, y, ' ', nil, st)
	}
}

// rootView lays out the four parts itself, so any terminal size (down to a
// single cell) gets a sane layout.
type rootView struct {
	*tview.Box
	u                          *UI
	listR, paneR, barR, inputR rect
	namesR                     rect // the names pane (F2), if shown
	drawnW, drawnH             int  // size of the last draw (tests)
}

type rect struct{ x, y, w, h int }

func (r rect) contains(x, y int) bool { return x >= r.x && x < r.x+r.w && y >= r.y && y < r.y+r.h }

func newRootView(u *UI) *rootView { return &rootView{Box: tview.NewBox(), u: u} }

func (v *rootView) layout() {
	x, y, w, h := v.GetRect()
	v.listR, v.paneR, v.barR, v.inputR, v.namesR = rect{}, rect{}, rect{}, rect{}, rect{}
	if w <= 0 || h <= 0 {
		return
	}
	v.inputR = rect{x, y + h - 1, w, 1}
	if h >= 2 {
		v.barR = rect{x, y + h - 2, w, 1}
	}
	top := max(h-2, 0)
	if top == 0 {
		return
	}
	lw := 0
	if w >= listMinWidth && len(v.u.chans.chans) > 0 {
		lw = v.u.listWidth(w)
	}
	if lw > 0 {
		v.listR = rect{x, y, lw, top}
	}
	v.paneR = rect{x + lw, y, w - lw, top}
	if v.u.showNames && v.u.chans.current() != nil && w-lw >= namesMinWidth {
		nw := v.u.namesWidth(w - lw)
		v.paneR.w -= nw
		v.namesR = rect{x + w - nw, y, nw, top}
	}
}

func (v *rootView) Draw(scr tcell.Screen) {
	v.layout()
	_, _, v.drawnW, v.drawnH = v.GetRect()
	u := v.u
	u.drawPane(scr, v.paneR)
	u.drawList(scr, v.listR)
	u.drawNames(scr, v.namesR)
	u.drawBar(scr, v.barR)
	u.drawInput(scr, v.inputR)
}

func (v *rootView) PasteHandler() func(string, func(tview.Primitive)) {
	return v.WrapPasteHandler(func(text string, _ func(tview.Primitive)) { v.u.pasted(text) })
}

func (v *rootView) MouseHandler() func(tview.MouseAction, *tcell.EventMouse, func(tview.Primitive)) (bool, tview.Primitive) {
	return v.WrapMouseHandler(func(action tview.MouseAction, ev *tcell.EventMouse, _ func(tview.Primitive)) (bool, tview.Primitive) {
		x, y := ev.Position()
		u := v.u
		switch action {
		case tview.MouseScrollUp:
			u.cur().scrollUp(3)
			return true, nil
		case tview.MouseScrollDown:
			u.scrollDown(3)
			return true, nil
		case tview.MouseLeftClick:
			if v.listR.contains(x, y) {
				u.switchTo(y - v.listR.y)
				return true, nil
			}
		}
		return false, nil
	})
}

// listWidth fits the longest channel name, within limits.
func (u *UI) listWidth(w int) int {
	n := 8
	for _, c := range u.chans.chans {
		n = max(n, textWidth(cleanInline(c.ch.Name, 0)))
	}
	return min(n+8, 24, w/3)
}

func (u *UI) drawPane(scr tcell.Screen, r rect) {
	if r.w <= 0 || r.h <= 0 {
		return
	}
	b := u.cur()
	rows := b.view(r.w, r.h, u.hidden)
	if b.wantOlder {
		b.wantOlder = false
		u.loadOlder(b)
	}
	y := r.y + r.h - len(rows) // bottom-aligned, like every chat client
	for _, rw := range rows {
		x := 0
		for _, sp := range rw {
			x += drawText(scr, r.x+x, y, r.w-x, sp.text, styleOf(sp))
		}
		y++
	}
}

func (u *UI) drawList(scr tcell.Screen, r rect) {
	if r.w <= 0 || r.h <= 0 {
		return
	}
	sepSt := tcell.StyleDefault.Foreground(tcell.ColorGray)
	for i := 0; i < r.h; i++ {
		scr.SetContent(r.x+r.w-1, r.y+i, '│', nil, sepSt)
	}
	w := r.w - 2
	for i, ci := range u.chans.chans {
		if i >= r.h {
			break
		}
		st := tcell.StyleDefault
		if i == u.chans.cur {
			st = st.Reverse(true).Bold(true)
		} else if ci.unread.Mentions > 0 {
			st = st.Foreground(tcell.ColorYellow).Bold(true)
		} else if ci.unread.Messages > 0 {
			st = st.Bold(true)
		}
		fill(scr, r.x, r.y+i, w+1, st)
		num := " "
		if i < 10 {
			num = strconv.Itoa((i + 1) % 10)
		}
		count := ""
		if i != u.chans.cur && ci.unread.Messages > 0 {
			count = compact(ci.unread.Messages)
			if ci.unread.Mentions > 0 {
				count += "!"
			}
		}
		nameW := max(w-2-textWidth(count)-1, 1)
		drawText(scr, r.x+1, r.y+i, 2, num, st)
		drawText(scr, r.x+3, r.y+i, nameW, truncateWidth(cleanInline(ci.ch.Name, 0), nameW), st)
		if count != "" {
			cst := st
			if ci.unread.Mentions > 0 && i != u.chans.cur {
				cst = cst.Foreground(tcell.ColorBlack).Background(tcell.ColorYellow)
			}
			drawText(scr, r.x+w-textWidth(count), r.y+i, textWidth(count), count, cst)
		}
	}
}

// compact shortens big counts for the channel list: 1204 -> "1.2k".
func compact(n int) string {
	switch {
	case n < 1000:
		return strconv.Itoa(n)
	case n < 10000:
		return strconv.FormatFloat(float64(n)/1000, 'f', 1, 64) + "k"
	case n < 1000000:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n/1000000) + "M"
}

// barText is the status bar: channel and topic on the left, network state
// (and scroll state) on the right.
func (u *UI) barText(width int) (left, right string, alert bool) {
	ci := u.chans.current()
	if ci == nil {
		return " kchat", "no channel", false
	}
	left = " " + chanLabel(ci)
	if t := cleanInline(ci.topic, 0); strings.TrimSpace(t) != "" {
		left += "  " + t
	}
	var parts []string
	b := u.cur()
	if b.scroll > 0 {
		if b.below > 0 {
			parts = append(parts, "↓ "+plural(b.below, "new message", "new messages"))
		} else {
			parts = append(parts, "↓ more (End)")
		}
	}
	if width < listMinWidth {
		if act := u.activity(); act != "" {
			parts = append(parts, act)
		}
	}
	n := ci.net
	switch {
	case n.Peers > 0:
		parts = append(parts, plural(n.Peers, "peer", "peers"))
	case n.Searching:
		parts = append(parts, "offline: searching for peers")
	case n.Known > 0:
		parts = append(parts, "offline ("+thousands(n.Known)+" known, none reachable)")
		alert = true
	default:
		parts = append(parts, "offline")
		alert = true
	}
	if n.Syncing() {
		parts = append(parts, "syncing "+thousands(int(n.Have))+"/"+thousands(int(n.Want)))
	}
	if n.Problem != "" {
		parts = append(parts, "⚠ "+cleanInline(n.Problem, 40))
	}
	return left, strings.Join(parts, " │ ") + " ", alert
}

// activity lists other channels with unread messages, irssi style:
// "act: 2,4!" (! marks mentions).
func (u *UI) activity() string {
	var xs []string
	for i, ci := range u.chans.chans {
		if i == u.chans.cur || ci.unread.Messages == 0 {
			continue
		}
		s := strconv.Itoa(i + 1)
		if ci.unread.Mentions > 0 {
			s += "!"
		}
		xs = append(xs, s)
	}
	if len(xs) == 0 {
		return ""
	}
	return "act: " + strings.Join(xs, ",")
}

func (u *UI) drawBar(scr tcell.Screen, r rect) {
	if r.w <= 0 || r.h <= 0 {
		return
	}
	st := tcell.StyleDefault.Background(tcell.ColorNavy).Foreground(tcell.ColorWhite)
	fill(scr, r.x, r.y, r.w, st)
	left, right, alert := u.barText(r.w)
	rw := min(textWidth(right), r.w)
	right = truncateWidth(right, rw)
	rst := st
	if alert {
		rst = rst.Foreground(tcell.ColorYellow).Bold(true)
	}
	drawText(scr, r.x+r.w-textWidth(right), r.y, rw, right, rst)
	lw := r.w - textWidth(right) - 1
	if lw > 0 {
		drawText(scr, r.x, r.y, lw, truncateWidth(left, lw), st.Bold(true))
	}
}

func (u *UI) prompt() string {
	if u.nick != "" {
		return "[" + cleanInline(u.nick, 16) + "] "
	}
	return "> "
}

func (u *UI) drawInput(scr tcell.Screen, r rect) {
	if r.w <= 0 || r.h <= 0 {
		return
	}
	fill(scr, r.x, r.y, r.w, tcell.StyleDefault)
	p := u.prompt()
	if textWidth(p) > r.w/3 {
		p = "> "
	}
	pw := drawText(scr, r.x, r.y, r.w, p, tcell.StyleDefault.Foreground(tcell.ColorTeal))
	cells, cx := u.ed.window(r.w - pw)
	x := r.x + pw
	for _, c := range cells {
		drawText(scr, x, r.y, c.w, c.s, tcell.StyleDefault)
		x += c.w
	}
	scr.ShowCursor(r.x+pw+cx, r.y)
}
