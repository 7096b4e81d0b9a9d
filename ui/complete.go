package ui

import "strings"

// completer is Tab completion on the editor: the word before the cursor is
// completed to a /command (at the start of the line) or a nickname; Tab
// again cycles through the other matches. Any other key ends the cycle.
type completer struct {
	active bool
	start  int // rune offset of the completed word
	end    int // rune offset after the inserted completion
	cands  []string
	i      int
}

func (c *completer) reset() { c.active = false }

// candidates lists what word can complete to: commands when the word is a
// /command at the start of the line, else nicknames (in the given order,
// most recent speakers first), matched case-insensitively by prefix.
func candidates(word string, atStart bool, commands, nicks []string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	if atStart && strings.HasPrefix(word, "/") {
		for _, c := range commands {
			if strings.HasPrefix(c, strings.ToLower(word)) {
				add(c)
			}
		}
		return out
	}
	lw := strings.ToLower(strings.TrimPrefix(word, "@"))
	for _, n := range nicks {
		if n != "" && strings.HasPrefix(strings.ToLower(n), lw) {
			add(n)
		}
	}
	return out
}

// complete performs one Tab press on e. cands is called with the word and
// whether it starts the line. It reports whether anything changed.
func (c *completer) complete(e *editor, cands func(word string, atStart bool) []string) bool {
	if c.active && len(c.cands) > 0 && c.end <= len(e.text) {
		c.i = (c.i + 1) % len(c.cands)
		c.replace(e)
		return true
	}
	start := e.cur
	for start > 0 && e.text[start-1] != ' ' && e.text[start-1] != '\n' {
		start--
	}
	word := string(e.text[start:e.cur])
	if word == "" {
		return false
	}
	list := cands(word, start == 0)
	if len(list) == 0 {
		return false
	}
	c.active, c.start, c.end, c.cands, c.i = true, start, e.cur, list, 0
	c.replace(e)
	return true
}

func (c *completer) replace(e *editor) {
	s := c.cands[c.i]
	switch {
	case strings.HasPrefix(s, "/"):
		s += " "
	case c.start == 0:
		s += ": "
	default:
		s += " "
	}
	rs := []rune(s)
	t := append([]rune(nil), e.text[:c.start]...)
	t = append(t, rs...)
	t = append(t, e.text[c.end:]...)
	e.text = t
	c.end = c.start + len(rs)
	e.cur = c.end
}
