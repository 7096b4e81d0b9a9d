package main

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/testutil"
	"github.com/kchat-p2p/kchat/node"
)

// privatePeer writes, in a data dir of its own, a peer's feed in channel c:
// its nick, then private messages to `to`; it returns the peer's id and
// entries, to be applied elsewhere as replication would.
func privatePeer(t *testing.T, c feed.Channel, nick string, to feed.AuthorID, texts ...string) (feed.AuthorID, []feed.Entry) {
	t.Helper()
	ctx := context.Background()
	n, err := node.Open(ctx, node.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.Join(ctx, c.Key, c.Name); err != nil {
		t.Fatal(err)
	}
	if err := n.SetNick(ctx, nick); err != nil {
		t.Fatal(err)
	}
	for _, s := range texts {
		if _, err := n.SendPrivate(ctx, c.ID(), to, s); err != nil {
			t.Fatal(err)
		}
	}
	var es []feed.Entry
	if err := n.Store().Range(c.ID(), n.Self(), 0, 0, func(e feed.Entry) error { es = append(es, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return n.Self(), es
}

// TestMsgsFollowFilterBlock: msgs --follow prints private messages as they
// arrive; msgs WHO keeps one person's; msg resolves WHO and --via; a
// blocked author's private messages are not shown.
func TestMsgsFollowFilterBlock(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, c := openWithChannel(t, dir)
	defer n.Close()
	if err := n.SetNick(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	bob, bobEs := privatePeer(t, c, "bob", n.Self(), "one from bob", "two from bob")
	mal, malEs := privatePeer(t, c, "mallory", n.Self(), "buy now")
	if _, err := n.Store().Apply(ctx, c.ID(), bob, bobEs[:2]); err != nil { // nick and the first message
		t.Fatal(err)
	}
	srv, err := (&app{dataDir: dir}).serve(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	var out, errb testutil.SyncBuffer
	done := make(chan int)
	fctx, stopFollow := context.WithCancel(ctx)
	go func() {
		done <- run(fctx, []string{"msgs", "--follow", "--json"}, strings.NewReader(""), &out, &errb, &served{node: n})
	}()
	testutil.Eventually(t, 10*time.Second, "msgs --follow to print bob's first message", func() bool {
		return strings.Contains(out.String(), `"text":"one from bob"`)
	})
	if _, err := n.Store().Apply(ctx, c.ID(), bob, bobEs[2:]); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "msgs --follow to print bob's second message", func() bool {
		return strings.Contains(out.String(), `"text":"two from bob"`)
	})
	if _, err := n.Store().Apply(ctx, c.ID(), mal, malEs); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "msgs --follow to print mallory's message", func() bool {
		return strings.Contains(out.String(), `"text":"buy now"`)
	})
	stopFollow()
	if code := <-done; code != 0 {
		t.Fatalf("msgs --follow exited %d: %s", code, errb.String())
	}
	if strings.Count(out.String(), "one from bob") != 1 {
		t.Fatalf("a message printed twice:\n%s", out.String())
	}

	// Replies: by nick, by id prefix, with --via.
	mustOK(t, kchat(t, dir, "", "msg", "bob", "hello", "bob"))
	mustOK(t, kchat(t, dir, "", "msg", bob.String()[:10], "by prefix"))
	mustOK(t, kchat(t, dir, "", "msg", "--via", "general", "bob", "via general"))
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"msg", "bob"}, "requires at least 2 arg"},
		{[]string{"msg", "bob", " "}, "empty message"},
		{[]string{"msg", "zed", "hi"}, "no channel you share"},
		{[]string{"msg", "--via", "nowhere", "bob", "hi"}, "unknown channel"},
		{[]string{"msg", "--via", "general", "zed", "hi"}, "no such author"},
		{[]string{"msg", bob.String()[:6], "hi"}, "8 hex"},
		{[]string{"msgs", "--limit", "0"}, "--limit"},
	} {
		if r := kchat(t, dir, "", bad.args...); r.code == 0 || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", bad.args, r.code, r.stderr, bad.want)
		}
	}
	withBob := privates(t, dir, "bob")
	if len(withBob) != 5 {
		t.Fatalf("msgs bob: %d messages, want 5: %+v", len(withBob), withBob)
	}
	for i, want := range []string{"one from bob", "two from bob", "hello bob", "by prefix", "via general"} {
		if withBob[i].Text != want {
			t.Fatalf("msgs bob [%d] = %q, want %q", i, withBob[i].Text, want)
		}
	}
	if got := withBob[2]; got.From != "alice" || got.To != "bob" || got.FromID != n.Self().String() || got.ToID != bob.String() {
		t.Fatalf("alice's own message: %+v", got)
	}
	// Exactly the documented fields.
	line, _, _ := strings.Cut(mustOK(t, kchat(t, dir, "", "msgs", "--json", "--limit", "1")).stdout, "\n")
	var fields map[string]any
	if err := json.Unmarshal([]byte(line), &fields); err != nil {
		t.Fatal(err)
	}
	if keys := slices.Sorted(maps.Keys(fields)); !slices.Equal(keys, []string{"from", "from_id", "text", "time", "to", "to_id", "via"}) {
		t.Fatalf("msgs --json fields: %v", keys)
	}
	if last := privates(t, dir, "--limit", "2"); len(last) != 2 || last[1].Text != "via general" || last[0].Text != "by prefix" {
		t.Fatalf("--limit 2: %+v", last)
	}
	if len(privates(t, dir, mal.String()[:8])) != 1 {
		t.Fatal("msgs by id prefix")
	}

	// Blocking mallory hides her private messages too.
	mustOK(t, kchat(t, dir, "", "block", "general", "mallory"))
	for _, p := range privates(t, dir) {
		if p.FromID == mal.String() {
			t.Fatalf("a blocked author's private message: %+v", p)
		}
	}
	if human := mustOK(t, kchat(t, dir, "", "msgs")).stdout; strings.Contains(human, "buy now") ||
		!strings.Contains(human, "[general] alice -> bob: hello bob") {
		t.Fatalf("msgs: %q", human)
	}
	// None of it is in the channel.
	if read := mustOK(t, kchat(t, dir, "", "read", "general")).stdout; strings.Contains(read, "hello bob") || strings.Contains(read, "one from bob") {
		t.Fatalf("read shows private messages: %q", read)
	}
}

