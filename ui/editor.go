package ui

import (
	"unicode"

	"github.com/rivo/uniseg"
)

// editor is the input line's model: text, cursor, kill buffer and the
// horizontal scroll that keeps the cursor visible. The cursor moves over
// grapheme clusters, so an emoji or a letter with accents is one step.
// Readline keys map onto its methods (see keys.go).
type editor struct {
	text []rune
	cur  int    // cursor, in runes
	kill []rune // last killed text, for Ctrl+Y
	off  int    // first grapheme shown
}

func (e *editor) String() string { return string(e.text) }

func (e *editor) empty() bool { return len(e.text) == 0 }

// set replaces the text and puts the cursor at the end.
func (e *editor) set(s string) {
	e.text = []rune(s)
	e.cur = len(e.text)
	e.off = 0
}

func (e *editor) clear() { e.set("") }

// insert inserts s at the cursor.
func (e *editor) insert(s string) {
	rs := []rune(s)
	t := make([]rune, 0, len(e.text)+len(rs))
	t = append(append(append(t, e.text[:e.cur]...), rs...), e.text[e.cur:]...)
	e.text = t
	e.cur += len(rs)
}

// bounds are the rune offsets where grapheme clusters start, plus the end.
func (e *editor) bounds() []int {
	b := []int{0}
	s := string(e.text)
	n := 0
	state := -1
	for len(s) > 0 {
		var c string
		c, s, _, state = uniseg.FirstGraphemeClusterInString(s, state)
		n += len([]rune(c))
		b = append(b, n)
	}
	return b
}

func (e *editor) left() {
	bs := e.bounds()
	for i := len(bs) - 1; i >= 0; i-- {
		if bs[i] < e.cur {
			e.cur = bs[i]
			return
		}
	}
}

func (e *editor) right() {
	for _, b := range e.bounds() {
		if b > e.cur {
			e.cur = b
			return
		}
	}
}

func (e *editor) home() { e.cur = 0 }
func (e *editor) end()  { e.cur = len(e.text) }

// backspace deletes the grapheme before the cursor.
func (e *editor) backspace() {
	at := e.cur
	e.left()
	e.text = append(e.text[:e.cur], e.text[at:]...)
}

// del deletes the grapheme under the cursor.
func (e *editor) del() {
	at := e.cur
	e.right()
	e.text = append(e.text[:at], e.text[e.cur:]...)
	e.cur = at
}

// killToEnd is Ctrl+K.
func (e *editor) killToEnd() {
	if e.cur < len(e.text) {
		e.kill = append([]rune(nil), e.text[e.cur:]...)
	}
	e.text = e.text[:e.cur]
}

// killToStart is Ctrl+U.
func (e *editor) killToStart() {
	if e.cur > 0 {
		e.kill = append([]rune(nil), e.text[:e.cur]...)
	}
	e.text = append([]rune(nil), e.text[e.cur:]...)
	e.cur = 0
}

// wordStart is where the word before the cursor starts (spaces before the
// cursor are skipped first, as readline's unix-word-rubout does).
func (e *editor) wordStart() int {
	i := e.cur
	for i > 0 && unicode.IsSpace(e.text[i-1]) {
		i--
	}
	for i > 0 && !unicode.IsSpace(e.text[i-1]) {
		i--
	}
	return i
}

// killWord is Ctrl+W.
func (e *editor) killWord() {
	s := e.wordStart()
	if s == e.cur {
		return
	}
	e.kill = append([]rune(nil), e.text[s:e.cur]...)
	e.text = append(e.text[:s], e.text[e.cur:]...)
	e.cur = s
}

// wordLeft and wordRight are Alt+B and Alt+F.
func (e *editor) wordLeft() { e.cur = e.wordStart() }

func (e *editor) wordRight() {
	i := e.cur
	for i < len(e.text) && unicode.IsSpace(e.text[i]) {
		i++
	}
	for i < len(e.text) && !unicode.IsSpace(e.text[i]) {
		i++
	}
	e.cur = i
}

// yank is Ctrl+Y: insert the last killed text.
func (e *editor) yank() { e.insert(string(e.kill)) }

// cell is one grapheme as drawn: text and width in cells.
type cell struct {
	s string
	w int
}

// cells returns the visible form of every grapheme and the index of the
// grapheme at the cursor. Line breaks (from a paste) show as ⏎ and other
// control characters as their symbols; the text itself is unchanged.
func (e *editor) cells() ([]cell, int) {
	var out []cell
	curIdx := -1
	n := 0
	s := string(e.text)
	state := -1
	for len(s) > 0 {
		if n >= e.cur && curIdx < 0 {
			curIdx = len(out)
		}
		var c string
		var w int
		c, s, w, state = uniseg.FirstGraphemeClusterInString(s, state)
		n += len([]rune(c))
		shown := cleanInline(c, 0)
		if c == "\n" || c == "\r\n" || c == "\r" {
			shown = "⏎"
		}
		if shown != c {
			w = textWidth(shown)
		}
		if w == 0 {
			shown, w = "\u00a0"+shown, 1
		}
		out = append(out, cell{shown, w})
	}
	if curIdx < 0 {
		curIdx = len(out)
	}
	return out, curIdx
}

// window returns the cells to draw in width cells and the cursor's column,
// scrolling horizontally so the cursor stays visible.
func (e *editor) window(width int) ([]cell, int) {
	cs, ci := e.cells()
	if width < 1 {
		return nil, 0
	}
	if e.off > ci {
		e.off = ci
	}
	if e.off > len(cs) {
		e.off = len(cs)
	}
	// Move the window right until the cursor (plus its cell) fits.
	for {
		w := 1 // the cursor cell at the end
		for i := e.off; i < ci; i++ {
			w += cs[i].w
		}
		if w <= width || e.off >= ci {
			break
		}
		e.off++
	}
	var out []cell
	w, x := 0, 0
	for i := e.off; i < len(cs); i++ {
		if w+cs[i].w > width {
			break
		}
		if i == ci {
			x = w
		}
		out = append(out, cs[i])
		w += cs[i].w
	}
	if ci >= len(cs) {
		x = w
	}
	return out, x
}
