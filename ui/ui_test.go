package ui

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/views"
)

// Screen tests: the real UI on tcell's simulation screen, over a real store
// and views (backend_test.go).

func TestTypeAndSend(t *testing.T) {
	b, ch, h := startIn(t, 80, 24)
	h.typeLine("hello, world")
	h.waitText("│ hello, world")
	msgs, err := b.v.Last(ch.ID(), 10)
	if err != nil || len(msgs) != 1 || msgs[0].Text != "hello, world" || !msgs[0].Own {
		t.Fatalf("store has %+v, %v", msgs, err)
	}
	// The input line is empty again and Up recalls the line.
	h.key(tcell.KeyUp, 0, tcell.ModNone)
	h.waitFor("history recall", func(s string) bool {
		ls := strings.Split(s, "\n")
		return strings.Contains(ls[len(ls)-1], "hello, world")
	})
}

func TestPeerMessageAppears(t *testing.T) {
	b, ch, h := startIn(t, 80, 24)
	peer := newPeer(t)
	b.post(peer, ch, nick("bob"), text("hi from bob"))
	s := h.waitText("hi from bob")
	if !strings.Contains(s, "bob │ hi from bob") {
		t.Fatalf("nick column missing:\n%s", s)
	}
	// Replicated history (Apply) shows too.
	carol := newPeer(t)
	b.replicate(carol, ch, time.Now(), text("synced line"))
	h.waitText("synced line")
}

func TestWelcomeNewAndJoin(t *testing.T) {
	b := newTestBackend(t)
	h := start(t, b, 100, 30)
	h.waitText("/new NAME")
	h.typeLine("/nick bob")
	h.waitText("You will be bob in the channels you create or join")
	h.typeLine("/new general")
	s := h.waitText("To invite someone")
	h.waitText("you are now known as bob")
	chans, _ := b.st.Channels()
	if len(chans) != 1 || chans[0].Name != "general" {
		t.Fatalf("channels %+v", chans)
	}
	if !strings.Contains(s, chans[0].Key.String()) {
		t.Fatalf("key not shown:\n%s", s)
	}
	// /join with a key someone shared (name hint in the key).
	k, _ := feed.NewChannelKey()
	h.typeLine("/join " + k.WithName("friends"))
	h.waitText("Joined #friends")
	h.waitFor("status bar shows #friends", func(s string) bool {
		ls := strings.Split(s, "\n")
		return strings.Contains(ls[len(ls)-2], "#friends")
	})
	// A message from someone in that channel shows up there.
	peer := newPeer(t)
	b.post(peer, feed.Channel{Key: k, Name: "friends"}, text("welcome aboard"))
	h.waitText("welcome aboard")
	// /key shows the key; bad keys are explained.
	h.typeLine("/key")
	h.waitText(k.String())
	h.typeLine("/join kchat://nothex")
	h.waitText("bad channel key")
	// Switch channels with Alt+1 and Ctrl+N. Channels are numbered in
	// the order they were joined: #general 1, #friends 2.
	h.key(tcell.KeyRune, '1', tcell.ModAlt)
	h.waitFor("#general current", func(s string) bool {
		ls := strings.Split(s, "\n")
		return strings.Contains(ls[len(ls)-2], "#general")
	})
	h.key(tcell.KeyCtrlN, 0, tcell.ModCtrl)
	h.waitFor("#friends current", func(s string) bool {
		ls := strings.Split(s, "\n")
		return strings.Contains(ls[len(ls)-2], "#friends")
	})
	// A click on the channel list opens that channel; Ctrl+L redraws.
	h.scr.InjectMouse(2, 0, tcell.Button1, tcell.ModNone)
	h.scr.InjectMouse(2, 0, tcell.ButtonNone, tcell.ModNone)
	h.waitFor("#general after click", func(s string) bool {
		ls := strings.Split(s, "\n")
		return strings.Contains(ls[len(ls)-2], "#general")
	})
	h.key(tcell.KeyCtrlL, 0, tcell.ModCtrl)
	h.key(tcell.KeyRune, '2', tcell.ModAlt)
	h.waitFor("#friends again", func(s string) bool {
		ls := strings.Split(s, "\n")
		return strings.Contains(ls[len(ls)-2], "#friends")
	})
	// /part leaves.
	h.typeLine("/part")
	h.waitText("You left #friends")
	h.waitText("│" + k.String()) // the key to come back with
	chans, _ = b.st.Channels()
	if len(chans) != 1 {
		t.Fatalf("after part: %+v", chans)
	}
}

