package views

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/seal"
)

// sealTo makes a kind 8 payload from a to b.
func sealTo(t testing.TB, from, to *author, text string) feed.Payload {
	t.Helper()
	fid, tid := from.ID(), to.ID()
	toKey, err := seal.PublicFromEd25519(tid[:])
	if err != nil {
		t.Fatal(err)
	}
	b, err := seal.Seal(nil, seal.Message{From: fid, To: tid, Text: text}, toKey, from.id.BoxKey().Public())
	if err != nil {
		t.Fatal(err)
	}
	return feed.Payload{Kind: feed.KindSealed, Sealed: b}
}

// TestPrivateView: the local user sees private messages to and from them,
// not others'; none is a row of the channel; a changed or replayed sealed
// payload is undecryptable, never text; a blocked author's are dropped;
// a purge of the author drops their rows.
func TestPrivateView(t *testing.T) {
	blocked := map[feed.AuthorID]bool{}
	e := newEnv(t, WithBlocked(func() map[feed.AuthorID]bool { return blocked }))
	e.reopen(WithBoxKey(e.me.id.BoxKey()))
	alice, carol := newAuthor(t), newAuthor(t)
	e.say(alice, t0, nick("alice"), text("hello all"), sealTo(t, alice, e.me, "psst, me here"))
	e.say(carol, t0, nick("carol"), sealTo(t, carol, alice, "carol to alice"))
	e.say(e.me, t0, sealTo(t, e.me, alice, "me to alice"))
	// Replay: carol copies alice's sealed bytes into her own feed.
	var replay feed.Payload
	if err := e.st.Range(e.d, alice.ID(), 2, 3, func(en feed.Entry) error {
		var err error
		replay, err = feed.UnmarshalPayload(en.Payload)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Forgery: carol seals to me, then changes a byte of the body.
	forged := sealTo(t, carol, e.me, "changed")
	forged.Sealed[len(forged.Sealed)-1] ^= 1
	e.say(carol, t0, replay, forged)
	e.wait()

	ps, err := e.v.Private(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 4 {
		t.Fatalf("%d private messages, want 4: %+v", len(ps), ps)
	}
	if p := ps[0]; p.From != alice.ID() || p.To != e.me.ID() || p.Text != "psst, me here" || p.Own || p.Undecryptable ||
		p.FromDisplay != "alice" || p.Channel != e.d || p.Seq != 2 {
		t.Fatalf("from alice: %+v", p)
	}
	if p := ps[1]; !p.Own || p.To != alice.ID() || p.Text != "me to alice" || p.ToDisplay != "alice" {
		t.Fatalf("mine: %+v", p)
	}
	for _, p := range ps[2:] {
		if !p.Undecryptable || p.Text != "" || p.From != carol.ID() {
			t.Fatalf("replayed or forged shown as %+v", p)
		}
	}
	if after, _ := e.v.Private(ps[1].Arrival, 100); len(after) != 2 {
		t.Fatalf("after: %d", len(after))
	}
	msgs, err := e.v.Last(e.d, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Kind == feed.KindSealed || m.Text == "" {
			t.Fatalf("a sealed entry in the channel: %+v", m)
		}
	}
	if n, _ := e.v.Count(e.d); n != 3 {
		t.Fatalf("channel count %d, want 3 (two nicks, one text)", n)
	}

	blocked[carol.ID()] = true
	if ps, _ := e.v.Private(0, 100); len(ps) != 2 {
		t.Fatalf("blocked author's messages shown: %d", len(ps))
	}
	delete(blocked, carol.ID())
	if err := e.v.DropAuthor(t.Context(), e.d, carol.ID()); err != nil {
		t.Fatal(err)
	}
	if ps, _ := e.v.Private(0, 100); len(ps) != 2 {
		t.Fatalf("purged author's messages shown: %d", len(ps))
	}
	if err := e.v.DropChannel(t.Context(), e.d); err != nil {
		t.Fatal(err)
	}
	if ps, _ := e.v.Private(0, 100); len(ps) != 0 {
		t.Fatalf("purged channel's messages shown: %d", len(ps))
	}
}

// TestPrivateViewWithoutKey: without a box key nothing is opened.
func TestPrivateViewWithoutKey(t *testing.T) {
	e := newEnv(t)
	alice := newAuthor(t)
	e.say(alice, t0, sealTo(t, alice, e.me, "psst"))
	e.wait()
	if ps, err := e.v.Private(0, 10); err != nil || len(ps) != 0 {
		t.Fatalf("%v %v", ps, err)
	}
}

// BenchmarkIndexSealed compares catching up 10k entries into every view,
// with the local box key set, when they are text messages and when they
// are private messages between two others (each one trial-decrypted: one
// X25519 multiplication), as BenchmarkIndex does for 100k texts.
func BenchmarkIndexSealed(b *testing.B) {
	const n = 10_000
	for _, kind := range []string{"text", "sealed"} {
		b.Run(kind, func(b *testing.B) {
			alice, bob := newAuthor(b), newAuthor(b)
			p := sealTo(b, alice, bob, "a private message of some length, about 50 bytes")
			if kind == "text" {
				p = text("a public message of some length, about 50 bytes..")
			}
			ps := make([]feed.Payload, n)
			for i := range ps {
				ps[i] = p
			}
			var total, cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				e := newEnv(b)
				e.v.Close()
				es := alice.entries(e.d, t0, ps...)
				alice.head = map[feed.DiscoveryID]feed.Head{}
				e.apply(alice, es)
				b.StartTimer()
				start, cpu0 := time.Now(), cpuTime()
				e.openViews(WithBoxKey(e.me.id.BoxKey()))
				e.wait()
				total += time.Since(start)
				cpu += cpuTime() - cpu0
			}
			b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "entries/s")
			// CPU time per entry: on a shared machine wall time also counts
			// the time other processes held the cores.
			b.ReportMetric(float64(cpu.Microseconds())/float64(n*b.N), "cpu-µs/entry")
		})
	}
}

// TestPrivateUnread: per person, what they sent after the conversation's
// read marker; markers survive a reopen and never go back.
func TestPrivateUnread(t *testing.T) {
	e := newEnv(t)
	e.reopen(WithBoxKey(e.me.id.BoxKey()))
	alice, bob := newAuthor(t), newAuthor(t)
	e.say(alice, t0, sealTo(t, alice, e.me, "a1"), sealTo(t, alice, e.me, "a2"))
	e.say(bob, t0, sealTo(t, bob, e.me, "b1"))
	e.say(e.me, t0, sealTo(t, e.me, alice, "mine"))
	e.wait()
	un, err := e.v.PrivateUnread()
	if err != nil || un[alice.ID()] != 2 || un[bob.ID()] != 1 || len(un) != 2 {
		t.Fatalf("unread %v %v", un, err)
	}
	ps, _ := e.v.Private(0, 100)
	if err := e.v.MarkPrivateRead(alice.ID(), ps[0].Arrival); err != nil {
		t.Fatal(err)
	}
	if err := e.v.MarkPrivateRead(bob.ID(), ps[2].Arrival); err != nil {
		t.Fatal(err)
	}
	if err := e.v.MarkPrivateRead(bob.ID(), 1); err != nil { // never back
		t.Fatal(err)
	}
	e.reopen(WithBoxKey(e.me.id.BoxKey()))
	e.wait()
	if un, _ := e.v.PrivateUnread(); un[alice.ID()] != 1 || un[bob.ID()] != 0 {
		t.Fatalf("after marking: %v", un)
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestPrivateModHidden: a private message from an author moderation hides
// or blocks in the channel it came through is not listed (nor counted
// unread); the same author's private message through another channel,
// where nobody hid them, is.
func TestPrivateModHidden(t *testing.T) {
	adm := newAuthor(t)
	e := newEnvAdmins(t, []*author{adm})
	e.reopen(WithBoxKey(e.me.id.BoxKey()))
	k2, err := feed.NewChannelKey()
	if err != nil {
		t.Fatal(err)
	}
	other := feed.Channel{Key: k2, Name: "other"}
	if err := e.st.Join(other); err != nil {
		t.Fatal(err)
	}
	alice, bob := newAuthor(t), newAuthor(t)
	e.say(alice, t0, sealTo(t, alice, e.me, "from alice, here"))
	e.say(bob, t0, sealTo(t, bob, e.me, "from bob, here"))
	es := alice.entries(other.ID(), t0, sealTo(t, alice, e.me, "from alice, elsewhere"))
	if _, err := e.st.Apply(context.Background(), other.ID(), alice.ID(), es); err != nil {
		t.Fatal(err)
	}
	texts := func() []string {
		t.Helper()
		e.wait()
		ps, err := e.v.Private(0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range ps {
			out = append(out, p.Text)
		}
		return out
	}
	if got := texts(); len(got) != 3 {
		t.Fatalf("before moderation: %q, want all 3", got)
	}
	e.say(adm, t0, modOn(feed.ModHide, alice, "spam"), modOn(feed.ModBlock, bob, "spam"))
	if got := texts(); !slices.Equal(got, []string{"from alice, elsewhere"}) {
		t.Fatalf("after hiding alice and blocking bob here: %q, want only alice's from the other channel", got)
	}
	if un, err := e.v.PrivateUnread(); err != nil || un[alice.ID()] != 1 || un[bob.ID()] != 0 {
		t.Fatalf("unread %v (%v), want alice 1, bob 0", un, err)
	}
	e.say(adm, t0, modOn(feed.ModUnhide, alice, ""))
	if got := texts(); len(got) != 2 {
		t.Fatalf("after the unhide: %q, want alice's two", got)
	}
}
