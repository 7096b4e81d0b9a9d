package views

import (
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
)

func TestNickCollisionDisplay(t *testing.T) {
	e := newEnv(t)
	bob1, bob2, carol, tilde := newAuthor(t), newAuthor(t), newAuthor(t), newAuthor(t)

	e.say(bob1, t0, nick("bob"), text("I am bob"))
	e.wait()
	if d := e.v.Display(e.d, bob1.ID()); d != "bob" {
		t.Fatalf("display %q", d)
	}
	// Another author claims the nick (case-insensitively): both are marked.
	e.say(bob2, t0.Add(time.Second), nick("Bob"), text("no, I am Bob"))
	e.say(carol, t0.Add(2*time.Second), text("who is who?"))
	e.say(tilde, t0, nick("bob~"+bob1.ID().Short()))
	e.wait()
	want := map[*author]string{
		bob1:  "bob~" + bob1.ID().Short(),
		bob2:  "Bob~" + bob2.ID().Short(),
		carol: carol.ID().Short(),
		tilde: "bob~" + bob1.ID().Short() + "~" + tilde.ID().Short(),
	}
	for a, w := range want {
		if d := e.v.Display(e.d, a.ID()); d != w {
			t.Errorf("display %q, want %q", d, w)
		}
	}
	if n := e.v.Nick(e.d, bob2.ID()); n != "Bob" {
		t.Fatalf("nick %q", n)
	}
	if n := e.v.Nick(e.d, carol.ID()); n != "" {
		t.Fatalf("carol's nick %q", n)
	}
	ms, _ := e.v.Last(e.d, 10)
	for _, m := range ms {
		if m.Text == "I am bob" && (m.Display != want[bob1] || m.Nick != "bob") {
			t.Fatalf("row display %q nick %q", m.Display, m.Nick)
		}
	}

	// Bob 2 renames: the collision is gone, in rows too (nicks are resolved
	// when read, the cache is invalidated by the indexer).
	e.say(bob2, t0.Add(3*time.Second), nick("robert"))
	e.wait()
	if d := e.v.Display(e.d, bob1.ID()); d != "bob" {
		t.Fatalf("after rename: %q", d)
	}
	ms, _ = e.v.Last(e.d, 10)
	for _, m := range ms {
		switch m.Author {
		case bob1.ID():
			if m.Display != "bob" {
				t.Errorf("bob1 row %q", m.Display)
			}
		case bob2.ID():
			if m.Display != "robert" || m.Nick != "robert" {
				t.Errorf("bob2 row %q", m.Display)
			}
		}
	}
	// Nicknames are per channel.
	other := newEnv(t)
	if d := other.v.Display(other.d, bob1.ID()); d != bob1.ID().Short() {
		t.Fatalf("other channel %q", d)
	}
	// Invalid nick entries (empty, too long) are ignored.
	e.apply(bob1, []feed.Entry{bob1.entryRaw(e.d, t0, []byte{0xa1, 0x01, 0x04})}) // {1: nick}, no text
	e.wait()
	if n := e.v.Nick(e.d, bob1.ID()); n != "bob" {
		t.Fatalf("empty nick entry changed the nick to %q", n)
	}
}