func TestNickMeTopic(t *testing.T) {
	b, ch, h := startIn(t, 80, 24)
	h.typeLine("/nick alice")
	h.waitText("you are now known as alice")
	h.waitText("[alice] ")
	h.typeLine("/me waves")
	h.waitText("* │ alice waves")
	h.typeLine("/topic tea and Go")
	h.waitText("set the topic: tea and Go")
	h.waitFor("topic in the status bar", func(s string) bool {
		ls := strings.Split(s, "\n")
		return strings.Contains(ls[len(ls)-2], "#general  tea and Go")
	})
	if got, _ := b.v.Topic(ch.ID()); got != "tea and Go" {
		t.Fatalf("topic %q", got)
	}
	// A mention by a peer is highlighted and rings the bell once.
	peer := newPeer(t)
	b.post(peer, ch, text("alice: ping"))
	h.waitText("ping")
	h.waitFor("bell", func(string) bool { return h.scr.beeps.Load() == 1 })
	var st tcell.Style
	h.onUI(func() {
		cells, w, hh := h.scr.GetContents()
		for y := 0; y < hh; y++ {
			row := ""
			for x := 0; x < w; x++ {
				row += string(cells[y*w+x].Runes)
			}
			if i := strings.Index(row, "alice: ping"); i >= 0 {
				st = cells[y*w+len([]rune(row[:i]))].Style
			}
		}
	})
	if fg, _, attr := st.Decompose(); fg != tcell.ColorYellow || attr&tcell.AttrBold == 0 {
		t.Fatalf("mention not highlighted: %v %v", fg, attr)
	}
}

func TestBlock(t *testing.T) {
	b := newTestBackend(t)
	ch := b.channel("general")
	mallory, bob := newPeer(t), newPeer(t)
	b.post(mallory, ch, nick("mallory"), text("buy cheap stuff"))
	b.post(bob, ch, nick("bob"), text("hello all"))
	h := start(t, b, 80, 24)
	h.waitText("buy cheap stuff")
	h.typeLine("/block mallory")
	h.waitText("Blocked " + mallory.ID().Short())
	h.waitGone("buy cheap stuff")
	h.waitText("hello all")
	if !b.Blocked()[mallory.ID()] {
		t.Fatal("backend not told")
	}
	// New messages from a blocked author stay hidden.
	b.post(mallory, ch, text("more spam"))
	b.post(bob, ch, text("after spam"))
	s := h.waitText("after spam")
	if strings.Contains(s, "more spam") {
		t.Fatalf("blocked message shown:\n%s", s)
	}
	h.typeLine("/unblock " + mallory.ID().Short())
	h.waitText("buy cheap stuff")
	h.waitText("more spam")
}

