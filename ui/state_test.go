package ui

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/kchat-p2p/kchat/feed"
)

// sidebar is the channel list column of the screen (left of the first │).
func sidebar(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if i := strings.Index(l, "│"); i >= 0 {
			out = append(out, strings.TrimSpace(l[:i]))
		}
	}
	return strings.Join(out, "\n")
}

// statusLine is the status bar (the line above the input line).
func statusLine(s string) string {
	ls := strings.Split(s, "\n")
	return ls[len(ls)-2]
}

// TestPartThroughControlSocket: a channel left by another process (`kchat
// part` through the control socket) leaves the running UI's sidebar; Alt+N
// and sending follow the list as it is now.
func TestPartThroughControlSocket(t *testing.T) {
	b := newTestBackend(t)
	b.channel("general")
	random := b.channel("random")
	zzz := b.channel("zzz")
	h := start(t, b, 100, 24)
	h.waitFor("three channels", func(s string) bool { return strings.Contains(sidebar(s), "zzz") })
	h.key(tcell.KeyRune, '3', tcell.ModAlt)
	h.waitFor("#zzz current", func(s string) bool { return strings.Contains(statusLine(s), "#zzz") })

	if err := b.Part(context.Background(), zzz.ID()); err != nil {
		t.Fatal(err)
	}
	b.changed()
	h.waitFor("zzz gone from the sidebar", func(s string) bool { return !strings.Contains(sidebar(s), "zzz") })
	h.waitFor("another channel current", func(s string) bool { return !strings.Contains(statusLine(s), "#zzz") })

	// Alt+2 is #random, and a line typed there is sent there.
	h.key(tcell.KeyRune, '2', tcell.ModAlt)
	h.waitFor("#random current", func(s string) bool { return strings.Contains(statusLine(s), "#random") })
	h.typeLine("still here")
	h.waitText("│ still here")
	if ms, err := b.v.Last(random.ID(), 5); err != nil || len(ms) != 1 || ms[0].Text != "still here" {
		t.Fatalf("#random holds %+v, %v", ms, err)
	}
	// A channel joined from outside appears.
	if _, err := b.Create(context.Background(), "outside"); err != nil {
		t.Fatal(err)
	}
	b.changed()
	h.waitFor("#outside listed", func(s string) bool { return strings.Contains(sidebar(s), "outside") })
	// A nickname set from outside (kchat nick) is the UI's at once.
	if err := b.SetNick(context.Background(), "zed"); err != nil {
		t.Fatal(err)
	}
	b.changed()
	h.waitFor("[zed] in the input line", func(s string) bool { return strings.Contains(inputLine(s), "[zed]") })
}

// inputLine is the last screen line (the input line).
func inputLine(s string) string {
	ls := strings.Split(s, "\n")
	return ls[len(ls)-1]
}

// TestDraftPerChannel: the input line is one per channel; switching
// channels keeps each one's unsent text.
func TestDraftPerChannel(t *testing.T) {
	b := newTestBackend(t)
	b.channel("general")
	b.channel("random")
	h := start(t, b, 100, 24)
	h.waitText("#general")
	h.typeText("half a thought")
	h.waitFor("draft typed", func(s string) bool { return strings.Contains(inputLine(s), "half a thought") })
	h.key(tcell.KeyRune, '2', tcell.ModAlt)
	h.waitFor("#random with an empty input", func(s string) bool {
		return strings.Contains(statusLine(s), "#random") && !strings.Contains(inputLine(s), "half a thought")
	})
	h.typeText("other")
	h.key(tcell.KeyRune, '1', tcell.ModAlt)
	h.waitFor("#general's draft back", func(s string) bool {
		return strings.Contains(statusLine(s), "#general") && strings.Contains(inputLine(s), "half a thought") && !strings.Contains(inputLine(s), "other")
	})
	h.key(tcell.KeyCtrlN, 0, tcell.ModCtrl)
	h.waitFor("#random's draft back", func(s string) bool { return strings.Contains(inputLine(s), "other") })
}

