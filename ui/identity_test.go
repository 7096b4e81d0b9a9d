package ui

import (
	"testing"

	"github.com/kchat-p2p/kchat/feed"
)

// TestNickChangeReplySuffix: a nick change reads "ann is now known as
// annie"; a reply quote keeps the ~suffix when the quoted nick comes to
// collide; /r NICK~HEX takes a suffix shorter than the one shown.
func TestNickChangeReplySuffix(t *testing.T) {
	b := newTestBackend(t)
	ch := b.channel("general")
	ben, ann := newPeer(t), newPeer(t)
	b.post(ben, ch, nick("ben"), text("tea anyone?"))
	b.post(ann, ch, nick("ann"), feed.Payload{Kind: feed.KindText, Text: "yes please", Ref: feed.NewRef(ben.ID(), 1)})
	h := start(t, b, 120, 24)
	h.waitText("↪ ben: tea anyone?")

	b.post(ann, ch, nick("annie"))
	h.waitText("ann is now known as annie")

	other := newPeer(t)
	b.post(other, ch, nick("ben"), text("I am ben too"))
	full := "ben~" + ben.ID().Short()
	h.waitText("↪ " + full + ": tea anyone?")

	short := "ben~" + ben.ID().String()[:4]
	h.typeLine("/r " + short + " green or black?")
	h.waitText("│ ↪ " + full + ": tea anyone? green or black?") // sent and indexed, not just typed
	ms, err := b.v.Last(ch.ID(), 1)
	if err != nil || len(ms) != 1 || ms[0].ReplyTo == nil || ms[0].ReplyTo.Author != ben.ID() {
		t.Fatalf("reply %+v %v", ms, err)
	}
}