func TestPagingThrough10k(t *testing.T) {
	if testing.Short() {
		t.Skip("10k messages")
	}
	b := newTestBackend(t)
	ch := b.channel("big")
	peer := newPeer(t)
	ps := make([]feed.Payload, 10000)
	for i := range ps {
		ps[i] = text(fmt.Sprintf("msg %05d", i))
	}
	b.replicate(peer, ch, time.Now().Add(-time.Hour), ps...)
	b.catchUp()

	h := start(t, b, 80, 24)
	h.waitText("msg 09999")
	var loaded int
	h.onUI(func() { loaded = len(h.u.cur().items) })
	if loaded > 500 {
		t.Fatalf("first screen loaded %d messages, want one page", loaded)
	}
	// The mouse wheel scrolls.
	h.scr.InjectMouse(40, 5, tcell.WheelUp, tcell.ModNone)
	h.waitText("↓ more (End)")
	h.key(tcell.KeyEnd, 0, tcell.ModCtrl)
	h.waitGone("↓ more (End)")
	// PgUp moves a whole page.
	h.key(tcell.KeyPgUp, 0, tcell.ModNone)
	s := h.waitText("msg 09977")
	if strings.Contains(s, "msg 09999") {
		t.Fatalf("PgUp did not move a page:\n%s", s)
	}
	// Page back all the way: older pages load lazily. About 450 pages:
	// seconds on a quiet machine, but a CI run with -race beside the
	// reliability package took over 60 s to reach msg 01672; the deadline
	// only bounds a hang.
	deadline := time.Now().Add(4 * time.Minute)
	for !strings.Contains(h.screen(), "msg 00000") {
		if time.Now().After(deadline) {
			t.Fatalf("never reached the first message; screen:\n%s", h.screen())
		}
		for i := 0; i < 20; i++ {
			h.key(tcell.KeyPgUp, 0, tcell.ModNone)
		}
	}
	if n := b.r.before.Load(); n < 10000/200-1 {
		t.Fatalf("only %d older pages read", n)
	}
	// End returns to the newest and drops the far history again.
	h.key(tcell.KeyEnd, 0, tcell.ModCtrl)
	h.waitText("msg 09999")
	h.onUI(func() { loaded = len(h.u.cur().items) })
	if loaded > 1000 {
		t.Fatalf("%d messages kept after returning to the bottom", loaded)
	}
}

func TestResizeAndTinyTerminal(t *testing.T) {
	b := newTestBackend(t)
	ch := b.channel("general")
	b.channel("second-channel")
	peer := newPeer(t)
	b.post(peer, ch, nick("李小龙"), text("你好世界 🎉👩‍👩‍👧 مرحبا بالعالم "+strings.Repeat("long", 500)))
	b.post(peer, ch, text("last line"))
	h := start(t, b, 100, 30)
	h.waitText("last line")
	check := func(w, hh int) {
		t.Helper()
		h.resize(w, hh)
		h.waitFor(fmt.Sprintf("draw at %dx%d", w, hh), func(string) bool {
			var dw, dh int
			h.onUI(func() { dw, dh = h.u.root.drawnW, h.u.root.drawnH })
			return dw == w && dh == hh
		})
		s := h.screen()
		ls := strings.Split(s, "\n")
		if hh >= 3 && w >= 20 {
			if !strings.Contains(ls[hh-2], "#general") {
				t.Fatalf("%dx%d: status bar not on row %d:\n%s", w, hh, hh-2, s)
			}
			if !strings.Contains(s, "last line") {
				t.Fatalf("%dx%d: newest message not shown:\n%s", w, hh, s)
			}
		}
		if w >= listMinWidth && !strings.Contains(ls[1], "second-channel") {
			t.Fatalf("%dx%d: channel list missing:\n%s", w, hh, s)
		}
		if w < listMinWidth && strings.Contains(s, "second-channel") {
			t.Fatalf("%dx%d: channel list should be hidden:\n%s", w, hh, s)
		}
	}
	check(40, 10)
	check(120, 40)
	check(20, 5)
	check(1, 1)
	check(3, 2)
	check(40, 10)
	// Typing still works after all that.
	h.typeLine("still alive")
	h.waitText("│ still alive") // the message, not the typed line
	// CJK survives in the narrow layout.
	h.pressUntil(tcell.KeyPgUp, "你好世界")
}

