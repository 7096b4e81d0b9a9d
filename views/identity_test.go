package views

import (
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
)

// TestPrevNick: a nick entry's message carries the nickname it replaced;
// the author's first has none.
func TestPrevNick(t *testing.T) {
	e := newEnv(t)
	ann := newAuthor(t)
	e.say(ann, t0, nick("ann"), text("hi"), nick("annie"))
	e.wait()
	ms, err := e.v.Last(e.d, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		if m.Kind == feed.KindNick {
			got = append(got, m.PrevNick+">"+m.Text)
		}
	}
	if len(got) != 2 || got[0] != ">ann" || got[1] != "ann>annie" {
		t.Fatalf("nick lines %q", got)
	}
}

// TestReplyToMeIsMention: a reply to one of my messages is a mention, in
// the message and in the unread count.
func TestReplyToMeIsMention(t *testing.T) {
	e := newEnv(t)
	bob := newAuthor(t)
	e.say(e.me, t0, text("tea?"))
	e.wait()
	if err := e.v.MarkRead(e.d); err != nil {
		t.Fatal(err)
	}
	e.say(bob, t0.Add(time.Second), feed.Payload{Kind: feed.KindText, Text: "yes", Ref: feed.NewRef(e.me.ID(), 0)}, text("unrelated"))
	e.wait()
	ms, err := e.v.Last(e.d, 10)
	if err != nil || len(ms) != 3 {
		t.Fatal(ms, err)
	}
	for _, m := range ms {
		if want := m.Text == "yes"; m.Mention != want {
			t.Errorf("%q: mention %v, want %v", m.Text, m.Mention, want)
		}
	}
	u, err := e.v.Unread(e.d)
	if err != nil || u.Messages != 2 || u.Mentions != 1 {
		t.Fatalf("unread %+v %v", u, err)
	}
}

// TestFindMemberShortSuffix: "ben~0c96" names the ben whose id starts so.
func TestFindMemberShortSuffix(t *testing.T) {
	a, b := newAuthor(t), newAuthor(t)
	ms := []Member{{Author: a.ID(), Nick: "ben", Display: "ben~" + a.ID().Short()}, {Author: b.ID(), Nick: "ben", Display: "ben~" + b.ID().Short()}}
	for n := 1; n <= 8; n++ {
		if a.ID().String()[:n] == b.ID().String()[:n] {
			continue
		}
		got, err := FindMember(ms, "ben~"+a.ID().String()[:n])
		if err != nil || got != a.ID() {
			t.Fatalf("ben~%s: %v %v", a.ID().String()[:n], got, err)
		}
	}
	if _, err := FindMember(ms, "ben~zz"); err == nil {
		t.Fatal("ben~zz found someone")
	}
}
