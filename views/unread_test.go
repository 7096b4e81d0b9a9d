package views

import (
	"context"
	"testing"
	"time"
)

func TestMentionWords(t *testing.T) {
	for _, c := range []struct {
		text, nick string
		want       bool
	}{
		{"hey ann!", "ann", true},
		{"ANN: ping", "ann", true},
		{"ann", "ann", true},
		{"@ann, look", "ann", true},
		{"annabel", "ann", false},
		{"joann", "ann", false},
		{"ann_x", "ann", false},
		{"ann2", "ann", false},
		{"joann and ann", "ann", true},
		{"über-ann", "ann", true},
		{"Ännchen", "änn", false},
		{"ÄNN!", "änn", true},
		{"mr smith is here", "mr smith", true},
		{"anything", "", false},
	} {
		if got := mentions(c.text, fold(c.nick)); got != c.want {
			t.Errorf("mentions(%q, %q) = %v", c.text, c.nick, got)
		}
	}
}

func TestUnreadAndMentions(t *testing.T) {
	e := newEnv(t)
	bob := newAuthor(t)
	sub := e.v.Subscribe()
	defer sub.Close()

	e.say(e.me, t0, nick("Ann"))
	e.say(bob, t0.Add(time.Second),
		text("hello"),
		text("hey ann!"),
		text("annabel is here"),
		text("ANN: ping"),
		emote("waves at Ann"),
		topic("a topic about ann"), // not a message: not counted
	)
	e.say(e.me, t0.Add(2*time.Second), text("ann ann, talking to myself"))
	e.wait()
	if u, err := e.v.Unread(e.d); err != nil || u != (Unread{Messages: 5, Mentions: 3}) {
		t.Fatalf("unread %+v %v", u, err)
	}
	ms, _ := e.v.Last(e.d, 10)
	var flagged []string
	for _, m := range ms {
		if m.Mention {
			flagged = append(flagged, m.Text)
		}
		if m.Own != (m.Author == e.me.ID()) {
			t.Errorf("Own wrong on %q", m.Text)
		}
	}
	if len(flagged) != 3 || flagged[0] != "hey ann!" || flagged[1] != "ANN: ping" || flagged[2] != "waves at Ann" {
		t.Fatalf("mentions flagged: %q", flagged)
	}
	if c, _ := e.v.ReadMarker(e.d); c != "" {
		t.Fatalf("marker before MarkRead: %q", c)
	}

	// Mark read: counts restart, the marker is the newest message.
	for len(sub.C()) > 0 {
		<-sub.C()
	}
	if err := e.v.MarkRead(e.d); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.C():
	default:
		t.Fatal("no signal after MarkRead")
	}
	if u, _ := e.v.Unread(e.d); u != (Unread{}) {
		t.Fatalf("after MarkRead %+v", u)
	}
	if c, _ := e.v.ReadMarker(e.d); c != ms[len(ms)-1].Cursor {
		t.Fatal("marker is not the newest message")
	}

	// Live: new messages count, including one that sorts into the past.
	e.say(bob, t0.Add(3*time.Second), text("ann?"))
	e.say(newAuthor(t), t0.Add(-time.Hour), text("written offline an hour ago"))
	e.wait()
	if u, _ := e.v.Unread(e.d); u != (Unread{Messages: 2, Mentions: 1}) {
		t.Fatalf("live %+v", u)
	}

	// A new nick: mentions follow it.
	e.say(e.me, t0.Add(4*time.Second), nick("zed"))
	e.say(bob, t0.Add(5*time.Second), text("ann?"), text("Zed."))
	e.wait()
	if u, _ := e.v.Unread(e.d); u != (Unread{Messages: 4, Mentions: 2}) {
		t.Fatalf("after nick change %+v", u)
	}
	// Counts survive a restart and keep counting.
	e.reopen()
	e.say(bob, t0.Add(6*time.Second), text("zed zed"))
	e.wait()
	if u, _ := e.v.Unread(e.d); u != (Unread{Messages: 5, Mentions: 3}) {
		t.Fatalf("after restart %+v", u)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.v.WaitIndexed(ctx, e.st.Last()); err != nil {
		t.Fatal(err)
	}
}
