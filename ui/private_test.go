package ui

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/seal"
	"github.com/kchat-p2p/kchat/views"
)

// privBackend is testBackend with private messages: views opened with the
// user's box key, and PrivateBackend as the node offers it.
type privBackend struct{ *testBackend }

func newPrivBackend(t *testing.T) privBackend {
	t.Helper()
	b := newTestBackend(t)
	b.v.Close()
	v, err := views.Open(b.db, b.st, b.id.ID(), views.WithBlocked(b.Blocked), views.WithBoxKey(b.id.BoxKey()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	b.v, b.r = v, &countingReader{Views: v}
	return privBackend{b}
}

func (b privBackend) FindRecipient(who, via string) (feed.Channel, feed.AuthorID, error) {
	chans, err := b.st.Channels()
	if err != nil {
		return feed.Channel{}, feed.AuthorID{}, err
	}
	for _, c := range chans {
		if a, err := b.ResolveAuthor(c.ID(), who); err == nil {
			return c, a, nil
		}
	}
	return feed.Channel{}, feed.AuthorID{}, errors.New("no channel you share with " + who)
}

func (b privBackend) SendPrivate(ctx context.Context, ch feed.DiscoveryID, to feed.AuthorID, text string) (feed.Entry, error) {
	return sealedPost(ctx, b.testBackend, b.id, ch, to, text)
}

// sealedPost appends a private message from id to `to` in ch.
func sealedPost(ctx context.Context, b *testBackend, id *feed.Identity, ch feed.DiscoveryID, to feed.AuthorID, text string) (feed.Entry, error) {
	toKey, err := seal.PublicFromEd25519(to[:])
	if err != nil {
		return feed.Entry{}, err
	}
	s, err := seal.Seal(nil, seal.Message{From: id.ID(), To: to, Text: text}, toKey, id.BoxKey().Public())
	if err != nil {
		return feed.Entry{}, err
	}
	es, err := b.st.Append(ctx, id, ch, feed.Payload{Kind: feed.KindSealed, Sealed: s})
	if err != nil {
		return feed.Entry{}, err
	}
	return es[0], nil
}

func startPriv(t *testing.T, b privBackend, w, h int) *harness {
	t.Helper()
	return startOn(t, b, b.testBackend, w, h)
}

// TestPrivateConversation: /msg sends a sealed message and opens "@bob";
// bob's answer arrives there, rings and counts as a mention while the user
// is elsewhere, and never shows in the channel; /query opens a
// conversation; /part closes it.
func TestPrivateConversation(t *testing.T) {
	b := newPrivBackend(t)
	ch := b.channel("general")
	bob := newPeer(t)
	b.post(bob, ch, nick("bob"), text("hi all"))
	h := startPriv(t, b, 100, 24)
	h.waitText("hi all")

	h.typeLine("/msg bob psst, a secret")
	h.waitText("@bob (private)")
	h.waitText("│ psst, a secret")
	if ms, _ := b.v.Last(ch.ID(), 10); len(ms) != 2 {
		t.Fatalf("the channel holds %d messages, want 2 (no private one)", len(ms))
	}

	// Typing in the conversation sends privately too.
	h.typeLine("second line")
	h.waitText("│ second line")

	// Back to #general: bob answers privately; it rings and counts.
	h.key(tcell.KeyRune, '1', tcell.ModAlt)
	h.waitText(" #general")
	beeps := h.scr.beeps.Load()
	if _, err := sealedPost(context.Background(), b.testBackend, bob, ch.ID(), b.id.ID(), "secret answer"); err != nil {
		t.Fatal(err)
	}
	h.waitText("@bob")
	h.waitFor("a mention count on @bob", func(s string) bool { return strings.Contains(s, "1!") })
	if h.scr.beeps.Load() == beeps {
		t.Fatal("a private message did not ring")
	}
	if s := h.screen(); strings.Contains(s, "secret answer") {
		t.Fatalf("the private answer shows in #general:\n%s", s)
	}
	h.key(tcell.KeyRune, '2', tcell.ModAlt)
	h.waitText("│ secret answer")
	h.typeLine("/key")
	h.waitText("is a private conversation")
	h.typeLine("/me waves")
	h.waitText("Only plain lines can be sent privately")

	// /query someone with no message yet: an empty conversation.
	carol := newPeer(t)
	b.post(carol, ch, nick("carol"))
	h.waitFor("carol's nick indexed", func(string) bool { return b.v.Nick(ch.ID(), carol.ID()) == "carol" })
	h.typeLine("/query carol")
	h.waitText("@carol (private)")
	h.typeLine("/part")
	h.waitGone("@carol")
	h.typeLine("/msg nobody hello")
	h.waitText("Not sent")
}

// TestPrivateHistoryAtStart: conversations from before the UI started are
// listed, counting what arrived after their read marker, without a bell;
// reading one moves its marker, so the next start counts nothing.
func TestPrivateHistoryAtStart(t *testing.T) {
	b := newPrivBackend(t)
	ch := b.channel("general")
	bob := newPeer(t)
	b.post(bob, ch, nick("bob"))
	if _, err := sealedPost(context.Background(), b.testBackend, bob, ch.ID(), b.id.ID(), "from before"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.v.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	h := startPriv(t, b, 100, 24)
	h.waitText("@bob")
	h.waitFor("the unread private message counted", func(s string) bool { return strings.Contains(s, "1!") })
	if n := h.scr.beeps.Load(); n != 0 {
		t.Fatalf("old private messages rang %d bells", n)
	}
	h.key(tcell.KeyRune, '2', tcell.ModAlt)
	h.waitText("│ from before")
	h.waitFor("the conversation marked read", func(string) bool {
		un, _ := b.v.PrivateUnread()
		return un[bob.ID()] == 0
	})
	h.close()

	h = startPriv(t, b, 100, 24)
	h.waitText("@bob")
	h.waitText("#general")
	if s := h.screen(); strings.Contains(s, "1!") {
		t.Fatalf("a read conversation counted again:\n%s", s)
	}
}
