package ui

// history is the input history: Up recalls older sent lines, Down newer
// ones and finally the draft the user was typing.
type history struct {
	lines []string
	pos   int // index into lines while browsing; len(lines) when not
	draft string
}

const historyMax = 500

// add records a sent line and stops browsing.
func (h *history) add(s string) {
	if s != "" && (len(h.lines) == 0 || h.lines[len(h.lines)-1] != s) {
		h.lines = append(h.lines, s)
		if len(h.lines) > historyMax {
			h.lines = append([]string(nil), h.lines[len(h.lines)-historyMax:]...)
		}
	}
	h.pos = len(h.lines)
	h.draft = ""
}

// up returns the previous line, given the current input (saved as the
// draft when browsing starts); ok is false at the oldest line.
func (h *history) up(cur string) (string, bool) {
	if h.pos > len(h.lines) {
		h.pos = len(h.lines)
	}
	if h.pos == 0 {
		return cur, false
	}
	if h.pos == len(h.lines) {
		h.draft = cur
	}
	h.pos--
	return h.lines[h.pos], true
}

// down returns the next line, or the draft after the newest.
func (h *history) down(cur string) (string, bool) {
	if h.pos >= len(h.lines) {
		return cur, false
	}
	h.pos++
	if h.pos == len(h.lines) {
		return h.draft, true
	}
	return h.lines[h.pos], true
}

// reset stops browsing (the input line now holds another channel's draft).
func (h *history) reset() {
	h.pos = len(h.lines)
	h.draft = ""
}
