package ui

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/views"
)

// modTestBackend is the test backend with moderation, following admins.
type modTestBackend struct {
	*testBackend
	admins []feed.AuthorID
}

var _ ModBackend = (*modTestBackend)(nil)

func (m *modTestBackend) Moderation(ch feed.DiscoveryID) (*views.ModState, error) {
	return m.v.Moderation(ch, m.admins)
}

func (m *modTestBackend) ModEvents(ch feed.DiscoveryID, after uint64, n int) ([]views.ModEntry, error) {
	return m.v.ModEvents(ch, after, n)
}

func (m *modTestBackend) ModGeneration() uint64 { return m.v.ModGeneration() }

func (m *modTestBackend) Mod(ctx context.Context, ch feed.DiscoveryID, action feed.ModAction, target feed.AuthorID, msg bool, seq uint64, reason string) (feed.Entry, error) {
	p := feed.Payload{Kind: feed.KindMod, Action: action, Reason: reason}
	if msg {
		p.Ref = feed.NewRef(target, seq)
	} else {
		p.Target = target[:]
	}
	es, err := m.st.Append(ctx, m.id, ch, p)
	if err != nil {
		return feed.Entry{}, err
	}
	return es[0], nil
}

func (m *modTestBackend) Follow(ch feed.DiscoveryID, a feed.AuthorID, follow bool) error {
	return m.v.SetFollow(ch, a, follow)
}

func modPayload(action feed.ModAction, target *feed.Identity, reason string) feed.Payload {
	id := target.ID()
	return feed.Payload{Kind: feed.KindMod, Action: action, Target: id[:], Reason: reason}
}