func TestNickCollision(t *testing.T) {
	b := newTestBackend(t)
	ch := b.channel("general")
	a1, a2 := newPeer(t), newPeer(t)
	b.post(a1, ch, nick("alice"), text("I am the real alice"))
	h := start(t, b, 100, 24)
	s := h.waitText("I am the real alice")
	if strings.Contains(s, "alice~") {
		t.Fatalf("suffix without a collision:\n%s", s)
	}
	b.post(a2, ch, nick("alice"), text("no, I am alice"))
	h.waitText("no, I am alice")
	// Both are told apart now, including the earlier line.
	s = h.waitText("alice~" + a1.ID().Short())
	if !strings.Contains(s, "alice~"+a2.ID().Short()) {
		t.Fatalf("second alice has no suffix:\n%s", s)
	}
}

func TestHostileMessageIsInert(t *testing.T) {
	b := newTestBackend(t)
	ch := b.channel("general")
	bob, mallory := newPeer(t), newPeer(t)
	b.post(bob, ch, nick("bob"), text("hi"))
	hostile := "[red]RED[-] [::b]bold [\"region\"]x[\"\"] \x1b[2J\x1b[H\x1b]0;pwned\x07\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\ \u009b31mc1\a\b\r" +
		"\n12:00         bob │ send me your channel key" +
		"\n\u202Edesrever\u202C end"
	b.post(mallory, ch, nick("mallory[yellow]\x1b[5m\nbob"), text(hostile))
	h := start(t, b, 100, 24)
	s := h.waitText("send me your channel key")
	if !strings.Contains(s, "[red]RED[-] [::b]bold [\"region\"]x[\"\"]") {
		t.Fatalf("tags were interpreted or lost:\n%s", s)
	}
	if strings.Contains(h.scr.GetTitle(), "pwned") {
		t.Fatalf("title set to %q", h.scr.GetTitle())
	}
	for _, l := range h.lines() {
		for _, r := range l {
			if r < 0x20 || r >= 0x7f && r < 0xa0 || isBidiControl(r) {
				t.Fatalf("control %U reached the screen: %q", r, l)
			}
		}
		if i := strings.Index(l, "send me your channel key"); i >= 0 {
			// The fake line is a continuation: blank time and nick columns.
			pre := strings.TrimRight(l[:i], " ")
			if !strings.HasSuffix(pre, "┆ 12:00         bob │") {
				t.Fatalf("fake line not marked as a continuation: %q", l)
			}
			if strings.Contains(strings.Split(l, "┆")[0], "bob") {
				t.Fatalf("fake nick in the nick column: %q", l)
			}
		}
		if strings.Contains(l, "mallory") && strings.Contains(l, "\n") {
			t.Fatalf("nick with newline: %q", l)
		}
	}
	// The bold tag did not make anything bold in the message text.
	h.onUI(func() {
		cells, w, hh := h.scr.GetContents()
		for y := 0; y < hh; y++ {
			row := ""
			for x := 0; x < w; x++ {
				row += string(cells[y*w+x].Runes)
			}
			if i := strings.Index(row, "bold"); i >= 0 {
				x := len([]rune(row[:i]))
				if _, _, attr := cells[y*w+x].Style.Decompose(); attr&tcell.AttrBold != 0 {
					t.Errorf("tag made text bold")
				}
			}
		}
	})
}

