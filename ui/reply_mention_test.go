package ui

import (
	"strings"
	"testing"

	"github.com/gdamore/tcell/v2"

	"github.com/kchat-p2p/kchat/feed"
)

// TestReplyToYouIsAMention: a reply to the user's message, naming them or
// not, is a mention: the bell rings, the channel gets its "!", the title
// counts it.
func TestReplyToYouIsAMention(t *testing.T) {
	b := newTestBackend(t)
	general := b.channel("general")
	random := b.channel("random")
	h := start(t, b, 100, 24)
	h.waitText("#general")
	// The user writes in #random, then goes back to #general.
	h.key(tcell.KeyRune, '2', tcell.ModAlt)
	h.waitFor("#random current", func(s string) bool { return strings.Contains(statusLine(s), "#random") })
	h.typeLine("anyone for tea?")
	h.waitText("│ anyone for tea?")
	h.key(tcell.KeyRune, '1', tcell.ModAlt)
	h.waitFor("#general current", func(s string) bool { return strings.Contains(statusLine(s), "#general") })
	mine, err := b.v.Last(random.ID(), 1)
	if err != nil || len(mine) != 1 {
		t.Fatalf("own message: %+v %v", mine, err)
	}
	bob := newPeer(t)
	b.post(bob, general, nick("bob"))
	b.post(bob, random, nick("bob"), feed.Payload{Kind: feed.KindText, Text: "yes please", Ref: feed.NewRef(mine[0].Author, mine[0].Seq)})
	h.waitFor("#random marked with a mention", func(s string) bool {
		return strings.Contains(sidebar(s), "random") && strings.Contains(sidebar(s), "1!")
	})
	h.waitFor("bell", func(string) bool { return h.scr.beeps.Load() == 1 })
	var title string
	h.onUI(func() { title = h.u.title })
	if title != "kchat (1)" {
		t.Fatalf("title %q", title)
	}
}
