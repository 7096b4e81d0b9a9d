package ui

import (
	"strings"
	"testing"

	"github.com/gdamore/tcell/v2"
)

func TestParseKeyBindings(t *testing.T) {
	kb, err := ParseKeyBindings(strings.NewReader(`
# my keys
next-channel = Ctrl+O, Alt+Down   # like my old client
help = F2
kill-word = ctrl+w, Alt+Backspace
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"next-channel": "Ctrl+O, Alt+Down", "help": "F2", "kill-word": "Ctrl+W, Alt+Backspace"}
	for id, w := range want {
		var names []string
		for _, s := range kb[id] {
			names = append(names, s.String())
		}
		if got := strings.Join(names, ", "); got != w {
			t.Errorf("%s = %q, want %q", id, got, w)
		}
	}
	for _, bad := range []struct{ text, want string }{
		{"next-channel Ctrl+O", "line 1: want ACTION = KEY"},
		{"\nfly = Ctrl+O", "line 2: unknown action \"fly\""},
		{"help = Ctrl+Foo", "unknown key name \"Foo\""},
		{"help = x", "needs Ctrl+ or Alt+"},
		{"help = Hyper+X", "unknown modifier"},
		{"help = Ctrl+1", "Ctrl goes with a letter"},
		{"help = ", "empty key"},
	} {
		_, err := ParseKeyBindings(strings.NewReader(bad.text))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want an error with %q", bad.text, err, bad.want)
		}
	}
}

// TestKeyBindingsApplied: a rebound action answers to its new keys only,
// the key leaves the action that had it, and /help says so.
func TestKeyBindingsApplied(t *testing.T) {
	kb, err := ParseKeyBindings(strings.NewReader("next-channel = Ctrl+O\nhelp = Ctrl+P\n"))
	if err != nil {
		t.Fatal(err)
	}
	b := newTestBackend(t)
	b.channel("alpha")
	b.channel("beta")
	h := start(t, b, 120, 30, WithKeyBindings(kb))
	h.waitText("#alpha")
	current := func() string {
		var name string
		h.onUI(func() { name = h.u.chans.current().ch.Name })
		return name
	}
	h.key(tcell.KeyCtrlN, 0, tcell.ModCtrl) // no longer bound
	h.key(tcell.KeyCtrlO, 0, tcell.ModCtrl)
	h.waitFor("Ctrl+O switches", func(string) bool { return current() == "beta" })
	h.key(tcell.KeyCtrlP, 0, tcell.ModCtrl) // now help, not previous channel
	h.waitText("/quit")
	if current() != "beta" {
		t.Fatal("Ctrl+P still switches channels")
	}
	h.pressUntil(tcell.KeyPgUp, "[next-channel]")
	s := h.screen()
	if !strings.Contains(s, "Ctrl+O                 next channel [next-channel]") ||
		!strings.Contains(s, "Alt+Left               previous channel [prev-channel]") {
		t.Fatalf("help does not show the new keys:\n%s", s)
	}
}
