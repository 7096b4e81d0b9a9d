package ui

import (
	"strconv"
	"strings"

	"github.com/rivo/uniseg"
)

// Display-width helpers. Widths are terminal cells as uniseg measures them
// (CJK and most emoji are two cells wide).

// textWidth is the display width of s.
func textWidth(s string) int { return uniseg.StringWidth(s) }

// truncateWidth cuts s to at most max cells, ending in "…" when cut.
func truncateWidth(s string, max int) string {
	if max <= 0 {
		return ""
	}
	if textWidth(s) <= max {
		return s
	}
	var b strings.Builder
	w := 0
	state := -1
	for len(s) > 0 {
		var c string
		var cw int
		c, s, cw, state = uniseg.FirstGraphemeClusterInString(s, state)
		if w+cw > max-1 {
			break
		}
		b.WriteString(c)
		w += cw
	}
	b.WriteString("…")
	return b.String()
}

// padLeft right-aligns s in width cells (s must already fit).
func padLeft(s string, width int) string {
	if n := width - textWidth(s); n > 0 {
		return strings.Repeat(" ", n) + s
	}
	return s
}

// wrapRanges word-wraps the single line s to width cells and returns the
// byte ranges [start, end) of the resulting lines, trailing spaces dropped.
// Words longer than width are broken between characters. At least one range
// is returned.
func wrapRanges(s string, width int) [][2]int {
	if width < 1 {
		width = 1
	}
	var out [][2]int
	start, end := 0, 0 // current line: s[start:end] plus pending spaces
	lineW := 0
	pos := 0
	state := -1
	for pos < len(s) {
		seg, _, _, st := uniseg.FirstLineSegmentInString(s[pos:], state)
		state = st
		segStart, segEnd := pos, pos+len(seg)
		pos = segEnd
		trimmed := strings.TrimRight(seg, " ")
		tw := textWidth(trimmed)
		if lineW+tw <= width {
			end = segStart + len(trimmed)
			lineW += textWidth(seg)
			continue
		}
		if end > start || lineW > 0 {
			out = append(out, [2]int{start, end})
		}
		// The segment starts a new line, broken into pieces if too wide.
		start, end, lineW = segStart, segStart, 0
		for {
			rest := s[start : segStart+len(trimmed)]
			if textWidth(rest) <= width {
				break
			}
			cut := cutWidth(rest, width)
			if cut >= len(rest) {
				break // one character wider than the line: it stays whole
			}
			out = append(out, [2]int{start, start + cut})
			start += cut
		}
		end = segStart + len(trimmed)
		lineW = textWidth(s[start:segEnd])
	}
	out = append(out, [2]int{start, end})
	return out
}

// cutWidth returns how many bytes of s fit in width cells (at least one
// character, so a wide character in a one-cell space still progresses).
func cutWidth(s string, width int) int {
	n, w := 0, 0
	state := -1
	rest := s
	for len(rest) > 0 {
		c, r, cw, st := uniseg.FirstGraphemeClusterInString(rest, state)
		if w+cw > width && n > 0 {
			break
		}
		n += len(c)
		w += cw
		rest, state = r, st
		if w >= width {
			break
		}
	}
	return n
}

// thousands formats n with comma separators: 1204 -> "1,204".
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// plural returns "1 message" / "2 messages".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return thousands(n) + " " + many
}
