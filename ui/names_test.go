package ui

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
)

func TestNamesCommandParsing(t *testing.T) {
	for line, want := range map[string]string{"/names": "names", "/who": "names", "/peers": "peers", "/net": "peers"} {
		c, _, ok := parseCommand(line)
		if !ok || c.name != want {
			t.Errorf("%s -> %q %v, want %q", line, c.name, ok, want)
		}
	}
	help := helpText(nil)
	for _, s := range []string{"/names", "(/who)", "/block NICK [--purge]", "/part [--purge]"} {
		if !strings.Contains(help, s) {
			t.Errorf("help lacks %q", s)
		}
	}
	if p, rest := cutFlag(" bob~12345678  --purge ", "--purge"); !p || rest != "bob~12345678" {
		t.Fatalf("cutFlag: %v %q", p, rest)
	}
	if p, rest := cutFlag("bob", "--purge"); p || rest != "bob" {
		t.Fatalf("cutFlag without flag: %v %q", p, rest)
	}
}

// TestNamesText: one line per author by displayed nick, with the marks.
func TestNamesText(t *testing.T) {
	var a, b feed.AuthorID
	a[0], b[0] = 1, 2
	got := namesText("general", []Member{
		{Author: a, Display: "alice", Messages: 1},
		{Author: b, Display: "bob~02000000", Messages: 3, Blocked: true, Forked: true},
	}, a)
	want := "#general: 2 authors\n  alice  1 message  (you)\n  bob~02000000  3 messages  [blocked]  [forked"
	if !strings.HasPrefix(got, want) {
		t.Fatalf("%q\nwant prefix %q", got, want)
	}
}

// TestNamesBlockPurgePart: /names shows the channel's authors by nick (not
// peer ids) with blocked and forked ones marked; /block NICK --purge
// deletes the author's stored feed; an ambiguous nick is refused;
// /unblock takes an id prefix; /part --purge deletes the channel.
func TestNamesBlockPurgePart(t *testing.T) {
	b := newTestBackend(t)
	ch := b.channel("general")
	mallory, bob1, bob2, forker := newPeer(t), newPeer(t), newPeer(t), newPeer(t)
	now := time.Now()
	b.replicate(mallory, ch, now, nick("mallory"), text("buy cheap stuff"))
	b.replicate(bob1, ch, now, nick("bob"), text("hi from bob one"))
	b.replicate(bob2, ch, now, nick("bob"), text("hi from bob two"))
	b.replicate(forker, ch, now, nick("forker"), text("first version"))
	// The forker signs another entry at seq 1.
	raw, _ := text("second version").Marshal()
	h0, _ := b.st.Get(ch.ID(), forker.ID(), 0)
	e, err := feed.NewEntry(forker, ch.ID(), feed.Head{Author: forker.ID(), Len: 1, Hash: h0.Hash()}, now.UnixMilli(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.Apply(context.Background(), ch.ID(), forker.ID(), []feed.Entry{e}); !errors.Is(err, feed.ErrForked) {
		t.Fatalf("fork: %v", err)
	}
	b.catchUp()
	h := start(t, b, 100, 30)
	h.waitText("buy cheap stuff")

	h.typeLine("/who")
	s := h.waitText("#general: 4 authors")
	for _, want := range []string{"mallory  1 message", "bob~" + bob1.ID().Short(), "bob~" + bob2.ID().Short(), "forker  1 message  [forked"} {
		if !strings.Contains(s, want) {
			t.Fatalf("/who lacks %q:\n%s", want, s)
		}
	}

	h.typeLine("/block bob")
	h.waitText("ambiguous")
	if len(b.Blocked()) != 0 {
		t.Fatal("an ambiguous nick blocked someone")
	}

	h.typeLine("/block mallory --purge")
	h.waitText("Blocked " + mallory.ID().Short() + " here and deleted")
	h.waitGone("buy cheap stuff")
	if !b.st.IsBlocked(ch.ID(), mallory.ID()) {
		t.Fatal("store not told")
	}
	if hd, _ := b.st.Head(ch.ID(), mallory.ID()); hd.Len != 0 {
		t.Fatalf("mallory's feed still stored: %+v", hd)
	}
	h.typeLine("/names")
	h.waitText("#general: 3 authors")

	h.typeLine("/block bob~" + bob1.ID().Short())
	h.waitText("Blocked " + bob1.ID().Short() + ": their messages are hidden")
	h.waitGone("hi from bob one")
	h.typeLine("/names")
	h.waitText("bob~" + bob1.ID().Short() + "  1 message  [blocked]")
	h.typeLine("/unblock " + bob1.ID().String()[:8])
	h.waitText("Unblocked " + bob1.ID().Short())
	h.waitText("hi from bob one")

	h.typeLine("/part --purge")
	h.waitText("history was deleted")
	if heads, _ := b.st.Heads(ch.ID()); len(heads) != 0 {
		t.Fatalf("%d feeds left after /part --purge", len(heads))
	}
	if chans, _ := b.st.Channels(); len(chans) != 0 {
		t.Fatalf("still joined: %v", chans)
	}
}
