package views

import (
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/kchat-p2p/kchat/feed"
)

func (e *env) unread() Unread {
	e.t.Helper()
	e.wait()
	u, err := e.v.Unread(e.d)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// TestUnreadModHiddenBefore: a message a moderator hid before it was
// indexed is not counted, nor is its mention; a hide by someone who is no
// moderator changes nothing. Also when the hide and the message are
// indexed in one chunk, whichever arrived first.
func TestUnreadModHiddenBefore(t *testing.T) {
	adm := newAuthor(t)
	e := newEnvAdmins(t, []*author{adm})
	bob, nobody := newAuthor(t), newAuthor(t)
	e.say(e.me, t0, nick("ann"))
	// adm hides bob's message 0 before bob wrote it (or before it came).
	e.say(adm, t0, modMsg(feed.ModHide, bob, 0))
	e.say(nobody, t0, modMsg(feed.ModHide, bob, 1))
	e.wait()
	e.say(bob, t0.Add(time.Second), text("hey ann"), text("ann again"), text("hello"))
	if u := e.unread(); u != (Unread{Messages: 2, Mentions: 1}) {
		t.Fatalf("unread %+v, want 2 and 1 mention (message 0 hidden, nobody's hide does not count)", u)
	}

	// One chunk: the views are closed while the entries arrive, so the
	// catch-up indexes them together. The hide arrives after the message,
	// then before.
	e.v.Close()
	e.say(bob, t0.Add(2*time.Second), text("ann 3"))
	e.say(adm, t0.Add(2*time.Second), modMsg(feed.ModHide, bob, 3))
	e.reopen()
	if u := e.unread(); u != (Unread{Messages: 2, Mentions: 1}) {
		t.Fatalf("unread %+v, want 2 and 1 (hidden after it in its chunk)", u)
	}
	e.v.Close()
	e.say(adm, t0.Add(3*time.Second), modMsg(feed.ModHide, bob, 5))
	e.say(bob, t0.Add(3*time.Second), text("ann 4"), text("ann 5"))
	e.reopen()
	if u := e.unread(); u != (Unread{Messages: 3, Mentions: 2}) {
		t.Fatalf("unread %+v, want 3 and 2 (hidden before it in its chunk)", u)
	}
}

// TestUnreadModHiddenAfter: a hide indexed after the message it targets
// was counted takes it off the count and off the mentions; an unhide puts
// it back; a hide of a message already read changes nothing, and counts
// never go below zero.
func TestUnreadModHiddenAfter(t *testing.T) {
	adm := newAuthor(t)
	e := newEnvAdmins(t, []*author{adm})
	bob := newAuthor(t)
	e.say(e.me, t0, nick("ann"))
	e.say(bob, t0.Add(time.Second), text("hey ann"), text("hello"), emote("waves at ann"))
	if u := e.unread(); u != (Unread{Messages: 3, Mentions: 2}) {
		t.Fatalf("unread %+v", u)
	}
	e.say(adm, t0.Add(2*time.Second), modMsg(feed.ModHide, bob, 0))
	if u := e.unread(); u != (Unread{Messages: 2, Mentions: 1}) {
		t.Fatalf("after the hide %+v, want 2 and 1", u)
	}
	e.say(adm, t0.Add(2*time.Second), modMsg(feed.ModHide, bob, 1))
	if u := e.unread(); u != (Unread{Messages: 1, Mentions: 1}) {
		t.Fatalf("after hiding a non-mention %+v, want 1 and 1", u)
	}
	// A hide again (adm's later entry about the same message) and a
	// restart change nothing.
	e.say(adm, t0.Add(2*time.Second), modMsg(feed.ModHide, bob, 1))
	e.reopen()
	if u := e.unread(); u != (Unread{Messages: 1, Mentions: 1}) {
		t.Fatalf("after a second hide and a restart %+v, want 1 and 1", u)
	}
	e.say(adm, t0.Add(3*time.Second), modMsg(feed.ModUnhide, bob, 0))
	if u := e.unread(); u != (Unread{Messages: 2, Mentions: 2}) {
		t.Fatalf("after the unhide %+v, want 2 and 2", u)
	}

	// No row per unread message ("v U", an earlier design): the counts
	// above come from recounts.
	if n := countKeys(t, e.db, []byte{'v', 'U'}); n != 0 {
		t.Fatalf("%d per-message unread rows", n)
	}
	// Read: a hide of a read message does not count down.
	if err := e.v.MarkRead(e.d); err != nil {
		t.Fatal(err)
	}
	e.say(bob, t0.Add(4*time.Second), text("new"))
	e.say(adm, t0.Add(5*time.Second), modMsg(feed.ModHide, bob, 2), modMsg(feed.ModHide, bob, 0))
	if u := e.unread(); u != (Unread{Messages: 1}) {
		t.Fatalf("after hiding read messages %+v, want the 1 new", u)
	}
	e.say(adm, t0.Add(5*time.Second), modMsg(feed.ModHide, bob, 3))
	if u := e.unread(); u != (Unread{}) {
		t.Fatalf("after hiding the new one %+v, want 0", u)
	}
}

// TestUnreadModBlock: a moderation block of an author takes their counted
// messages off the counts and keeps their new ones out; so does a hide of
// the author, by a moderator the local user follows (following and
// unfollowing count at once). A role holder's messages cannot be hidden.
func TestUnreadModBlock(t *testing.T) {
	adm := newAuthor(t)
	e := newEnvAdmins(t, []*author{adm})
	bob, carol, mod := newAuthor(t), newAuthor(t), newAuthor(t)
	e.say(e.me, t0, nick("ann"))
	e.say(bob, t0.Add(time.Second), text("ann ann"), text("spam"))
	e.say(carol, t0.Add(time.Second), text("hi ann"))
	if u := e.unread(); u != (Unread{Messages: 3, Mentions: 2}) {
		t.Fatalf("unread %+v", u)
	}
	e.say(adm, t0.Add(2*time.Second), modOn(feed.ModBlock, bob, "spam"))
	if u := e.unread(); u != (Unread{Messages: 1, Mentions: 1}) {
		t.Fatalf("after the block %+v, want carol's 1 and 1", u)
	}
	e.say(bob, t0.Add(3*time.Second), text("ann, still here"))
	if u := e.unread(); u != (Unread{Messages: 1, Mentions: 1}) {
		t.Fatalf("a blocked author's new message counts: %+v", u)
	}

	// mod is nobody until followed; then their hide of carol counts.
	e.say(mod, t0.Add(4*time.Second), modOn(feed.ModHide, carol, ""))
	if u := e.unread(); u != (Unread{Messages: 1, Mentions: 1}) {
		t.Fatalf("an unfollowed author's hide counts: %+v", u)
	}
	// Following and unfollowing (local settings, no entry) judge the
	// counted messages again.
	if err := e.v.SetFollow(e.d, mod.ID(), true); err != nil {
		t.Fatal(err)
	}
	if u := e.unread(); u != (Unread{}) {
		t.Fatalf("after following the moderator who hid carol %+v, want 0", u)
	}
	if err := e.v.ClearFollow(e.d, mod.ID()); err != nil {
		t.Fatal(err)
	}
	if u := e.unread(); u != (Unread{Messages: 1, Mentions: 1}) {
		t.Fatalf("after unfollowing %+v, want carol's 1 and 1 back", u)
	}
	if err := e.v.SetFollow(e.d, mod.ID(), true); err != nil {
		t.Fatal(err)
	}
	e.say(mod, t0.Add(5*time.Second), modOn(feed.ModHide, carol, "again"))
	if u := e.unread(); u != (Unread{}) {
		t.Fatalf("after a followed moderator hides carol again %+v, want 0", u)
	}
	e.say(carol, t0.Add(6*time.Second), text("ann?"))
	e.say(adm, t0.Add(6*time.Second), text("ann: admin here"))
	e.say(bob, t0.Add(6*time.Second), modOn(feed.ModBlock, adm, ""))
	if u := e.unread(); u != (Unread{Messages: 1, Mentions: 1}) {
		t.Fatalf("unread %+v, want only the admin's message", u)
	}

	// The unblock brings bob's messages back (all three are after the
	// marker).
	e.say(adm, t0.Add(7*time.Second), modOn(feed.ModUnblock, bob, ""))
	if u := e.unread(); u != (Unread{Messages: 4, Mentions: 3}) {
		t.Fatalf("after the unblock %+v, want 4 and 3", u)
	}
}

// TestUnreadModRebuildAlone: the unread view rebuilds alone, in small
// chunks, while the messages view holds every row already. A chunk with a
// moderation entry recounts only up to its own last message: the later
// ones are counted when their chunks come.
func TestUnreadModRebuildAlone(t *testing.T) {
	adm := newAuthor(t)
	e := newEnvAdmins(t, []*author{adm}, withChunk(3))
	bob := newAuthor(t)
	e.say(e.me, t0, nick("ann"))
	e.say(adm, t0, modMsg(feed.ModHide, bob, 1))
	e.say(bob, t0.Add(time.Second), text("ann 0"), text("ann 1"), text("2"), text("3"), text("ann 4"), text("5"))
	want := Unread{Messages: 5, Mentions: 2}
	if u := e.unread(); u != want {
		t.Fatalf("unread %+v, want %+v", u, want)
	}
	e.v.Close()
	if err := e.db.Update(func(txn *badger.Txn) error {
		return writeState(txn, "unread", viewState{version: 999, clock: e.st.Last()})
	}); err != nil {
		t.Fatal(err)
	}
	e.openViews()
	if u := e.unread(); u != want {
		t.Fatalf("after a rebuild of the unread view %+v, want %+v", u, want)
	}
}

// TestUnreadModCatchUp: a catch-up in many chunks, with hides (and an
// unhide) arriving chunks after the messages they target, ends with the
// counts a recount gives: the recount waits until the indexer has caught
// up (the channel is marked meanwhile), then runs once. Both with nothing
// read before (the rows are scanned) and with a read marker (the arrival
// index after it is).
func TestUnreadModCatchUp(t *testing.T) {
	for _, readFirst := range []bool{false, true} {
		t.Run(map[bool]string{false: "never read", true: "read before"}[readFirst], func(t *testing.T) {
			adm := newAuthor(t)
			e := newEnvAdmins(t, []*author{adm}, withChunk(10))
			bob, carol := newAuthor(t), newAuthor(t)
			e.say(e.me, t0, nick("ann"))
			if readFirst {
				e.say(carol, t0, text("read already, ann"))
				e.wait()
				if err := e.v.MarkRead(e.d); err != nil {
					t.Fatal(err)
				}
			}
			e.v.Close()
			at := t0.Add(time.Second)
			var bobs []feed.Payload
			for i := range 50 {
				if i%5 == 0 {
					bobs = append(bobs, text(fmt.Sprintf("ann %d", i)))
				} else {
					bobs = append(bobs, text(fmt.Sprintf("%d", i)))
				}
			}
			e.say(bob, at, bobs[:30]...)
			// 0 and 5 mention ann; 7 does not. Hidden long after they came.
			e.say(adm, at, modMsg(feed.ModHide, bob, 0), modMsg(feed.ModHide, bob, 5), modMsg(feed.ModHide, bob, 7))
			e.say(bob, at, bobs[30:]...)
			e.say(adm, at, modMsg(feed.ModUnhide, bob, 5))
			// More than a chunk after the last moderation entry: its
			// chunk is behind too.
			e.say(carol, at, texts("carol ", 30)...)
			e.reopen()
			// bob: 50, less 0 and 7 (5 was unhidden); carol: 30.
			// Mentions: bob's 0, 5, ..., 45 are 10, less 0.
			if u := e.unread(); u != (Unread{Messages: 78, Mentions: 9}) {
				t.Fatalf("unread after the catch-up %+v, want 78 and 9", u)
			}
			if n := countKeys(t, e.db, prefix(tagRecount)); n != 0 {
				t.Fatalf("%d recount marks left after catching up", n)
			}
		})
	}
}
