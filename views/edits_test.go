package views

import (
	"testing"

	"github.com/kchat-p2p/kchat/feed"
)

func edit(a *author, seq uint64, s string) feed.Payload {
	return feed.Payload{Kind: feed.KindEdit, Text: s, Ref: feed.NewRef(a.ID(), seq)}
}

func del(a *author, seq uint64) feed.Payload {
	return feed.Payload{Kind: feed.KindDelete, Ref: feed.NewRef(a.ID(), seq)}
}

func reply(a *author, seq uint64, s string) feed.Payload {
	return feed.Payload{Kind: feed.KindText, Text: s, Ref: feed.NewRef(a.ID(), seq)}
}

// TestEditsAndDeletes: an author's edit replaces the text where it is shown
// (pages, arrivals, search), a delete hides it for good, nobody can change
// another author's message, and changes are not messages (count, unread).
func TestEditsAndDeletes(t *testing.T) {
	e := newEnv(t)
	ann, bob := newAuthor(t), newAuthor(t)
	e.say(ann, t0, text("helo world"), text("second"), text("third"))
	e.say(bob, t0, text("bob's line"))
	e.wait()
	before := e.v.Indexed()

	e.say(ann, t0, edit(ann, 0, "hello world"), edit(ann, 0, "hello world!"), del(ann, 1))
	e.say(bob, t0, edit(ann, 2, "bob was here"), del(ann, 2)) // not bob's messages
	e.say(ann, t0, edit(ann, 1, "back from the dead"))        // a delete is final
	e.wait()

	if n, _ := e.v.Count(e.d); n != 4 {
		t.Fatalf("count %d, want 4 (edits are not messages)", n)
	}
	if u, _ := e.v.Unread(e.d); u.Messages != 4 {
		t.Fatalf("unread %d, want 4", u.Messages)
	}
	msgs, err := e.v.Last(e.d, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Message{}
	for _, m := range msgs {
		got[m.Author.Short()+"/"+string(rune('0'+m.Seq))] = m
	}
	if m := got[ann.ID().Short()+"/0"]; m.Text != "hello world!" || !m.Edited || m.Deleted {
		t.Fatalf("edited message: %+v", m)
	}
	if m := got[ann.ID().Short()+"/1"]; m.Text != "" || !m.Deleted {
		t.Fatalf("deleted message: %+v", m)
	}
	if m := got[ann.ID().Short()+"/2"]; m.Text != "third" || m.Edited || m.Deleted {
		t.Fatalf("another author changed ann's message: %+v", m)
	}

	// Live readers learn each accepted change once, with the current state.
	eds, err := e.v.Edits(e.d, before, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(eds) != 3 {
		t.Fatalf("%d edits listed, want 3 (2 edits and a delete of ann's): %+v", len(eds), eds)
	}
	for _, ed := range eds {
		if ed.Author != ann.ID() {
			t.Fatalf("a refused change is listed: %+v", ed)
		}
		if ed.Seq == 0 && ed.Text != "hello world!" || ed.Seq == 1 && !ed.Deleted {
			t.Fatalf("edit %+v is not the current state", ed)
		}
	}

	// Search finds what is shown, not what was replaced or deleted.
	if found, _, _ := e.v.Search(e.d, "helo", "", 10); len(found) != 0 {
		t.Fatalf("search found replaced text: %+v", found)
	}
	if found, _, _ := e.v.Search(e.d, "world!", "", 10); len(found) != 1 || found[0].Seq != 0 {
		t.Fatalf("search for the edited text: %+v", found)
	}
	if found, _, _ := e.v.Search(e.d, "second", "", 10); len(found) != 0 {
		t.Fatalf("search found a deleted message: %+v", found)
	}
}

// TestReplies: a reply carries the message it answers, as it is now.
func TestReplies(t *testing.T) {
	e := newEnv(t)
	ann, bob := newAuthor(t), newAuthor(t)
	e.say(ann, t0, nick("ann"), text("lunch at noon?"), text("or one?"))
	e.say(bob, t0, reply(ann, 1, "noon works"), reply(ann, 2, "not one"), reply(ann, 40, "to a message not held"))
	e.say(ann, t0, edit(ann, 1, "lunch at 12:30?"), del(ann, 2))
	e.wait()
	msgs, err := e.v.Last(e.d, 10)
	if err != nil {
		t.Fatal(err)
	}
	var replies []Message
	for _, m := range msgs {
		if m.ReplyTo != nil {
			replies = append(replies, m)
		}
	}
	if len(replies) != 3 {
		t.Fatalf("%d replies, want 3", len(replies))
	}
	r := replies[0].ReplyTo
	if r.Author != ann.ID() || r.Seq != 1 || r.Display != "ann" || r.Text != "lunch at 12:30?" || r.Missing || r.Deleted {
		t.Fatalf("reply to an edited message: %+v", r)
	}
	if r := replies[1].ReplyTo; !r.Deleted || r.Text != "" {
		t.Fatalf("reply to a deleted message: %+v", r)
	}
	if r := replies[2].ReplyTo; !r.Missing {
		t.Fatalf("reply to a message not held: %+v", r)
	}
	if replies[0].Text != "noon works" {
		t.Fatalf("reply text: %q", replies[0].Text)
	}
}