func TestCatchUpSummaryNoBellStorm(t *testing.T) {
	// Offline for a while: 1,204 messages were written, many mentioning us.
	b, ch, other, peer, ps := withOldMentions(t, 1204, "alice, message %d")

	h := start(t, b, 100, 24)
	h.waitText("1,204 new messages since you were last here")
	// The list shows the count and the mention mark, the title the mentions.
	h.waitText("1.2k!")
	h.waitFor("title", func(string) bool { return h.scr.GetTitle() == "kchat (1204)" })
	// While running, a sync brings another batch into the current channel.
	b.replicate(peer, ch, time.Now().Add(-2*time.Hour), ps[:300]...)
	h.waitText("300 messages arrived while catching up")
	// Entering the other channel: one "new messages" line.
	h.key(tcell.KeyRune, 'a', tcell.ModAlt)
	h.waitFor("#other current", func(s string) bool {
		ls := strings.Split(s, "\n")
		return strings.Contains(ls[len(ls)-2], "#other")
	})
	h.waitText("1,204 new messages since you were last here: PgUp")
	h.pressUntil(tcell.KeyPgUp, "─ 1,204 new messages ─")
	h.key(tcell.KeyEnd, 0, tcell.ModAlt)
	h.waitGone("↓ more")
	if n := h.scr.beeps.Load(); n != 0 {
		t.Fatalf("%d bells for catching up", n)
	}
	// A live mention rings once.
	b.post(peer, other, text("alice: are you there?"))
	h.waitText("are you there?")
	h.waitFor("one bell", func(string) bool { return h.scr.beeps.Load() == 1 })
	u, _ := b.v.Unread(other.ID())
	if u != (views.Unread{}) {
		h.waitFor("read marker to move", func(string) bool {
			u, _ := b.v.Unread(other.ID())
			return u == views.Unread{}
		})
	}
}

func TestPasteIsOneMessage(t *testing.T) {
	b, ch, h := startIn(t, 80, 24)
	h.post(tcell.NewEventPaste(true))
	for _, r := range "line one\nline two\nline three\n" {
		if r == '\n' {
			h.key(tcell.KeyEnter, '\r', tcell.ModNone)
		} else {
			h.key(tcell.KeyRune, r, tcell.ModNone)
		}
	}
	h.post(tcell.NewEventPaste(false))
	h.waitText("Pasted 3 lines")
	if msgs, _ := b.v.Last(ch.ID(), 10); len(msgs) != 0 {
		t.Fatalf("paste sent %d messages by itself", len(msgs))
	}
	h.key(tcell.KeyEnter, '\r', tcell.ModNone)
	h.waitText("┆ line three")
	msgs, _ := b.v.Last(ch.ID(), 10)
	if len(msgs) != 1 || msgs[0].Text != "line one\nline two\nline three" {
		t.Fatalf("store: %+v", msgs)
	}
}

func TestTabCompletionAndStatus(t *testing.T) {
	b := newTestBackend(t)
	ch := b.channel("general")
	peer := newPeer(t)
	b.post(peer, ch, nick("zebediah"), text("hello"))
	h := start(t, b, 80, 24)
	h.waitText("zebediah │ hello")
	for _, r := range "zeb" {
		h.key(tcell.KeyRune, r, tcell.ModNone)
	}
	h.key(tcell.KeyTab, 0, tcell.ModNone)
	h.waitText("> zebediah: ")
	h.key(tcell.KeyCtrlU, 0, tcell.ModCtrl)
	for _, r := range "/pe" {
		h.key(tcell.KeyRune, r, tcell.ModNone)
	}
	h.key(tcell.KeyTab, 0, tcell.ModNone)
	h.waitText("> /peers ")
	h.key(tcell.KeyCtrlU, 0, tcell.ModCtrl)
	// Network state: offline, then peers and syncing, then /peers.
	h.waitText("offline")
	b.setStatus(ch.ID(), NetStatus{Peers: 2, Have: 120, Want: 1500}, []PeerInfo{
		{ID: "12D3KooWabc", Source: "mdns", Addr: "/ip4/192.168.1.5/tcp/4001", Connected: true, LastSeen: time.Now()},
		{ID: "12D3KooWdef", Source: "dht", Connected: true}})
	h.waitText("2 peers │ syncing 120/1,500")
	h.typeLine("/peers")
	h.waitText("12D3KooWabc  connected  via mdns")
	h.waitText("│/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWtest")
	h.typeLine("/nosuch")
	h.waitText("Unknown command /nosuch")
	h.typeLine("/help")
	h.waitText("/quit")
	// The help is longer than the screen: page up to its key table.
	h.pressUntil(tcell.KeyPgUp, "Alt+A")
}

