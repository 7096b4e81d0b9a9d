package views

import (
	"context"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
)

func encodedSize(es []feed.Entry) int64 {
	var n int64
	for _, e := range es {
		n += int64(len(e.Encode()))
	}
	return n
}

// TestMembersView: per author, text and emote entries are counted as
// messages, every entry's encoding as bytes, and the local time of the
// newest indexing as the last arrival; nicks are shown as elsewhere; the
// rows survive a reopen.
func TestMembersView(t *testing.T) {
	e := newEnv(t)
	alice, bob := newAuthor(t), newAuthor(t)
	ea := e.say(alice, t0, nick("alice"), text("hi"), emote("waves"), topic("t"))
	e.wait()
	e.clock.Set(t0.Add(time.Hour))
	ea = append(ea, e.say(alice, t0, text("again"))...)
	eb := e.say(bob, t0, text("yo"))
	e.wait()
	check := func() {
		t.Helper()
		ms, err := e.v.Members(e.d)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 2 {
			t.Fatalf("%d members: %+v", len(ms), ms)
		}
		byID := map[feed.AuthorID]Member{}
		for _, m := range ms {
			byID[m.Author] = m
		}
		a, b := byID[alice.ID()], byID[bob.ID()]
		if a.Nick != "alice" || a.Display != "alice" || a.Messages != 3 || a.Bytes != encodedSize(ea) {
			t.Fatalf("alice %+v (want 3 messages, %d bytes)", a, encodedSize(ea))
		}
		if !a.LastArrival.Equal(t0.Add(time.Hour)) {
			t.Fatalf("alice last arrival %v", a.LastArrival)
		}
		if b.Display != bob.ID().Short() || b.Messages != 1 || b.Bytes != encodedSize(eb) {
			t.Fatalf("bob %+v", b)
		}
	}
	check()
	e.reopen()
	e.wait()
	check()
	other := newEnv(t)
	if ms, _ := other.v.Members(other.d); len(ms) != 0 {
		t.Fatalf("members of another channel: %+v", ms)
	}
}

// TestDropAuthorAfterPurge: after the store purges an author's feed,
// DropAuthor removes the author's rows from every view (messages, edits,
// topic, nick, members, counts) and leaves everyone else's; the indexer
// keeps up although the purge left a gap at the end of the arrival log.
func TestDropAuthorAfterPurge(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newEnv(t)
	alice, mallory := newAuthor(t), newAuthor(t)
	e.say(alice, t0, nick("alice"), text("hello"))
	em := e.say(mallory, t0.Add(time.Second), nick("alice"), text("spam 1"), text("spam 2"), topic("buy now"))
	e.say(mallory, t0.Add(2*time.Second), feed.Payload{Kind: feed.KindEdit, Text: "spam 1!", Ref: feed.NewRef(mallory.ID(), em[1].Seq)})
	e.wait()
	if d := e.v.Display(e.d, alice.ID()); d == "alice" {
		t.Fatal("setup: nicks should collide")
	}
	if err := e.st.Block(e.d, mallory.ID()); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Purge(ctx, e.d, mallory.ID()); err != nil {
		t.Fatal(err)
	}
	if err := e.v.DropAuthor(ctx, e.d, mallory.ID()); err != nil {
		t.Fatal(err)
	}
	ms, err := e.v.Last(e.d, 50)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Author == mallory.ID() {
			t.Fatalf("purged author's row left: %+v", m)
		}
	}
	if len(ms) != 2 {
		t.Fatalf("%d rows left, want alice's 2: %q", len(ms), textsOf(ms))
	}
	if n, _ := e.v.Count(e.d); n != 2 {
		t.Fatalf("count %d, want 2", n)
	}
	if top, _ := e.v.Topic(e.d); top != "" {
		t.Fatalf("topic %q left", top)
	}
	if d := e.v.Display(e.d, alice.ID()); d != "alice" {
		t.Fatalf("alice still shown as %q (the purged claim of her nick stayed)", d)
	}
	if n := e.v.Nick(e.d, mallory.ID()); n != "" {
		t.Fatalf("purged nick %q", n)
	}
	if eds, _ := e.v.Edits(e.d, 0, 10); len(eds) != 0 {
		t.Fatalf("purged edits %+v", eds)
	}
	if arr, _ := e.v.Arrived(e.d, 0, 50); len(arr) != 2 {
		t.Fatalf("arrived: %d", len(arr))
	}
	mem, _ := e.v.Members(e.d)
	if len(mem) != 1 || mem[0].Author != alice.ID() {
		t.Fatalf("members %+v", mem)
	}
	// The newest arrivals were purged: the views still catch up with the
	// store's counter, and index what comes next.
	e.say(alice, t0.Add(time.Minute), text("after"))
	e.wait()
	e.reopen()
	e.wait()
	if n, _ := e.v.Count(e.d); n != 3 {
		t.Fatalf("count after more %d", n)
	}
}

// TestIndexerPassesPurgedTail: arrivals purged before the views indexed
// them leave a gap at the end of the log; the views still reach the store's
// counter (a reader waiting for it must not wait for ever) and index what
// comes next.
func TestIndexerPassesPurgedTail(t *testing.T) {
	e := newEnv(t)
	alice, mallory := newAuthor(t), newAuthor(t)
	e.say(alice, t0, text("hello"))
	e.wait()
	e.v.Close()
	e.v = nil
	e.say(mallory, t0, texts("spam", 20)...)
	if err := e.st.Purge(context.Background(), e.d, mallory.ID()); err != nil {
		t.Fatal(err)
	}
	e.openViews()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.v.CatchUp(ctx); err != nil {
		t.Fatalf("views stuck at %d, store at %d: %v", e.v.Indexed(), e.st.Last(), err)
	}
	e.say(alice, t0.Add(time.Second), text("after"))
	e.wait()
	ms, _ := e.v.Last(e.d, 10)
	if got := textsOf(ms); len(got) != 2 || got[1] != "after" {
		t.Fatalf("rows %q", got)
	}
}
