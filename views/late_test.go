package views

import (
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TestLateMessagesMarked: a message indexed more than LateTolerance after
// the time it is placed at is Late (a backdated first message included);
// lateness is judged once, at first indexing: a rebuild, whose clock is
// later, does not mark everything late (it marks nothing).
func TestLateMessagesMarked(t *testing.T) {
	e := newEnv(t)
	bob, carol, dave := newAuthor(t), newAuthor(t), newAuthor(t)
	e.say(bob, t0.Add(-30*time.Minute), text("backdated"))
	e.say(carol, t0.Add(-5*time.Minute), text("a little late"))
	e.say(dave, t0.Add(3*time.Hour), text("from the future"))
	e.say(e.me, t0, text("mine"))
	e.wait()
	want := map[string]bool{"backdated": true, "a little late": false, "from the future": false, "mine": false}
	check := func(when string) {
		t.Helper()
		ms, err := e.v.Last(e.d, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != len(want) {
			t.Fatalf("%s: %d messages", when, len(ms))
		}
		for _, m := range ms {
			if m.Late != want[m.Text] {
				t.Errorf("%s: %q Late=%v", when, m.Text, m.Late)
			}
			if m.Kind != 1 && m.Kind != 2 { // text or emote: the flag must not leak into Kind
				t.Errorf("%s: %q kind %d", when, m.Text, m.Kind)
			}
		}
		arr, _ := e.v.Arrived(e.d, 0, 10)
		for _, m := range arr {
			if m.Late != want[m.Text] {
				t.Errorf("%s: Arrived %q Late=%v", when, m.Text, m.Late)
			}
		}
		if found, _, _ := e.v.Search(e.d, "backdated", "", 10); len(found) != 1 || found[0].Late != want["backdated"] {
			t.Errorf("%s: search %+v", when, found)
		}
	}
	check("indexed")

	// A rebuild a day later judges nothing again.
	e.v.Close()
	if err := e.db.Update(func(txn *badger.Txn) error {
		return writeState(txn, "messages", viewState{version: 999, clock: 4})
	}); err != nil {
		t.Fatal(err)
	}
	e.clock.Set(t0.Add(24 * time.Hour))
	e.openViews()
	e.wait()
	want["backdated"] = false // the rebuild cannot tell
	check("rebuilt")

	// Arrivals after the rebuild are judged with the clock again.
	e.say(carol, t0.Add(24*time.Hour-time.Minute), text("on time"))
	e.say(bob, t0.Add(23*time.Hour), text("an hour late"))
	e.wait()
	want["on time"], want["an hour late"] = false, true
	check("after")
}