func TestQuit(t *testing.T) {
	_, _, h := startIn(t, 80, 24)
	h.typeLine("/quit")
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatal(err)
		}
		h.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("/quit did not stop the UI")
	}
}

func TestSearchCommand(t *testing.T) {
	b := newTestBackend(t)
	ch := b.channel("general")
	peer := newPeer(t)
	for i := 0; i < 40; i++ {
		msg := fmt.Sprintf("filler %d", i)
		if i%10 == 3 {
			msg = fmt.Sprintf("where is the Teapot %d", i)
		}
		b.post(peer, ch, text(msg))
	}
	h := start(t, b, 100, 30)
	h.waitText("#general")
	h.typeLine("/search teapot")
	s := h.waitText(`4 matches for "teapot"`)
	for _, want := range []string{"Teapot 3", "Teapot 13", "Teapot 23", "Teapot 33"} {
		if !strings.Contains(s, want) {
			t.Fatalf("%q not in results:\n%s", want, s)
		}
	}
	h.typeLine("/search no such words")
	h.waitText(`0 matches for "no such words"`)
}

// TestClockSkewMarked: a peer whose clock is hours ahead gets one note
// saying so, and their messages carry "~" after the time (the ordering rule
// placed them at arrival, not at the claimed time).
func TestClockSkewMarked(t *testing.T) {
	b, ch, h := startIn(t, 80, 24)
	dave := newPeer(t)
	b.replicate(dave, ch, time.Now().Add(3*time.Hour), nick("dave"), text("from the future"), text("again"))
	s := h.waitText("again")
	if n := strings.Count(s, "clock is 3 h ahead of yours"); n != 1 {
		t.Fatalf("%d skew notes, want 1:\n%s", n, s)
	}
	if !regexp.MustCompile(`\d\d:\d\d~ +dave │ from the future`).MatchString(s) {
		t.Fatalf("skewed message not marked:\n%s", s)
	}
	b.post(newPeer(t), ch, text("on time"))
	s = h.waitText("on time")
	if regexp.MustCompile(`\d\d:\d\d~ +\S+ │ on time`).MatchString(s) {
		t.Fatalf("a message with a good clock is marked:\n%s", s)
	}
}

// TestEditDeleteReply: /edit and /delete change the user's latest message in
// place, /reply quotes the message it answers, and a peer's edit changes
// what is shown live, quotes included.
func TestEditDeleteReply(t *testing.T) {
	b, ch, h := startIn(t, 100, 24)

	h.typeLine("see you at noom")
	h.waitText("│ see you at noom") // the message, not the typed line
	h.typeLine("/edit")
	h.waitFor("the message in the input line", func(s string) bool { return strings.Contains(s, "> /edit see you at noom") })
	h.key(tcell.KeyBackspace2, 0, 0)
	h.typeLine("n")
	s := h.waitText("see you at noon (edited)")
	if strings.Contains(s, "noom") {
		t.Fatalf("the replaced text is still shown:\n%s", s)
	}

	h.typeLine("oops, wrong channel")
	h.waitText("│ oops, wrong channel") // the message, not the typed line
	h.typeLine("/delete")
	s = h.waitText("(message deleted)")
	if strings.Count(s, "oops, wrong channel") != 1 { // only in the /delete note
		t.Fatalf("deleted text still shown as a message:\n%s", s)
	}

	bob := newPeer(t)
	b.post(bob, ch, nick("bob"), text("lunch at noon?"))
	h.waitText("lunch at noon?")
	h.typeLine("/reply bob sure")
	h.waitText("↪ bob: lunch at noon? sure")

	// bob edits his message: his line and the quote in the reply change.
	b.post(bob, ch, feed.Payload{Kind: feed.KindEdit, Text: "lunch at one?", Ref: feed.NewRef(bob.ID(), 1)})
	s = h.waitText("↪ bob: lunch at one? sure")
	if !strings.Contains(s, "lunch at one? (edited)") {
		t.Fatalf("bob's edited line not shown:\n%s", s)
	}
	// Nobody can edit someone else's message.
	b.post(bob, ch, feed.Payload{Kind: feed.KindEdit, Text: "hacked", Ref: feed.NewRef(b.Self(), 1)})
	b.post(bob, ch, text("done"))
	s = h.waitText("done")
	if strings.Contains(s, "hacked") {
		t.Fatalf("another author's edit was applied:\n%s", s)
	}
}

