package views

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
)

// TestPaging checks Last, Before and After against the full order, walking
// the whole history both ways in pages.
func TestPaging(t *testing.T) {
	e := newEnv(t)
	authors := []*author{newAuthor(t), newAuthor(t), newAuthor(t)}
	var want []string
	// 250 messages, 1 s apart, round robin over the authors; applied in
	// reverse author order so arrival order differs from time order.
	per := map[*author][]feed.Payload{}
	at := map[*author][]time.Time{}
	for i := range 250 {
		a := authors[i%3]
		s := fmt.Sprintf("m%03d", i)
		want = append(want, s)
		per[a] = append(per[a], text(s))
		at[a] = append(at[a], t0.Add(time.Duration(i-300)*time.Second))
	}
	for _, a := range slices.Backward(authors) {
		var es []feed.Entry
		for i, p := range per[a] {
			es = append(es, a.entries(e.d, at[a][i], p)...)
		}
		e.apply(a, es)
	}
	e.wait()

	if n, err := e.v.Count(e.d); err != nil || n != 250 {
		t.Fatalf("count %d %v", n, err)
	}
	last, err := e.v.Last(e.d, 50)
	if err != nil {
		t.Fatal(err)
	}
	if got := textsOf(last); !slices.Equal(got, want[200:]) {
		t.Fatalf("last 50:\n got %v\nwant %v", got, want[200:])
	}
	// Backwards from the end in pages of 40.
	var back []string
	for c := Cursor(""); ; {
		page, err := e.v.Before(e.d, c, 40)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		back = append(textsOf(page), back...)
		c = page[0].Cursor
	}
	if !slices.Equal(back, want) {
		t.Fatalf("backwards walk gave %d messages, out of order or incomplete", len(back))
	}
	// Forwards from the start in pages of 33.
	var fwd []string
	for c := Cursor(""); ; {
		page, err := e.v.After(e.d, c, 33)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		fwd = append(fwd, textsOf(page)...)
		c = page[len(page)-1].Cursor
	}
	if !slices.Equal(fwd, want) {
		t.Fatalf("forwards walk gave %d messages, out of order or incomplete", len(fwd))
	}
	// A cursor in the middle, both ways.
	mid := last[10].Cursor // want[210]
	if b, _ := e.v.Before(e.d, mid, 3); !slices.Equal(textsOf(b), want[207:210]) {
		t.Fatalf("before mid: %v", textsOf(b))
	}
	if a, _ := e.v.After(e.d, mid, 3); !slices.Equal(textsOf(a), want[211:214]) {
		t.Fatalf("after mid: %v", textsOf(a))
	}
	// Edges.
	if m, err := e.v.Last(e.d, 0); err != nil || len(m) != 0 {
		t.Fatalf("last 0: %v %v", m, err)
	}
	if m, err := e.v.Last(e.d, 1000); err != nil || len(m) != 250 {
		t.Fatalf("last 1000: %d %v", len(m), err)
	}
	if _, err := e.v.Before(e.d, "not a cursor", 5); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
	other, _ := feed.NewChannelKey()
	if m, err := e.v.Last(other.DiscoveryID(), 10); err != nil || len(m) != 0 {
		t.Fatalf("unknown channel: %v %v", m, err)
	}
	// Fields of a row.
	m := last[49]
	if m.Kind != feed.KindText || m.Seq != 83 || m.Author != authors[249%3].ID() || m.Own ||
		!m.Time.Equal(t0.Add(-51*time.Second)) || !m.Claimed.Equal(m.Time) || m.Arrival == 0 ||
		m.Display != m.Author.Short() || m.Nick != "" || m.Channel != e.d {
		t.Fatalf("row: %+v", m)
	}
}

// TestOrderingSkewedClocks checks the ordering rule: an entry from the far
// future is placed at its arrival, small skew is believed, and an author
// whose clock goes backwards still appears in their own order.
func TestOrderingSkewedClocks(t *testing.T) {
	e := newEnv(t)
	ann, bob, cat := newAuthor(t), newAuthor(t), newAuthor(t)

	e.say(ann, t0.Add(-10*time.Second), text("ann 1"))
	e.say(bob, t0.Add(time.Hour), text("bob from the future")) // indexed at t0
	e.say(cat, t0.Add(30*time.Second), text("cat slightly ahead"))
	e.wait()
	e.clock.Set(t0.Add(2 * time.Second))
	e.say(ann, t0.Add(1*time.Second), text("ann 2"))
	e.say(bob, t0.Add(time.Hour+time.Second), text("bob again")) // indexed at t0+2s
	// Cat's clock jumps back a minute: still after cat's first message.
	e.say(cat, t0.Add(-30*time.Second), text("cat 2"), text("cat 3"))
	e.wait()

	got, err := e.v.Last(e.d, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ann 1", "bob from the future", "ann 2", "bob again", "cat slightly ahead", "cat 2", "cat 3"}
	if !slices.Equal(textsOf(got), want) {
		t.Fatalf("order\n got %q\nwant %q", textsOf(got), want)
	}
	byText := map[string]Message{}
	for _, m := range got {
		byText[m.Text] = m
	}
	check := func(s string, shown, claimed time.Time) {
		t.Helper()
		m := byText[s]
		if !m.Time.Equal(shown) || !m.Claimed.Equal(claimed) {
			t.Errorf("%q: time %v claimed %v, want %v and %v", s, m.Time, m.Claimed, shown, claimed)
		}
	}
	check("bob from the future", t0, t0.Add(time.Hour))
	check("bob again", t0.Add(2*time.Second), t0.Add(time.Hour+time.Second))
	check("cat slightly ahead", t0.Add(30*time.Second), t0.Add(30*time.Second))
	check("cat 2", t0.Add(30*time.Second), t0.Add(-30*time.Second))
	check("ann 2", t0.Add(time.Second), t0.Add(time.Second))

	// The rule survives a restart (per-feed state is stored): cat writes
	// an even earlier time, still placed after cat 3.
	e.reopen()
	e.say(cat, t0.Add(-time.Hour), text("cat 4"))
	e.wait()
	got, _ = e.v.Last(e.d, 1)
	if len(got) != 1 || got[0].Text != "cat 4" || !got[0].Time.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("after restart: %+v", got)
	}
}