// TestMsgWhoAcrossChannels: two authors called bob in two channels make
// "bob" ambiguous without --via; --via or an id prefix picks one.
func TestMsgWhoAcrossChannels(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	n, c := openWithChannel(t, dir)
	other, err := n.Create(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	bob1, es1 := peerFeed(t, c, "bob", "in general")
	bob2, es2 := peerFeed(t, other, "bob", "in other")
	if _, err := n.Store().Apply(ctx, c.ID(), bob1, es1); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Store().Apply(ctx, other.ID(), bob2, es2); err != nil {
		t.Fatal(err)
	}
	n.Close()
	if r := kchat(t, dir, "", "msg", "bob", "hi"); r.code == 0 || !strings.Contains(r.stderr, "more than one author") {
		t.Fatalf("ambiguous bob: %+v", r)
	}
	if out := mustOK(t, kchat(t, dir, "", "msg", "--via", "other", "bob", "hi")).stdout; !strings.Contains(out, "via other") {
		t.Fatalf("--via other: %q", out)
	}
	if out := mustOK(t, kchat(t, dir, "", "msg", bob1.String()[:8], "hi")).stdout; !strings.Contains(out, "via general") {
		t.Fatalf("by prefix: %q", out)
	}
	ps := privates(t, dir)
	if len(ps) != 2 || ps[0].ToID != bob2.String() || ps[0].Via != "other" || ps[1].ToID != bob1.String() || ps[1].Via != "general" {
		t.Fatalf("msgs: %+v", ps)
	}
}