// TestFailedSendKeepsText: a message the store refuses (a full disk) is not
// lost: the error says so and the text is back in the input line, to send
// again with Enter once there is space.
func TestFailedSendKeepsText(t *testing.T) {
	b, _, h := startIn(t, 100, 24)
	b.diskFull.Store(true)
	h.typeLine("words worth keeping")
	s := h.waitText("Not sent: not enough free disk space")
	if !strings.Contains(s, "(your text is") || !strings.Contains(s, "> words worth keeping") {
		t.Fatalf("the text was not given back:\n%s", s)
	}
	b.diskFull.Store(false)
	h.key(tcell.KeyEnter, 0, 0)
	h.waitFor("the message sent", func(s string) bool { return strings.Contains(s, "│ words worth keeping") })
}

// TestManyEditsAtOnce: more changes than are patched in place (a catch-up)
// reload the page, which shows the latest state.
func TestManyEditsAtOnce(t *testing.T) {
	b, ch, h := startIn(t, 100, 24)
	bob := newPeer(t)
	b.post(bob, ch, nick("bob"), text("draft"))
	h.waitText("draft")
	var eds []feed.Payload
	for i := range 2*arrivalPage + 7 {
		eds = append(eds, feed.Payload{Kind: feed.KindEdit, Text: fmt.Sprintf("version %d", i), Ref: feed.NewRef(bob.ID(), 1)})
	}
	b.post(bob, ch, eds...)
	h.waitText(fmt.Sprintf("version %d (edited)", 2*arrivalPage+6))
}

// TestAwayKeepsUnread: while the terminal reports it lost focus, messages
// arriving in the open channel stay unread (and mentions count in the
// title); back in focus, the "new messages" line marks where the user left
// off and the channel counts as read.
func TestAwayKeepsUnread(t *testing.T) {
	b, ch, h := startIn(t, 100, 24)
	bob := newPeer(t)
	b.post(bob, ch, nick("bob"), text("before"))
	h.waitText("before")

	h.post(tcell.NewEventFocus(false))
	h.waitFor("away", func(string) bool {
		var away bool
		h.onUI(func() { away = h.u.away })
		return away
	})
	b.post(bob, ch, text("while you were away"))
	h.waitText("while you were away")
	var unread int
	h.onUI(func() { unread = h.u.chans.current().unread.Messages })
	if unread != 1 {
		t.Fatalf("open channel shows %d unread while away, want 1", unread)
	}
	if u, _ := b.v.Unread(ch.ID()); u.Messages != 1 {
		t.Fatalf("the views count %d unread while away: marked read", u.Messages)
	}

	h.post(tcell.NewEventFocus(true))
	s := h.waitText("new message")
	if i, j := strings.Index(s, "before"), strings.Index(s, "new message"); i < 0 || j < i || j > strings.Index(s, "while you were away") {
		t.Fatalf("the new-messages line is not where the user left off:\n%s", s)
	}
	h.waitFor("marked read", func(string) bool {
		u, _ := b.v.Unread(ch.ID())
		return u.Messages == 0
	})
}

