package ui

import (
	"context"
	"testing"

	"github.com/kchat-p2p/kchat/views"
)

// TestBlockedAuthorIsSilent: a blocked author's mentions, in a channel the
// user is not looking at, ring no bell, fire no notification and count
// neither as unread nor as mentions; the same from an author who is not
// blocked does all of that (so the test sees it when it happens).
func TestBlockedAuthorIsSilent(t *testing.T) {
	b, _, other, _, _ := withOldMentions(t, 0, "")
	mallory, bob := newPeer(t), newPeer(t)
	if err := b.Block(context.Background(), other.ID(), mallory.ID(), false); err != nil {
		t.Fatal(err)
	}
	nl := &notifyLog{format: func(_, body string) string { return body }}
	notify, notices := nl.notify, nl.list
	h := start(t, b, 100, 24, WithNotify(notify))
	h.waitText("#general")

	b.post(mallory, other, text("alice: blocked ping"))
	// Then a plain message from bob: once the UI counts it, it has handled
	// mallory's too (arrivals are handled in order).
	b.post(bob, other, text("plain"))
	h.waitFor("bob's message counted", func(string) bool {
		var n views.Unread
		h.onUI(func() { n = h.u.chans.get(other.ID()).unread })
		return n.Messages >= 1
	})
	if u, _ := b.v.Unread(other.ID()); u != (views.Unread{Messages: 1}) {
		t.Fatalf("a blocked author's mention counts: %+v, want only bob's plain message", u)
	}
	if n := h.scr.beeps.Load(); n != 0 {
		t.Fatalf("a blocked author's mention rang %d bells", n)
	}
	if n := notices(); len(n) != 0 {
		t.Fatalf("a blocked author's mention notified: %q", n)
	}

	// The same from bob, who is not blocked: counted, rung, notified.
	b.post(bob, other, text("alice: real ping"))
	h.waitFor("a notification", func(string) bool { return len(notices()) > 0 })
	h.waitFor("a bell", func(string) bool { return h.scr.beeps.Load() > 0 })
	if u, _ := b.v.Unread(other.ID()); u != (views.Unread{Messages: 2, Mentions: 1}) {
		t.Fatalf("bob's mention: %+v", u)
	}
	if n := notices(); len(n) != 1 || n[0] != "alice: real ping" {
		t.Fatalf("notifications %q", n)
	}
}