// TestArrived lists new messages in arrival order, including one that sorts
// into the past.
func TestArrived(t *testing.T) {
	e := newEnv(t)
	ann, bob := newAuthor(t), newAuthor(t)
	e.say(ann, t0, texts("ann", 3)...)
	e.wait()
	mark := e.v.Indexed()
	e.say(bob, t0.Add(-time.Hour), text("late, from the past"))
	e.say(ann, t0.Add(time.Second), text("new"))
	e.wait()
	got, err := e.v.Arrived(e.d, mark, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(textsOf(got), []string{"late, from the past", "new"}) {
		t.Fatalf("arrived: %q", textsOf(got))
	}
	if got[0].Arrival != mark+1 || got[1].Arrival != mark+2 {
		t.Fatalf("arrival numbers %d %d after %d", got[0].Arrival, got[1].Arrival, mark)
	}
	// Following by the last Arrival seen.
	if more, _ := e.v.Arrived(e.d, got[1].Arrival, 10); len(more) != 0 {
		t.Fatalf("nothing new, got %q", textsOf(more))
	}
	if first, _ := e.v.Arrived(e.d, 0, 2); !slices.Equal(textsOf(first), []string{"ann 0", "ann 1"}) {
		t.Fatalf("first two: %q", textsOf(first))
	}
}

// TestTopicsAndEvents: the latest topic by the ordering time wins, and topic
// and nick changes are shown as events in the message list.
func TestTopicsAndEvents(t *testing.T) {
	e := newEnv(t)
	ann, bob := newAuthor(t), newAuthor(t)
	if s, err := e.v.Topic(e.d); err != nil || s != "" {
		t.Fatalf("no topic yet: %q %v", s, err)
	}
	e.say(ann, t0, topic("first"))
	e.say(ann, t0.Add(time.Second), topic("second"), nick("ann"))
	// Bob's topic arrives later but was set earlier: it does not win.
	e.say(bob, t0.Add(-time.Minute), topic("bob's old topic"))
	e.wait()
	if s, _ := e.v.Topic(e.d); s != "second" {
		t.Fatalf("topic %q", s)
	}
	e.say(bob, t0.Add(time.Minute), topic(""))
	e.wait()
	if s, _ := e.v.Topic(e.d); s != "" {
		t.Fatalf("cleared topic %q", s)
	}
	got, _ := e.v.Last(e.d, 10)
	kinds := []feed.Kind{}
	for _, m := range got {
		kinds = append(kinds, m.Kind)
	}
	if !slices.Equal(kinds, []feed.Kind{feed.KindTopic, feed.KindTopic, feed.KindTopic, feed.KindNick, feed.KindTopic}) {
		t.Fatalf("events %v %q", kinds, textsOf(got))
	}
}

// TestSkipsUnknownAndUndecodable: entries views cannot show (unknown kinds,
// CBOR that is not a payload) still advance the clock.
func TestSkipsUnknownAndUndecodable(t *testing.T) {
	e := newEnv(t)
	ann := newAuthor(t)
	es := []feed.Entry{
		ann.entryRaw(e.d, t0, []byte{0xa2, 0x01, 0x18, 0x63, 0x02, 0x61, 'x'}), // {1: 99, 2: "x"}: unknown kind
		ann.entryRaw(e.d, t0, []byte{0x01}),                                    // CBOR 1: not a payload
	}
	es = append(es, ann.entries(e.d, t0, text("fine"))...)
	e.apply(ann, es)
	e.apply(ann, []feed.Entry{ann.entryRaw(e.d, t0, []byte{0x80})}) // CBOR []: not a payload
	e.say(ann, t0, text("after the bad one"))
	e.wait()
	if e.v.Indexed() != 5 {
		t.Fatalf("indexed %d, want 5", e.v.Indexed())
	}
	got, _ := e.v.Last(e.d, 10)
	if !slices.Equal(textsOf(got), []string{"fine", "after the bad one"}) {
		t.Fatalf("got %q", textsOf(got))
	}
}

// TestLargeMessages: chunks stay within Badger's transaction limit when
// messages are big, also when the byte bound is off and the chunk must be
// split after the fact.
func TestLargeMessages(t *testing.T) {
	for _, bytesBound := range []int{maxChunkBytes, 1 << 30} {
		t.Run(fmt.Sprint(bytesBound), func(t *testing.T) {
			e := newEnv(t, func(v *Views) { v.chunkBytes = bytesBound })
			ann := newAuthor(t)
			big := make([]byte, 16000)
			for i := range big {
				big[i] = 'a' + byte(i%26)
			}
			for range 4 {
				// The store itself cannot take much more than 100 of these
				// per call (see the report on feed.Store.write).
				e.say(ann, t0, slices.Repeat([]feed.Payload{text(string(big))}, 100)...)
			}
			e.wait()
			if n, _ := e.v.Count(e.d); n != 400 {
				t.Fatalf("count %d", n)
			}
		})
	}
}