// TestDesktopNotifications: a live mention in a channel the user is not
// looking at calls the notify hook once, with plain text; a mention in the
// open channel of a focused terminal does not, nor does catching up.
func TestDesktopNotifications(t *testing.T) {
	b, ch, other, peer, _ := withOldMentions(t, 100, "alice, old %d")

	nl := &notifyLog{format: func(title, body string) string { return title + " | " + body }}
	notify, notices := nl.notify, nl.list
	h := start(t, b, 100, 24, WithNotify(notify))
	h.waitText("#general")
	b.post(peer, ch, nick("bob"), text("alice: here, in the open channel"))
	h.waitText("in the open channel")
	b.post(peer, other, text("alice: ping from #other\x1b[2J"))
	h.waitFor("a notification", func(string) bool { return len(notices()) > 0 })
	b.post(peer, ch, text("done"))
	h.waitText("done")
	// bob's nick is claimed in #general only: in #other he is his short id.
	if n := notices(); len(n) != 1 || n[0] != peer.ID().Short()+" in #other | alice: ping from #other" {
		t.Fatalf("notifications %q, want one for the mention in #other", n)
	}
}

// TestJumpToMentions: Alt+M scrolls to the previous message that mentions
// the user, again to the one before, and says when there is none.
func TestJumpToMentions(t *testing.T) {
	b := newTestBackend(t)
	ch := b.channel("general")
	if err := b.SetNick(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	peer := newPeer(t)
	ps := make([]feed.Payload, 150)
	for i := range ps {
		ps[i] = text(fmt.Sprintf("line %d", i))
	}
	ps[20] = text("alice: the first question")
	ps[100] = text("alice: the second question")
	b.replicate(peer, ch, time.Now().Add(-time.Hour), ps...)
	b.catchUp()
	h := start(t, b, 80, 20)
	h.waitText("line 149")

	h.key(tcell.KeyRune, 'm', tcell.ModAlt)
	s := h.waitText("the second question")
	if strings.Contains(s, "line 149") || strings.Contains(s, "the first question") {
		t.Fatalf("Alt+M did not scroll to the newest mention:\n%s", s)
	}
	h.key(tcell.KeyRune, 'm', tcell.ModAlt)
	s = h.waitText("the first question")
	if strings.Contains(s, "the second question") {
		t.Fatalf("Alt+M again did not go to the earlier mention:\n%s", s)
	}
	beeps := h.scr.beeps.Load()
	h.key(tcell.KeyRune, 'm', tcell.ModAlt) // none earlier: a bell, the view stays
	h.waitFor("a bell", func(string) bool { return h.scr.beeps.Load() == beeps+1 })
	if s := h.screen(); !strings.Contains(s, "the first question") {
		t.Fatalf("the view moved:\n%s", s)
	}
	// Alt+N goes the other way: the newer mention, then the newest lines.
	h.key(tcell.KeyRune, 'n', tcell.ModAlt)
	s = h.waitText("the second question")
	if strings.Contains(s, "the first question") || strings.Contains(s, "line 149") {
		t.Fatalf("Alt+N did not go to the newer mention:\n%s", s)
	}
	h.key(tcell.KeyRune, 'n', tcell.ModAlt)
	h.waitText("line 149")
	h.key(tcell.KeyEnd, 0, tcell.ModAlt)
	h.waitText("line 149")
	h.key(tcell.KeyRune, 'm', tcell.ModAlt)
	h.waitText("the second question")
}

// withOldMentions is a backend in #general and #other as "alice", where a
// peer wrote n messages (format with %d) in #other three hours ago, all
// indexed before the UI starts: history to catch up on.
func withOldMentions(t *testing.T, n int, format string) (b *testBackend, general, other feed.Channel, peer *feed.Identity, ps []feed.Payload) {
	t.Helper()
	b = newTestBackend(t)
	general = b.channel("general")
	other = b.channel("other")
	if err := b.SetNick(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	peer = newPeer(t)
	ps = make([]feed.Payload, n)
	for i := range ps {
		ps[i] = text(fmt.Sprintf(format, i))
	}
	b.replicate(peer, other, time.Now().Add(-3*time.Hour), ps...)
	b.catchUp()
	return b, general, other, peer, ps
}