// TestModUI: an admin's hide of an author collapses their messages into
// one line; /show expands it; a moderation entry that arrives is a
// one-line notice; /ban writes a block entry and says the user holds no
// role; /mod list shows the roles.
func TestModUI(t *testing.T) {
	b := newTestBackend(t)
	ch := b.channel("general")
	adm, mallory, bob := newPeer(t), newPeer(t), newPeer(t)
	mb := &modTestBackend{testBackend: b, admins: []feed.AuthorID{adm.ID()}}
	now := time.Now()
	b.replicate(bob, ch, now.Add(-3*time.Minute), nick("bob"), text("hello from bob"))
	b.replicate(mallory, ch, now.Add(-2*time.Minute), nick("mallory"), text("spam one"), text("spam two"))
	b.replicate(adm, ch, now.Add(-time.Minute), nick("boss"), modPayload(feed.ModHide, mallory, "spam"))
	b.catchUp()

	h := startOn(t, mb, b, 110, 30)

	s := h.waitText("2 messages hidden by boss — /show")
	if strings.Contains(s, "spam one") || !strings.Contains(s, "hello from bob") {
		t.Fatalf("hidden messages shown, or others hidden:\n%s", s)
	}
	h.typeLine("/search spam")
	h.waitText(`0 matches for "spam"`)
	// The names pane leaves mallory out, as a blocked author, until /show.
	h.key(tcell.KeyF2, 0, tcell.ModNone)
	s = h.waitText("● boss") // the pane is drawn
	if strings.Contains(s, "mallory") || !strings.Contains(s, "bob") {
		t.Fatalf("the names pane lists a hidden author:\n%s", s)
	}
	h.typeLine("/show")
	h.waitText("spam two")
	h.waitText("mallory")
	h.typeLine("/show")
	h.waitGone("spam two")
	h.key(tcell.KeyF2, 0, tcell.ModNone)

	b.replicate(adm, ch, now, modPayload(feed.ModAddMod, bob, "helps"))
	h.waitText("boss made bob a moderator (helps)")

	h.typeLine("/ban mallory flooding")
	h.waitText("You hold no role here")
	head, err := b.st.Head(ch.ID(), b.Self())
	if err != nil {
		t.Fatal(err)
	}
	last, err := b.st.Get(ch.ID(), b.Self(), head.Len-1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := feed.UnmarshalPayload(last.Payload)
	if err != nil || p.Kind != feed.KindMod || p.Action != feed.ModBlock || p.Reason != "flooding" {
		t.Fatalf("last own entry %+v (%v), want a block of mallory", p, err)
	}
	if a, ok := p.TargetID(); !ok || a != mallory.ID() {
		t.Fatalf("block target %v", a)
	}

	h.typeLine("/mod list")
	s = h.waitText("Moderation in #general")
	for _, want := range []string{"admin boss", "mod bob", "boss hid mallory (spam)"} {
		if !strings.Contains(s, want) {
			t.Fatalf("/mod list lacks %q:\n%s", want, s)
		}
	}
	h.typeLine("/mod frobnicate x")
	h.waitText("Unknown /mod verb")
}

// TestNamesTextRoles: /names marks roles.
func TestNamesTextRoles(t *testing.T) {
	var a, b feed.AuthorID
	a[0], b[0] = 1, 2
	var m feed.AuthorID
	m[0] = 4
	got := namesText("general", []Member{
		{Author: a, Display: "alice", Messages: 1, Role: "admin"},
		{Author: b, Display: "bob", Messages: 3, Role: "mod"},
		{Author: m, Display: "mallory", Messages: 2, Hidden: true},
	}, a)
	want := "#general: 3 authors\n  alice  1 message  (you)  [admin]\n  bob  3 messages  [mod]\n  mallory  2 messages  [hidden]"
	if got != want {
		t.Fatalf("%q\nwant %q", got, want)
	}
	// The names pane (F2) marks them as IRC marks operators.
	var c feed.AuthorID
	c[0] = 3
	for m, want := range map[Member]string{
		{Author: a, Display: "alice", Role: "admin"}: "@alice",
		{Author: b, Display: "bob", Role: "mod"}:     "+bob",
		{Author: c, Display: "carol"}:                "carol",
	} {
		if got := paneName(m); got != want {
			t.Errorf("pane shows %q, want %q", got, want)
		}
	}
	for _, line := range []string{"/mod list", "/ban x", "/unban x", "/show"} {
		if _, _, ok := parseCommand(line); !ok {
			t.Fatalf("%s is not a command", line)
		}
	}
}

// TestModHiddenMentionIsSilent: a mention by an author moderation hides,
// in a channel the user is not looking at, rings no bell and makes no
// notification (its line is collapsed, and it does not count as unread);
// a mention by someone not hidden does both.
func TestModHiddenMentionIsSilent(t *testing.T) {
	b, _, other, _, _ := withOldMentions(t, 0, "")
	adm, mallory, bob := newPeer(t), newPeer(t), newPeer(t)
	mb := &modTestBackend{testBackend: b, admins: []feed.AuthorID{adm.ID()}}
	b.post(adm, other, modPayload(feed.ModHide, mallory, "spam"))
	nl := &notifyLog{format: func(_, body string) string { return body }}
	notify, notices := nl.notify, nl.list
	h := startOn(t, mb, b, 100, 24, WithNotify(notify))
	h.waitText("#general")

	b.post(mallory, other, text("alice: hidden ping"))
	// Then a plain message from bob: once the UI counts it, it has handled
	// mallory's too (arrivals are handled in order).
	b.post(bob, other, text("plain"))
	h.waitFor("bob's message counted", func(string) bool {
		var n views.Unread
		h.onUI(func() { n = h.u.chans.get(other.ID()).unread })
		return n.Messages >= 1
	})
	if n := h.scr.beeps.Load(); n != 0 {
		t.Fatalf("a hidden author's mention rang %d bells", n)
	}
	if n := notices(); len(n) != 0 {
		t.Fatalf("a hidden author's mention notified: %q", n)
	}
	b.post(bob, other, text("alice: real ping"))
	h.waitFor("a notification", func(string) bool { return len(notices()) > 0 })
	if n := notices(); len(n) != 1 || n[0] != "alice: real ping" {
		t.Fatalf("notifications %q", n)
	}
}

// TestModHiddenLateIsNotQuoted: a backdated message of an author
// moderation hides is collapsed like the rest of theirs: no "arrived late"
// note quotes it, no clock-skew note names them, and a reply to it does
// not quote it; another author's backdated message still gets its note.
func TestModHiddenLateIsNotQuoted(t *testing.T) {
	b := newTestBackend(t)
	ch := b.channel("general")
	adm, mallory, bob := newPeer(t), newPeer(t), newPeer(t)
	mb := &modTestBackend{testBackend: b, admins: []feed.AuthorID{adm.ID()}}
	b.replicate(adm, ch, time.Now().Add(-time.Hour), modPayload(feed.ModHide, mallory, "spam"))
	b.catchUp()
	h := startOn(t, mb, b, 200, 30)
	h.waitText("#general")
	h.waitFor("the hide known to the buffer", func(string) bool {
		var ok bool
		h.onUI(func() {
			bm := h.u.buffer(ch.ID()).mod
			_, ok = bm.authors[mallory.ID()]
			ok = bm != nil && ok
		})
		return ok
	})
	b.replicate(mallory, ch, time.Now().Add(-30*time.Minute), nick("mallory"), text("backdated spam"))
	b.replicate(mallory, ch, time.Now().Add(3*time.Hour), text("spam from the future"))
	b.replicate(bob, ch, time.Now().Add(-30*time.Minute), nick("bob"), text("backdated words"))
	// bob answers mallory's spam: his line does not quote it.
	b.post(bob, ch, feed.Payload{Kind: feed.KindText, Text: "stop it", Ref: feed.NewRef(mallory.ID(), 1)})
	s := h.waitText("↪ (a hidden message) stop it")
	if !strings.Contains(s, "bob's message of") {
		t.Fatalf("no note for bob's backdated message:\n%s", s)
	}
	if strings.Contains(s, "spam") || strings.Contains(s, "mallory") {
		t.Fatalf("a hidden author's message is quoted or named:\n%s", s)
	}
	// /show: everything is shown again, the quote too.
	h.typeLine("/show")
	h.waitText("↪ mallory: backdated spam stop it")
}

// TestModHiddenTopic: the topic set last by an author the admin then hides
// leaves the header; the topic set before by someone else is shown.
func TestModHiddenTopic(t *testing.T) {
	b := newTestBackend(t)
	adm, mallory, bob := newPeer(t), newPeer(t), newPeer(t)
	k, err := feed.NewChannelKey()
	if err != nil {
		t.Fatal(err)
	}
	// adm is the admin the channel's key names (as a creator is).
	ch := feed.Channel{Key: k, Name: "general", Admins: feed.NewAdminSet([]feed.AuthorID{adm.ID()})}
	if err := b.st.Join(ch); err != nil {
		t.Fatal(err)
	}
	mb := &modTestBackend{testBackend: b, admins: []feed.AuthorID{adm.ID()}}
	b.replicate(bob, ch, time.Now().Add(-2*time.Minute), topic("the weekly call"))
	b.replicate(mallory, ch, time.Now().Add(-time.Minute), topic("buy cheap pills"))
	b.catchUp()
	h := startOn(t, mb, b, 120, 24)
	h.waitText("#general  buy cheap pills")
	b.post(adm, ch, modPayload(feed.ModHide, mallory, "spam"))
	h.waitText("#general  the weekly call")
}
