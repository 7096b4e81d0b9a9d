package ui

import (
	"strings"
	"testing"
)

// TestHostileBodyRenderedClean renders a hostile message through the whole
// path (views -> model -> layout -> drawn cells): escape sequences vanish
// with their tails, controls become visible symbols. drawText alone would
// drop the ESC and BEL (zero width) but draw "[2J" and "]0;pwned", and drop
// the control instead of showing it, so this fails if the layout skips the
// sanitiser on the message body.
func TestHostileBodyRenderedClean(t *testing.T) {
	b := newTestBackend(t)
	ch := b.channel("general")
	mallory := newPeer(t)
	b.post(mallory, ch, nick("mallory"), text("start A\x1b[2JB\x1b]0;pwned\x07C\x01D\u202eE\x1b[31mF end"))
	h := start(t, b, 100, 24)
	s := h.waitText("start A")
	if !strings.Contains(s, "start ABC\u2401DEF end") {
		t.Fatalf("hostile body not cleaned on screen, want %q:\n%s", "start ABC\u2401DEF end", s)
	}
	for _, bad := range []string{"[2J", "pwned", "[31m"} {
		if strings.Contains(s, bad) {
			t.Fatalf("escape sequence tail %q reached the screen:\n%s", bad, s)
		}
	}
}
