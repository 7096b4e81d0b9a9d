package views

import (
	"testing"
	"time"
)

// Nicknames that render alike are told apart as exact collisions are: an
// invisible format character (category Cf) or a confusable letter (UTS #39
// skeleton) gets the ~suffix, and a Cf character is never displayed.
func TestLookalikeNicksGetSuffix(t *testing.T) {
	for _, c := range []struct {
		name, fake string
	}{
		{"zero width space", "alice\u200b"},
		{"word joiner", "al\u2060ice"},
		{"BOM", "\ufeffalice"},
		{"cyrillic a", "\u0430lice"},
		{"digit for letter", "a1ice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			alice, mallory := newAuthor(t), newAuthor(t)
			e.say(alice, t0, nick("alice"), text("hi"))
			e.say(mallory, t0.Add(time.Second), nick(c.fake), text("it's me, alice"))
			e.wait()
			shown := StripFormat(c.fake)
			if d := e.v.Display(e.d, alice.ID()); d != "alice~"+alice.ID().Short() {
				t.Errorf("alice shown as %q", d)
			}
			if d := e.v.Display(e.d, mallory.ID()); d != shown+"~"+mallory.ID().Short() {
				t.Errorf("%q shown as %q", c.fake, d)
			}
			ms, _ := e.v.Last(e.d, 10)
			for _, m := range ms {
				if m.Author == mallory.ID() && m.Display != shown+"~"+mallory.ID().Short() {
					t.Errorf("row shown as %q", m.Display)
				}
			}
		})
	}
	// A Cf character alone (no other claimant) still gets the suffix, and
	// is not shown.
	e := newEnv(t)
	m := newAuthor(t)
	e.say(m, t0, nick("bob\u200b"))
	e.wait()
	if d := e.v.Display(e.d, m.ID()); d != "bob~"+m.ID().Short() {
		t.Errorf("lone Cf nick shown as %q", d)
	}
	// Different nicks stay apart.
	x, y := newAuthor(t), newAuthor(t)
	e.say(x, t0, nick("carol"))
	e.say(y, t0, nick("caro"))
	e.wait()
	if d := e.v.Display(e.d, x.ID()); d != "carol" {
		t.Errorf("carol shown as %q", d)
	}
}
