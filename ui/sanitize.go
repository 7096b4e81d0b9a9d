package ui

import "github.com/kchat-p2p/kchat/internal/termtext"

// Text from peers is untrusted. Everything that reaches the screen from a
// message, a nickname, a topic or a channel name goes through cleanLines or
// cleanInline first (internal/termtext, the one sanitiser, shared with the
// command line), and the message pane never parses markup (it draws cells
// itself), so a message can neither style the screen nor move the cursor
// nor fake a line from someone else.

// maxShownLines caps how many lines of one message are shown; the rest is
// summarised, so one 16 KiB message of newlines cannot fill the scrollback.
const maxShownLines = 50

// cleanLines makes untrusted text safe to draw and splits it into the lines
// its author wrote (termtext.Lines). The result has at least one element.
func cleanLines(s string) []string { return termtext.Lines(s) }

// cleanInline is cleanLines for one-line fields (nicknames, topics, channel
// names, peer ids): line breaks become a visible ⏎ and the result is cut to
// max display cells (0: no limit) with an ellipsis.
func cleanInline(s string, max int) string {
	out := termtext.Inline(s)
	if max > 0 {
		out = truncateWidth(out, max)
	}
	return out
}

func isBidiControl(r rune) bool { return termtext.IsBidiControl(r) }