// TestCtrlCWithDraftAsks: Ctrl+C with unsent text asks instead of quitting;
// a second Ctrl+C quits and the drafts, the channel order and the channel
// shown are there again after a restart.
func TestCtrlCWithDraftAsks(t *testing.T) {
	b := newTestBackend(t)
	b.channel("general")
	b.channel("random")
	b.channel("zeta")
	state := filepath.Join(t.TempDir(), "ui-state")
	h := start(t, b, 100, 24, WithStateFile(state))
	h.waitText("#general")
	// Join order, not names: a channel joined now is number 4.
	if _, err := b.Create(context.Background(), "aaa"); err != nil {
		t.Fatal(err)
	}
	b.changed()
	h.waitFor("aaa as 4", func(s string) bool { return strings.Contains(sidebar(s), "4 aaa") })
	h.key(tcell.KeyRune, '2', tcell.ModAlt)
	h.waitFor("#random current", func(s string) bool { return strings.Contains(statusLine(s), "#random") })
	h.typeText("do not lose me")
	h.key(tcell.KeyRune, '3', tcell.ModAlt)
	h.waitFor("#zeta current", func(s string) bool { return strings.Contains(statusLine(s), "#zeta") })
	h.typeText("nor me")
	h.key(tcell.KeyCtrlC, 0, tcell.ModCtrl)
	h.waitText("Ctrl+C again quits")
	select {
	case err := <-h.done:
		h.done <- err
		t.Fatal("quit with a draft on the first Ctrl+C")
	default:
	}
	if !strings.Contains(inputLine(h.screen()), "nor me") {
		t.Fatalf("draft gone:\n%s", h.screen())
	}
	// Another key cancels the question; then two Ctrl+C quit.
	h.key(tcell.KeyEnd, 0, tcell.ModNone)
	h.key(tcell.KeyCtrlC, 0, tcell.ModCtrl)
	h.key(tcell.KeyCtrlC, 0, tcell.ModCtrl)
	select {
	case err := <-h.done:
		h.done <- err
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second Ctrl+C did not quit")
	}

	h2 := start(t, b, 100, 24, WithStateFile(state))
	s := h2.waitFor("#zeta shown again", func(s string) bool { return strings.Contains(statusLine(s), "#zeta") })
	if !strings.Contains(inputLine(s), "nor me") {
		t.Fatalf("#zeta's draft not restored:\n%s", s)
	}
	if sb := sidebar(s); !strings.Contains(sb, "1 general") || !strings.Contains(sb, "2 random") || !strings.Contains(sb, "3 zeta") || !strings.Contains(sb, "4 aaa") {
		t.Fatalf("channel numbers moved:\n%s", sb)
	}
	h2.key(tcell.KeyCtrlP, 0, tcell.ModCtrl)
	h2.waitFor("#random's draft restored", func(s string) bool {
		return strings.Contains(statusLine(s), "#random") && strings.Contains(inputLine(s), "do not lose me")
	})
	// Without a draft Ctrl+C quits at once.
	h2.key(tcell.KeyCtrlU, 0, tcell.ModCtrl)
	h2.key(tcell.KeyCtrlN, 0, tcell.ModCtrl)
	h2.key(tcell.KeyCtrlU, 0, tcell.ModCtrl)
	h2.key(tcell.KeyCtrlC, 0, tcell.ModCtrl)
	select {
	case err := <-h2.done:
		h2.done <- err
	case <-time.After(10 * time.Second):
		t.Fatalf("Ctrl+C with no draft did not quit:\n%s", h2.screen())
	}
}

// TestJoinByNameAndClash: /join NAME goes to a channel joined (IRC habit);
// a key whose name hint is taken joins under another name and says so; a
// NAME given that is taken is refused with an alternative.
func TestJoinByNameAndClash(t *testing.T) {
	b := newTestBackend(t)
	b.channel("general")
	b.channel("random")
	h := start(t, b, 120, 24)
	h.waitText("#general")
	h.typeLine("/join #random")
	h.waitFor("#random current", func(s string) bool { return strings.Contains(statusLine(s), "#random") })
	h.typeLine("/join general")
	h.waitFor("#general current", func(s string) bool { return strings.Contains(statusLine(s), "#general") })
	h.typeLine("/join nowhere")
	h.waitText("You have no channel #nowhere")

	k, _ := feed.NewChannelKey()
	alt := "general-" + k.DiscoveryID().Short()[:4]
	h.typeLine("/join " + k.WithName("general"))
	h.waitText("You already have a channel named #general, so this one is #" + alt)
	h.waitFor("#"+alt+" current", func(s string) bool { return strings.Contains(statusLine(s), "#"+alt) })

	k2, _ := feed.NewChannelKey()
	h.typeLine("/join " + k2.String() + " random")
	h.waitText("random-" + k2.DiscoveryID().Short()[:4])
	h.waitText("You already have a channel named #random")
	if chans, _ := b.Channels(); len(chans) != 3 {
		t.Fatalf("channels %+v", chans)
	}
}

// TestConnectCommand: /connect ADDR connects through the backend and says
// which channels sync; a bad address is explained.
func TestConnectCommand(t *testing.T) {
	b := newTestBackend(t)
	b.channel("general")
	b.channel("random")
	h := start(t, b, 140, 24)
	h.waitText("#general")
	h.typeLine("/connect")
	h.waitText("Usage: /connect ADDR")
	h.typeLine("/connect /ip4/127.0.0.1/tcp/4001")
	h.waitText("Could not connect")
	h.typeLine("/connect /ip4/127.0.0.1/tcp/4001/p2p/12D3KooWtest")
	h.waitText("Connected; syncing #general, #random")
}

