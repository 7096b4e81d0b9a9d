package ui

import (
	"context"
	"strings"
	"testing"

	"github.com/gdamore/tcell/v2"
)

// sidebar is the channel list column of the screen (left of the first │).
func sidebar(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if i := strings.Index(l, "│"); i >= 0 {
			out = append(out, strings.TrimSpace(l[:i]))
		}
	}
	return strings.Join(out, "\n")
}

// statusLine is the status bar (the line above the input line).
func statusLine(s string) string {
	ls := strings.Split(s, "\n")
	return ls[len(ls)-2]
}

// TestPartThroughControlSocket: a channel left by another process (`kchat
// part` through the control socket) leaves the running UI's sidebar; Alt+N
// and sending follow the list as it is now.
func TestPartThroughControlSocket(t *testing.T) {
	b := newTestBackend(t)
	b.channel("general")
	random := b.channel("random")
	zzz := b.channel("zzz")
	h := start(t, b, 100, 24)
	h.waitFor("three channels", func(s string) bool { return strings.Contains(sidebar(s), "zzz") })
	h.key(tcell.KeyRune, '3', tcell.ModAlt)
	h.waitFor("#zzz current", func(s string) bool { return strings.Contains(statusLine(s), "#zzz") })

	if err := b.Part(context.Background(), zzz.ID()); err != nil {
		t.Fatal(err)
	}
	b.changed()
	h.waitFor("zzz gone from the sidebar", func(s string) bool { return !strings.Contains(sidebar(s), "zzz") })
	h.waitFor("another channel current", func(s string) bool { return !strings.Contains(statusLine(s), "#zzz") })

	// Alt+2 is #random, and a line typed there is sent there.
	h.key(tcell.KeyRune, '2', tcell.ModAlt)
	h.waitFor("#random current", func(s string) bool { return strings.Contains(statusLine(s), "#random") })
	h.typeLine("still here")
	h.waitText("│ still here")
	if ms, err := b.v.Last(random.ID(), 5); err != nil || len(ms) != 1 || ms[0].Text != "still here" {
		t.Fatalf("#random holds %+v, %v", ms, err)
	}
	// A channel joined from outside appears.
	if _, err := b.Create(context.Background(), "outside"); err != nil {
		t.Fatal(err)
	}
	b.changed()
	h.waitFor("#outside listed", func(s string) bool { return strings.Contains(sidebar(s), "outside") })
}
