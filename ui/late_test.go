package ui

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/kchat-p2p/kchat/views"
)

// TestBackdatedMessageInOpenChannel: a first message claiming to be 30
// minutes old is placed in the past, but marked "~" and announced by a note
// at the bottom, quoting it; a message a minute old is neither.
func TestBackdatedMessageInOpenChannel(t *testing.T) {
	b, ch, h := startIn(t, 200, 30)
	eve, bob := newPeer(t), newPeer(t)
	b.post(bob, ch, nick("bob"), text("hello"))
	h.waitText("hello")
	b.replicate(eve, ch, time.Now().Add(-30*time.Minute), nick("eve"), text("backdated words"))
	s := h.waitText("arrived late")
	if !regexp.MustCompile(`\d\d:\d\d~ +eve │ backdated words`).MatchString(s) {
		t.Fatalf("backdated message not marked ~:\n%s", s)
	}
	if !regexp.MustCompile(`eve's message of .* arrived late, placed further up \(~\): backdated words`).MatchString(s) {
		t.Fatalf("no note for the backdated message:\n%s", s)
	}
	b.replicate(newPeer(t), ch, time.Now().Add(-time.Minute), text("a minute ago"))
	s = h.waitText("a minute ago")
	if regexp.MustCompile(`\d\d:\d\d~ +\S+ │ a minute ago`).MatchString(s) || strings.Count(s, "arrived late") != 1 {
		t.Fatalf("a message a minute old is marked:\n%s", s)
	}
}

// TestBackdatedMessageInOtherChannel: in a channel the user is not looking
// at, a backdated message counts as unread, and when the user goes there the
// note below the last read message shows it (the "last read" line cannot:
// it sorts above).
func TestBackdatedMessageInOtherChannel(t *testing.T) {
	b, _, other, _, _ := withOldMentions(t, 0, "")
	bob := newPeer(t)
	b.replicate(bob, other, time.Now().Add(-5*time.Minute), nick("bob"), text("bob earlier"))
	b.catchUp()
	if err := b.v.MarkRead(other.ID()); err != nil {
		t.Fatal(err)
	}
	h := start(t, b, 200, 30)
	h.waitText("#general")
	eve := newPeer(t)
	b.replicate(eve, other, time.Now().Add(-30*time.Minute), nick("eve"), text("alice: backdated"))
	h.waitFor("counted unread", func(string) bool {
		var n views.Unread
		h.onUI(func() { n = h.u.chans.get(other.ID()).unread })
		return n == views.Unread{Messages: 1, Mentions: 1}
	})
	h.key(tcell.KeyRune, '2', tcell.ModAlt)
	s := h.waitText("arrived late")
	if !regexp.MustCompile(`\d\d:\d\d~ +eve │ alice: backdated`).MatchString(s) {
		t.Fatalf("backdated message not marked ~:\n%s", s)
	}
	lines := strings.Split(strings.TrimRight(s, "\n "), "\n")
	var note int = -1
	for i, l := range lines {
		if strings.Contains(l, "eve's message of") && strings.Contains(l, "alice: backdated") {
			note = i
		}
	}
	if note < 0 || note < indexOf(lines, "bob earlier") {
		t.Fatalf("no note below the last read message:\n%s", s)
	}
}

func indexOf(lines []string, sub string) int {
	for i, l := range lines {
		if strings.Contains(l, sub) {
			return i
		}
	}
	return -1
}