// TestMoveChannel: /move N renumbers the current channel; the order is kept
// across a restart.
func TestMoveChannel(t *testing.T) {
	b := newTestBackend(t)
	b.channel("general")
	b.channel("random")
	b.channel("zeta")
	state := filepath.Join(t.TempDir(), "ui-state")
	h := start(t, b, 100, 24, WithStateFile(state))
	h.waitText("#general")
	h.key(tcell.KeyRune, '3', tcell.ModAlt)
	h.waitFor("#zeta current", func(s string) bool { return strings.Contains(statusLine(s), "#zeta") })
	h.typeLine("/move 1")
	h.waitText("#zeta is now channel 1")
	h.waitFor("renumbered", func(s string) bool {
		sb := sidebar(s)
		return strings.Contains(sb, "1 zeta") && strings.Contains(sb, "2 general") && strings.Contains(sb, "3 random")
	})
	h.typeLine("/move 9")
	h.waitText("Usage: /move N, N from 1 to 3")
	h.close()
	h2 := start(t, b, 100, 24, WithStateFile(state))
	h2.waitFor("order kept", func(s string) bool {
		sb := sidebar(s)
		return strings.Contains(sb, "1 zeta") && strings.Contains(sb, "2 general") && strings.Contains(sb, "3 random")
	})
}

// TestExpandLongMessage: a long message is folded; /expand shows it whole.
func TestExpandLongMessage(t *testing.T) {
	b, ch, h := startIn(t, 100, 30)
	peer := newPeer(t)
	var lines []string
	for i := 0; i < 80; i++ {
		lines = append(lines, fmt.Sprintf("row %02d", i))
	}
	b.post(peer, ch, text(strings.Join(lines, "\n")))
	h.waitText("30 more lines not shown (/expand shows them)")
	h.typeLine("/expand")
	h.waitText("shown whole")
	h.pressUntil(tcell.KeyPgUp, "row 79")
	h.pressUntil(tcell.KeyPgUp, "row 60")
}

// TestGotoSearchMatch: /goto N scrolls to a match of /search in its place,
// loading the older history it is in.
func TestGotoSearchMatch(t *testing.T) {
	b := newTestBackend(t)
	ch := b.channel("general")
	peer := newPeer(t)
	ps := make([]feed.Payload, 600)
	for i := range ps {
		ps[i] = text(fmt.Sprintf("filler %03d", i))
	}
	ps[40] = text("the lost teapot")
	b.replicate(peer, ch, time.Now().Add(-time.Hour), ps...)
	b.catchUp()
	h := start(t, b, 100, 24, WithPageSize(100))
	h.waitText("filler 599")
	h.typeLine("/search teapot")
	h.waitText(`1 match for "teapot"`)
	h.typeLine("/goto 1")
	s := h.waitText("filler 041")
	if !strings.Contains(s, "│ the lost teapot") || !strings.Contains(s, "filler 039") {
		t.Fatalf("not in context:\n%s", s)
	}
	h.typeLine("/goto 2")
	h.waitText("Usage: /goto N, N from 1 to 1")
}

// TestNamesPane: F2 shows the channel's people at the right (nicknames, not
// ids), follows a new author, and hides again.
func TestNamesPane(t *testing.T) {
	b, ch, h := startIn(t, 100, 24)
	bob := newPeer(t)
	b.post(bob, ch, nick("bob"), text("hello"))
	h.waitText("hello")
	right := func(s string) string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if i := strings.LastIndex(l, "│"); i >= 0 && len(l)-i < 60 {
				out = append(out, strings.TrimSpace(l[i+len("│"):]))
			}
		}
		return strings.Join(out, "\n")
	}
	h.key(tcell.KeyF2, 0, tcell.ModNone)
	h.waitFor("bob in the names pane", func(s string) bool {
		r := right(s)
		return strings.Contains(r, "1, 1 active") && strings.Contains(r, "● bob")
	})
	carol := newPeer(t)
	b.post(carol, ch, nick("carol"), text("hi all"))
	h.waitFor("carol added", func(s string) bool {
		r := right(s)
		return strings.Contains(r, "2, 2 active") && strings.Contains(r, "● carol")
	})
	var on bool
	h.onUI(func() { on = h.u.namesShownFor(ch.ID()) })
	if !on {
		t.Fatal("pane not for #general")
	}
	h.key(tcell.KeyF2, 0, tcell.ModNone)
	h.waitFor("pane hidden", func(s string) bool { return !strings.Contains(right(s), "2, 2 active") })
}
