package main

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/node"
)

// peerFeed writes a peer's feed in channel c in a data dir of its own (nick
// set, then texts) and returns its author id and entries, to be applied
// elsewhere as replication would.
func peerFeed(t *testing.T, c feed.Channel, nick string, texts ...string) (feed.AuthorID, []feed.Entry) {
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
		if _, err := n.Send(ctx, c.ID(), feed.Payload{Kind: feed.KindText, Text: s}); err != nil {
			t.Fatal(err)
		}
	}
	var es []feed.Entry
	if err := n.Store().Range(c.ID(), n.Self(), 0, 0, func(e feed.Entry) error { es = append(es, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return n.Self(), es
}

// membersJSON runs members --json and decodes it by author, checking that
// every line has exactly the documented fields.
func membersJSON(t *testing.T, dir string) map[string]map[string]any {
	t.Helper()
	out := mustOK(t, kchat(t, dir, "", "members", "general", "--json")).stdout
	want := []string{"author", "blocked", "bytes", "forked", "hidden", "last_arrival", "messages", "nick", "role", "throttled"}
	got := map[string]map[string]any{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%v: %q", err, l)
		}
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if strings.Join(keys, " ") != strings.Join(want, " ") {
			t.Fatalf("fields %v, want %v", keys, want)
		}
		got[m["author"].(string)] = m
	}
	return got
}

// TestBlockPurgeMembersCLI: members lists each author with nick, counts
// and flags; block resolves WHO as documented (ambiguous and unknown are
// errors, exit 1) and stops storing the author; --purge deletes what was
// stored; unblock lets them back; part --purge deletes the channel.
func TestBlockPurgeMembersCLI(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	n, c := openWithChannel(t, dir)
	if err := n.SetNick(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Send(ctx, c.ID(), feed.Payload{Kind: feed.KindText, Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	mal, malEs := peerFeed(t, c, "mallory", "spam 1", "spam 2", "spam 3")
	bob1, bob1Es := peerFeed(t, c, "bob", "I am bob")
	bob2, bob2Es := peerFeed(t, c, "bob", "no, I am bob")
	for _, f := range []struct {
		a  feed.AuthorID
		es []feed.Entry
	}{{mal, malEs}, {bob1, bob1Es}, {bob2, bob2Es}} {
		if _, err := n.Store().Apply(ctx, c.ID(), f.a, f.es); err != nil {
			t.Fatal(err)
		}
	}
	self := n.Self()
	n.Close()

	ms := membersJSON(t, dir)
	if len(ms) != 4 {
		t.Fatalf("%d members: %v", len(ms), ms)
	}
	m := ms[mal.String()]
	var bytes int
	for _, e := range malEs {
		bytes += len(e.Encode())
	}
	if m["nick"] != "mallory" || m["messages"] != 3.0 || m["bytes"] != float64(bytes) || m["blocked"] != false ||
		m["forked"] != false || m["throttled"] != false || m["role"] != "" || m["hidden"] != false {
		t.Fatalf("mallory: %v (want %d bytes)", m, bytes)
	}
	if at, err := time.Parse(time.RFC3339, m["last_arrival"].(string)); err != nil || time.Since(at) > time.Hour {
		t.Fatalf("last_arrival %v %v", m["last_arrival"], err)
	}
	if got := ms[bob1.String()]["nick"]; got != "bob~"+bob1.Short() {
		t.Fatalf("colliding nick shown as %v", got)
	}
	if ms[self.String()]["nick"] != "alice" || ms[self.String()]["messages"] != 1.0 {
		t.Fatalf("self: %v", ms[self.String()])
	}
	human := mustOK(t, kchat(t, dir, "", "members", "general")).stdout
	if !strings.Contains(human, mal.String()+"\tmallory\t3 messages\t") || strings.Count(human, "\n") != 4 {
		t.Fatalf("members: %q", human)
	}

	// WHO: unknown, too short, ambiguous are errors; nothing is blocked.
	for _, c := range []struct{ who, want string }{
		{"nobody", "no such author"},
		{"bob", "ambiguous"},
		{mal.String()[:6], "at least 8 hex"},
	} {
		r := kchat(t, dir, "", "block", "general", c.who)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Fatalf("block %q: %+v, want %q", c.who, r, c.want)
		}
	}
	if r := kchat(t, dir, "", "block", "general", "alice"); r.code == 0 || !strings.Contains(r.stderr, "yourself") {
		t.Fatalf("block self: %+v", r)
	}
	if r := kchat(t, dir, "", "block", "nowhere", "mallory"); r.code == 0 || !strings.Contains(r.stderr, "unknown channel") {
		t.Fatalf("block in unknown channel: %+v", r)
	}
	for _, m := range membersJSON(t, dir) {
		if m["blocked"] != false {
			t.Fatalf("blocked after failed commands: %v", m)
		}
	}

	// A nick with its ~suffix; an id prefix.
	out := mustOK(t, kchat(t, dir, "", "block", "general", "bob~"+bob1.Short())).stdout
	if out != "blocked bob~"+bob1.Short()+" ("+bob1.String()+") in general\n" {
		t.Fatalf("block: %q", out)
	}
	mustOK(t, kchat(t, dir, "", "block", "general", mal.String()[:10], "--purge"))
	ms = membersJSON(t, dir)
	if ms[bob1.String()]["blocked"] != true || ms[bob1.String()]["messages"] != 1.0 {
		t.Fatalf("bob1 after block: %v", ms[bob1.String()])
	}
	if m := ms[mal.String()]; m["blocked"] != true || m["messages"] != 0.0 || m["bytes"] != 0.0 || m["last_arrival"] != "" {
		t.Fatalf("mallory after block --purge: %v", m)
	}
	if read := mustOK(t, kchat(t, dir, "", "read", "general")).stdout; strings.Contains(read, "spam") || !strings.Contains(read, "I am bob") {
		t.Fatalf("read after purge: %q", read)
	}

	n2, err := node.Open(ctx, node.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n2.Store().Apply(ctx, c.ID(), mal, malEs); !errors.Is(err, feed.ErrBlocked) {
		t.Fatalf("blocked feed applied: %v", err)
	}
	if heads, _ := n2.Store().Heads(c.ID()); len(heads) != 3 {
		t.Fatalf("%d feeds after purge, want 3", len(heads))
	}
	n2.Close()

	out = mustOK(t, kchat(t, dir, "", "unblock", "general", mal.String()[:8])).stdout
	if !strings.HasPrefix(out, "unblocked ") {
		t.Fatalf("unblock: %q", out)
	}
	if _, ok := membersJSON(t, dir)[mal.String()]; ok {
		t.Fatal("purged, unblocked author still listed")
	}

	mustOK(t, kchat(t, dir, "", "part", "general", "--purge"))
	if out := mustOK(t, kchat(t, dir, "", "channels")).stdout; out != "" {
		t.Fatalf("channels after part --purge: %q", out)
	}
	n3, err := node.Open(ctx, node.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer n3.Close()
	if heads, _ := n3.Store().Heads(c.ID()); len(heads) != 0 {
		t.Fatalf("%d feeds after part --purge", len(heads))
	}
	if n, _ := n3.Views().Count(c.ID()); n != 0 {
		t.Fatalf("%d rows after part --purge", n)
	}
}

// TestBlockThroughRunningNode: block, members and unblock work through the
// control socket of a running node, and the node's list (what the UI
// hides) follows.
func TestBlockThroughRunningNode(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, c := openWithChannel(t, dir)
	defer n.Close()
	mal, es := peerFeed(t, c, "mallory", "spam")
	if _, err := n.Store().Apply(ctx, c.ID(), mal, es); err != nil {
		t.Fatal(err)
	}
	a := &app{dataDir: dir}
	srv, err := a.serve(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	mustOK(t, kchat(t, dir, "", "block", "general", "mallory"))
	if !n.Blocked()[mal] || !n.BlockedIn(c.ID())[mal] || !n.Store().IsBlocked(c.ID(), mal) {
		t.Fatal("the running node does not know the block")
	}
	if m := membersJSON(t, dir)[mal.String()]; m["blocked"] != true {
		t.Fatalf("members through the node: %v", m)
	}
	if r := kchat(t, dir, "", "block", "general", "nobody"); r.code == 0 || !strings.Contains(r.stderr, "no such author") {
		t.Fatalf("unknown WHO through the node: %+v", r)
	}
	mustOK(t, kchat(t, dir, "", "unblock", "general", "mallory"))
	if n.Blocked()[mal] {
		t.Fatal("still blocked")
	}
}
