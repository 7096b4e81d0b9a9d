package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/kchat-p2p/kchat/internal/testutil"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/node"
)

type result struct {
	code           int
	stdout, stderr string
}

func kchat(t *testing.T, dir string, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	var in io.Reader = strings.NewReader(stdin)
	code := run(context.Background(), append([]string{"--data", dir}, args...), in, &out, &errb, nil)
	return result{code, out.String(), errb.String()}
}

func mustOK(t *testing.T, r result) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, stderr: %s", r.code, r.stderr)
	}
	return r
}

func TestHeadlessCommands(t *testing.T) {
	dir := t.TempDir()
	id := mustOK(t, kchat(t, dir, "", "id")).stdout
	if !regexp.MustCompile(`^[0-9a-f]{64}\n$`).MatchString(id) {
		t.Fatalf("id: %q", id)
	}
	if again := mustOK(t, kchat(t, dir, "", "id")).stdout; again != id {
		t.Fatal("identity changed between runs")
	}
	key := strings.TrimSpace(mustOK(t, kchat(t, dir, "", "new", "general")).stdout)
	if !strings.HasPrefix(key, "kchat://") {
		t.Fatalf("new printed %q", key)
	}
	if r := kchat(t, dir, "", "nick"); r.code == 0 || !strings.Contains(r.stderr, "no nickname set") {
		t.Fatalf("nick before one is set: %+v", r)
	}
	mustOK(t, kchat(t, dir, "", "nick", "alice"))
	if out := mustOK(t, kchat(t, dir, "", "nick")).stdout; out != "alice\n" {
		t.Fatalf("nick: %q", out)
	}
	mustOK(t, kchat(t, dir, "", "send", "general", "hello", "world"))
	read := mustOK(t, kchat(t, dir, "", "read", "general")).stdout
	if !strings.Contains(read, "<alice> hello world") {
		t.Fatalf("read: %q", read)
	}
	chans := mustOK(t, kchat(t, dir, "", "channels")).stdout
	if !strings.HasPrefix(chans, "general\t") {
		t.Fatalf("channels: %q", chans)
	}

	// A second data dir joins by key under the name hint.
	dir2 := t.TempDir()
	if out := mustOK(t, kchat(t, dir2, "", "join", key)).stdout; out != "joined general\n" {
		t.Fatalf("join: %q", out)
	}
}

func TestSendStdinAndJSON(t *testing.T) {
	dir := t.TempDir()
	mustOK(t, kchat(t, dir, "", "new", "general"))
	var in strings.Builder
	for i := 1; i <= 3000; i++ {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	r := mustOK(t, kchat(t, dir, in.String(), "send", "general", "--stdin"))
	if n := strings.Count(r.stdout, "ok "); n != 3000 {
		t.Fatalf("%d acks, want 3000", n)
	}
	if !strings.HasSuffix(r.stdout, "ok 2999\n") {
		t.Fatalf("last ack: %q", r.stdout[len(r.stdout)-20:])
	}
	if chans := mustOK(t, kchat(t, dir, "", "channels")).stdout; chans != "general\t3000 messages\n" {
		t.Fatalf("channels after sending 3000: %q", chans)
	}
	out := mustOK(t, kchat(t, dir, "", "read", "general", "--limit", "5", "--json")).stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines: %q", len(lines), out)
	}
	for i, l := range lines {
		var m jsonMessage
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("line %d", 2996+i); m.Text != want || m.Kind != "text" {
			t.Fatalf("message %d: %+v, want %q", i, m, want)
		}
	}
}

func TestBadInputIsRejectedAndNothingHalfWritten(t *testing.T) {
	dir := t.TempDir()
	mustOK(t, kchat(t, dir, "", "new", "general"))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"join", "kchat://1234"}, "bad channel key"},
		{[]string{"join", "not-a-key"}, "bad channel key"},
		{[]string{"send", "nowhere", "hi"}, "unknown channel"},
		{[]string{"send", "general", ""}, "empty message"},
		{[]string{"send", "general"}, "nothing to send"},
		{[]string{"new", "bad name"}, "white space"},
		{[]string{"new", "general"}, "already in use"},
		{[]string{"read", "general", "--limit", "0"}, "--limit"},
	} {
		r := kchat(t, dir, "", c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, r.code, r.stderr, c.want)
		}
	}
	// A 1 MB line among good lines: the good ones are stored and
	// acknowledged, the bad one is reported, the exit code says so.
	in := "first\n" + strings.Repeat("x", 1<<20) + "\n\nlast\n"
	r := kchat(t, dir, in, "send", "general", "--stdin")
	if r.code == 0 || !strings.Contains(r.stderr, "line 2") || !strings.Contains(r.stderr, "line 3") {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	if r.stdout != "ok 0\nok 1\n" {
		t.Fatalf("acks %q", r.stdout)
	}
	read := mustOK(t, kchat(t, dir, "", "read", "general", "--json")).stdout
	if strings.Count(read, "\n") != 2 || !strings.Contains(read, `"text":"last"`) {
		t.Fatalf("stored: %q", read)
	}
}

func TestCommandsGoThroughRunningNode(t *testing.T) {
	dir := t.TempDir()
	mustOK(t, kchat(t, dir, "", "new", "general"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := node.Open(ctx, node.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	a := &app{dataDir: dir}
	srv, err := a.serve(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// The store is locked by n: these only work through the control socket.
	mustOK(t, kchat(t, dir, "one\ntwo\n", "send", "general", "--stdin"))
	mustOK(t, kchat(t, dir, "", "send", "general", "three"))
	out := mustOK(t, kchat(t, dir, "", "read", "general")).stdout
	if !strings.Contains(out, "> one") || !strings.Contains(out, "> three") {
		t.Fatalf("read through node: %q", out)
	}
	if r := kchat(t, dir, "", "send", "nowhere", "x"); r.code == 0 || !strings.Contains(r.stderr, "unknown channel") {
		t.Fatalf("error through node: %+v", r)
	}
}

func TestPrintableNeutralisesTerminalTricks(t *testing.T) {
	// The same sanitiser as the UI's: ESC[2J goes with its tail, LRM, RLM,
	// ALM, LS and zero-width characters do not pass.
	got := printable("hi\x1b[2J\r\n<mallory> fake\u202e\u200e\u200f\u061c\u200b|\u2028next\x07")
	if want := "hi⏎<mallory> fake|⏎next\u2407"; got != want {
		t.Fatalf("printable = %q, want %q", got, want)
	}
}

// TestChannelsCountIsCurrent: `channels` counts every stored message, even
// when the process that stored them stopped before its views indexed them
// (it once printed the views' stale count).
func TestChannelsCountIsCurrent(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	n, c := openWithChannel(t, dir)
	ps := make([]feed.Payload, 20000)
	for i := range ps {
		ps[i] = feed.Payload{Kind: feed.KindText, Text: fmt.Sprintf("m%d", i)}
	}
	if _, err := n.Send(ctx, c.ID(), ps...); err != nil {
		t.Fatal(err)
	}
	behind := n.Views().Indexed() < n.Store().Last()
	n.Close() // at once: the views may not have indexed everything
	if chans := mustOK(t, kchat(t, dir, "", "channels")).stdout; chans != "general\t20000 messages\n" {
		t.Fatalf("channels: %q (views were behind at close: %v)", chans, behind)
	}
}

// TestReadShowsEditsAndReplies: read prints a message as its author last
// edited it, marks deletes and quotes what a reply answers; --json says so
// in fields.
func TestReadShowsEditsAndReplies(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	n, c := openWithChannel(t, dir)
	me := n.Self()
	ps := []feed.Payload{
		{Kind: feed.KindText, Text: "helo"},
		{Kind: feed.KindText, Text: "secret"},
		{Kind: feed.KindEdit, Text: "hello", Ref: feed.NewRef(me, 0)},
		{Kind: feed.KindDelete, Ref: feed.NewRef(me, 1)},
		{Kind: feed.KindText, Text: "answering myself", Ref: feed.NewRef(me, 0)},
	}
	if _, err := n.Send(ctx, c.ID(), ps...); err != nil {
		t.Fatal(err)
	}
	n.Close()

	plain := mustOK(t, kchat(t, dir, "", "read", "general")).stdout
	for _, want := range []string{"> hello (edited)\n", "> (deleted)\n", "> ↪ " + me.Short() + ": hello | answering myself\n"} {
		if !strings.Contains(plain, want) {
			t.Fatalf("read does not show %q:\n%s", want, plain)
		}
	}
	if strings.Contains(plain, "secret") || strings.Contains(plain, "helo\n") {
		t.Fatalf("read shows replaced or deleted text:\n%s", plain)
	}
	out := mustOK(t, kchat(t, dir, "", "read", "general", "--json")).stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d messages, want 3 (edits are not messages):\n%s", len(lines), out)
	}
	var ms [3]jsonMessage
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &ms[i]); err != nil {
			t.Fatal(err)
		}
	}
	if !ms[0].Edited || ms[0].Text != "hello" || !ms[1].Deleted || ms[1].Text != "" ||
		ms[2].ReplyTo == nil || ms[2].ReplyTo.Seq != 0 || ms[2].ReplyTo.Author != me.String() {
		t.Fatalf("json: %+v", ms)
	}
}

// followJSON runs `read general --follow --json` against node n until ctx
// ends (its exit code then comes on done); waitOut waits until it printed
// want.
func followJSON(ctx context.Context, t *testing.T, n *node.Node) (out, errb *testutil.SyncBuffer, done chan int, waitOut func(want string)) {
	out, errb, done = new(testutil.SyncBuffer), new(testutil.SyncBuffer), make(chan int)
	go func() {
		done <- run(ctx, []string{"read", "general", "--follow", "--json"}, strings.NewReader(""), out, errb, &served{node: n})
	}()
	waitOut = func(want string) {
		t.Helper()
		defer func() {
			if t.Failed() {
				t.Logf("read --follow printed:\n%s%s", out.String(), errb.String())
			}
		}()
		testutil.Eventually(t, 10*time.Second, fmt.Sprintf("read --follow to print %q", want), func() bool { return strings.Contains(out.String(), want) })
	}
	return out, errb, done, waitOut
}

// TestReadFollow: read --follow prints new messages as they arrive, and
// edits and deletes of earlier ones as lines of their own.
func TestReadFollow(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, c := openWithChannel(t, dir)
	defer n.Close()
	if _, err := n.Send(ctx, c.ID(), feed.Payload{Kind: feed.KindText, Text: "old"}); err != nil {
		t.Fatal(err)
	}
	out, errb, done, waitOut := followJSON(ctx, t, n)
	waitOut(`"text":"old"`)
	me := n.Self()
	send := func(p feed.Payload) {
		t.Helper()
		if _, err := n.Send(ctx, c.ID(), p); err != nil {
			t.Fatal(err)
		}
	}
	send(feed.Payload{Kind: feed.KindText, Text: "new"})
	waitOut(`"text":"new"`)
	send(feed.Payload{Kind: feed.KindEdit, Text: "newer", Ref: feed.NewRef(me, 1)})
	waitOut(`{"kind":"edit","author":"` + me.String() + `","seq":1,"text":"newer"}`)
	send(feed.Payload{Kind: feed.KindDelete, Ref: feed.NewRef(me, 0)})
	waitOut(`{"kind":"delete","author":"` + me.String() + `","seq":0}`)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("read --follow exited %d: %s", code, errb.String())
	}
	if strings.Count(out.String(), `"text":"old"`) != 1 {
		t.Fatalf("a message printed twice:\n%s", out.String())
	}
}

// TestReadFollowKeepsModeration: read --follow keeps the channel's
// moderation between looks, and reads it again once moderation changed: a
// message hidden by a hide indexed after the follow started is not
// printed, the messages around it are.
func TestReadFollowKeepsModeration(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, c := openWithChannel(t, dir)
	defer n.Close()
	out, errb, done, waitOut := followJSON(ctx, t, n)
	// Another author writes; moderation never hides the local user from
	// themselves.
	other, err := feed.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	send := func(text string) feed.Entry {
		t.Helper()
		es, err := n.Store().Append(ctx, other, c.ID(), feed.Payload{Kind: feed.KindText, Text: text})
		if err != nil {
			t.Fatal(err)
		}
		return es[0]
	}
	first := send("before")
	waitOut(`"text":"before"`) // the follow has read moderation once
	// The channel's admin (this node) hides the other's next message.
	if _, err := n.Mod(ctx, c.ID(), feed.ModHide, other.ID(), true, first.Seq+1, "test"); err != nil {
		t.Fatal(err)
	}
	if e := send("hidden"); e.Seq != first.Seq+1 {
		t.Fatalf("the hidden message got seq %d, want %d", e.Seq, first.Seq+1)
	}
	send("after")
	waitOut(`"text":"after"`)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("read --follow exited %d: %s", code, errb.String())
	}
	if strings.Contains(out.String(), `"text":"hidden"`) {
		t.Fatalf("read --follow printed a message moderation hides:\n%s", out.String())
	}
}

// TestSendReplyEditDelete: send --reply-to, --edit and --delete write
// references to messages that exist, and refuse the rest with a reason.
func TestSendReplyEditDelete(t *testing.T) {
	dir := t.TempDir()
	mustOK(t, kchat(t, dir, "", "new", "general"))
	me := strings.TrimSpace(mustOK(t, kchat(t, dir, "", "id")).stdout)
	mustOK(t, kchat(t, dir, "", "nick", "ann"))                // seq 0: a nick entry
	mustOK(t, kchat(t, dir, "", "send", "general", "helo"))    // seq 1
	mustOK(t, kchat(t, dir, "", "send", "general", "to drop")) // seq 2
	if out := mustOK(t, kchat(t, dir, "", "send", "general", "--edit", "1", "hello")).stdout; out != "ok 3\n" {
		t.Fatalf("edit: %q", out)
	}
	mustOK(t, kchat(t, dir, "", "send", "general", "--delete", "2"))
	mustOK(t, kchat(t, dir, "", "send", "general", "--reply-to", me+":1", "answer"))

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--edit", "0", "x"}, "is a nick, not a message"},
		{[]string{"--edit", "99", "x"}, "not found"},
		{[]string{"--delete", "1", "x"}, "takes no TEXT"},
		{[]string{"--reply-to", me + ":99", "x"}, "not found"},
		{[]string{"--reply-to", "nope:1", "x"}, "reply-to"},
		{[]string{"--reply-to", me + ":1", "--edit", "1", "x"}, "one of"},
		{[]string{"--edit", "1", "--stdin"}, "not --stdin"},
	} {
		r := kchat(t, dir, "", append([]string{"send", "general"}, bad.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("send %v: exit %d, stderr %q; want an error with %q", bad.args, r.code, r.stderr, bad.want)
		}
	}
	out := mustOK(t, kchat(t, dir, "", "read", "general", "--json")).stdout
	var got []jsonMessage
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m jsonMessage
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m.Kind == "text" {
			got = append(got, m)
		}
	}
	if len(got) != 3 || got[0].Text != "hello" || !got[0].Edited || !got[1].Deleted ||
		got[2].ReplyTo == nil || got[2].ReplyTo.Seq != 1 || got[2].Text != "answer" {
		t.Fatalf("messages after reply, edit and delete: %+v", got)
	}

	// WHO as everywhere: a nick or an id prefix; without :SEQ, the latest.
	mustOK(t, kchat(t, dir, "", "send", "general", "--reply-to", "ann:1", "by nick"))
	mustOK(t, kchat(t, dir, "", "send", "general", "--reply-to", me[:8], "to the latest"))
	out = mustOK(t, kchat(t, dir, "", "read", "general", "--json", "--limit", "2")).stdout
	var last []jsonMessage
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m jsonMessage
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		last = append(last, m)
	}
	if len(last) != 2 || last[0].ReplyTo == nil || last[0].ReplyTo.Seq != 1 ||
		last[1].ReplyTo == nil || last[1].ReplyTo.Seq != last[0].Seq {
		t.Fatalf("replies by nick and to the latest: %+v", last)
	}
}

// openWithChannel opens a node on dir (offline) with a new channel "general".
// The caller closes the node (some tests close it early on purpose).
func openWithChannel(t *testing.T, dir string) (*node.Node, feed.Channel) {
	t.Helper()
	n, err := node.Open(context.Background(), node.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.Create(context.Background(), "general")
	if err != nil {
		n.Close()
		t.Fatal(err)
	}
	return n, c
}

// TestNotifier: --notify runs the command with "--" and then the title and
// text as two arguments (no shell: text from peers cannot inject anything;
// after "--", text starting with "-" cannot pass for an option), also in
// the environment, and a command that is not there is an error at start.
func TestNotifier(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	script := filepath.Join(dir, "notify")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s|%s|%s|%s|%s|%s|%s\\n' \"$1\" \"$2\" \"$3\" \"$4\" \"$5\" \"$KCHAT_NOTIFY_TITLE\" \"$KCHAT_NOTIFY_TEXT\" >> "+out+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notify, err := notifier(script + " -a kchat")
	if err != nil {
		t.Fatal(err)
	}
	if err := notify(context.Background(), "--bob in #general", "--icon=/x alice: $(touch pwned); `id`"); err != nil {
		t.Fatal(err)
	}
	want := "-a|kchat|--|--bob in #general|--icon=/x alice: $(touch pwned); `id`|--bob in #general|--icon=/x alice: $(touch pwned); `id`\n"
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("the notify command to write %q", want), func() bool {
		b, _ := os.ReadFile(out)
		return string(b) == want
	})
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Fatal("message text was run by a shell")
	}
	if _, err := notifier("/no/such/notifier"); err == nil {
		t.Fatal("a missing notify command was accepted")
	}
	if _, err := notifier("  "); err == nil {
		t.Fatal("an empty notify command was accepted")
	}
}

// TestBadKeysFile: a keys file the UI cannot use stops it before it takes
// the terminal, naming the file and the line.
func TestBadKeysFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys"), []byte("# mine\nnext-channel = Ctrl+Nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := kchat(t, dir, "", "--no-mdns", "--no-dht", "--no-nat", "--listen", "/ip4/127.0.0.1/tcp/0")
	if r.code == 0 || !strings.Contains(r.stderr, "keys: line 2: key \"Ctrl+Nope\"") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestSearchCommand: search prints matching messages oldest first, as
// edited, up to --limit (the newest), and says so when nothing matches.
func TestSearchCommand(t *testing.T) {
	dir := t.TempDir()
	mustOK(t, kchat(t, dir, "", "new", "general"))
	mustOK(t, kchat(t, dir, "Hello world\nnothing here\nsay HELLO again\ntypo helo\n", "send", "general", "--stdin"))
	mustOK(t, kchat(t, dir, "", "send", "general", "--edit", "3", "typo fixed: hello"))
	out := mustOK(t, kchat(t, dir, "", "search", "general", "hello")).stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], "Hello world") || !strings.HasSuffix(lines[2], "typo fixed: hello (edited)") {
		t.Fatalf("search: %q", out)
	}
	out = mustOK(t, kchat(t, dir, "", "search", "general", "hello", "--limit", "1", "--json")).stdout
	var m jsonMessage
	if err := json.Unmarshal([]byte(out), &m); err != nil || m.Seq != 3 {
		t.Fatalf("search --limit 1 --json: %q (%v)", out, err)
	}
	r := kchat(t, dir, "", "search", "general", "no such words")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "no message in general contains") {
		t.Fatalf("no match: %+v", r)
	}
}

// TestPeersJSON: `peers --json` through the control socket of a running
// node prints one object per (channel, peer) with exactly the documented
// fields, right on both ends of a session: the node that dialled (manual,
// outbound) and the one that was dialled (inbound).
func TestPeersJSON(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loopback := func(peers ...string) *node.NetOptions {
		return &node.NetOptions{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Peers: peers, NoMDNS: true, NoDHT: true, NoNAT: true}
	}
	serve := func(dir string, n *node.Node) {
		srv, err := (&app{dataDir: dir}).serve(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	a, err := node.Open(ctx, node.Options{DataDir: dirA, Net: loopback()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	c, err := a.Create(ctx, "general")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Create(ctx, "lonely"); err != nil {
		t.Fatal(err)
	}
	mustOK(t, kchat(t, dirB, "", "join", c.Key.WithName("general")))
	b, err := node.Open(ctx, node.Options{DataDir: dirB, Net: loopback(a.Addrs()[0])})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	serve(dirA, a)
	serve(dirB, b)
	session := func(n *node.Node) bool {
		for _, p := range n.Peers(c.ID()) {
			if p.Syncing {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(30 * time.Second)
	for !session(a) || !session(b) {
		if time.Now().After(deadline) {
			t.Fatal("no session between the two nodes")
		}
		time.Sleep(20 * time.Millisecond)
	}

	fields := []string{"addrs", "channel", "connected", "outbound", "peer", "session", "source"}
	rows := func(dir string, args ...string) []map[string]any {
		t.Helper()
		out := mustOK(t, kchat(t, dir, "", append([]string{"peers", "--json"}, args...)...)).stdout
		var res []map[string]any
		for line := range strings.Lines(out) {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("not a JSON object per line: %q: %v", line, err)
			}
			keys := slices.Sorted(maps.Keys(m))
			if !slices.Equal(keys, fields) {
				t.Fatalf("fields %v, want exactly %v", keys, fields)
			}
			res = append(res, m)
		}
		return res
	}
	check := func(who string, m map[string]any, peer node.PeerStatus, src string, outbound bool, addr string) {
		t.Helper()
		want := map[string]any{"channel": "general", "peer": peer.ID, "source": src, "connected": true, "session": true, "outbound": outbound}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s: %s = %v, want %v (row %v)", who, k, m[k], v, m)
			}
		}
		addrs, ok := m["addrs"].([]any)
		if !ok || len(addrs) == 0 {
			t.Fatalf("%s: addrs = %v, want a non-empty array", who, m["addrs"])
		}
		found := false
		for _, x := range addrs {
			s, ok := x.(string)
			if !ok || !strings.HasPrefix(s, "/ip4/127.0.0.1/tcp/") {
				t.Errorf("%s: addr %v is not a loopback TCP multiaddr", who, x)
			}
			found = found || addr == "" || strings.HasPrefix(addr, s+"/p2p/")
		}
		if !found {
			t.Errorf("%s: addrs %v do not include %s", who, addrs, addr)
		}
	}
	bRows := rows(dirB, "general")
	if len(bRows) != 1 {
		t.Fatalf("b: %d rows, want 1: %v", len(bRows), bRows)
	}
	check("b (dialled a)", bRows[0], node.PeerStatus{ID: peerID(a)}, "manual", true, a.Addrs()[0])

	aRows := rows(dirA) // all channels: "lonely" has no peers, so no rows
	if len(aRows) != 1 {
		t.Fatalf("a: %d rows, want 1: %v", len(aRows), aRows)
	}
	check("a (was dialled)", aRows[0], node.PeerStatus{ID: peerID(b)}, "inbound", false, "")

	// Without --json: the human output, with the node's own addresses
	// first (what another node dials).
	if out := mustOK(t, kchat(t, dirA, "", "peers")).stdout; !strings.Contains(out, "general: 1 peer(s)\n") ||
		!strings.Contains(out, "lonely: 0 peer(s)\n") || strings.Contains(out, "{") ||
		!strings.HasPrefix(out, "this node: "+a.Addrs()[0]+"\n") {
		t.Fatalf("peers without --json: %q", out)
	}
}

// peerID is n's libp2p peer id, from the /p2p/ part of its first address.
func peerID(n *node.Node) string {
	addr := n.Addrs()[0]
	return addr[strings.LastIndex(addr, "/p2p/")+len("/p2p/"):]
}

// TestJoinNameArg: `kchat join KEY NAME` as DESIGN.md says (also --name),
// and a name clash names an alternative.
func TestJoinNameArg(t *testing.T) {
	dir := t.TempDir()
	mustOK(t, kchat(t, dir, "", "new", "general"))
	k2, _ := feed.NewChannelKey()
	if out := mustOK(t, kchat(t, dir, "", "join", k2.String(), "random")).stdout; out != "joined random\n" {
		t.Fatalf("join KEY NAME: %q", out)
	}
	k3, _ := feed.NewChannelKey()
	if out := mustOK(t, kchat(t, dir, "", "join", "--name", "third", k3.String())).stdout; out != "joined third\n" {
		t.Fatalf("join --name: %q", out)
	}
	k4, _ := feed.NewChannelKey()
	if r := kchat(t, dir, "", "join", k4.String(), "a", "--name", "b"); r.code == 0 || !strings.Contains(r.stderr, "two names") {
		t.Fatalf("two names: %+v", r)
	}
	// The key's hint names a channel held already: the error says what to type.
	other, _ := feed.NewChannelKey()
	r := kchat(t, dir, "", "join", other.WithName("general"))
	alt := "general-" + other.DiscoveryID().Short()[:4]
	if r.code == 0 || !strings.Contains(r.stderr, "another of your channels") || !strings.Contains(r.stderr, alt) {
		t.Fatalf("clash: %+v", r)
	}
	r = kchat(t, dir, "", "join", other.String(), "random")
	if r.code == 0 || !strings.Contains(r.stderr, "random-"+other.DiscoveryID().Short()[:4]) {
		t.Fatalf("clash with NAME: %+v", r)
	}
	mustOK(t, kchat(t, dir, "", "join", other.String(), alt))
}

// TestFollowLetsSendThrough: `read --follow` on a data dir with no node
// running serves the control socket, so `kchat send` in another terminal
// works (through it) instead of failing on the store's lock; --limit 0
// prints only new messages.
func TestFollowLetsSendThrough(t *testing.T) {
	dir := t.TempDir()
	n, c := openWithChannel(t, dir)
	if _, err := n.Send(context.Background(), c.ID(), feed.Payload{Kind: feed.KindText, Text: "old"}); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb testutil.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--data", dir, "read", "general", "--follow", "--limit", "0"}, strings.NewReader(""), &out, &errb, nil)
	}()
	testutil.Eventually(t, 10*time.Second, "the control socket", func() bool {
		_, err := os.Stat(node.ControlSocket(dir))
		return err == nil
	})
	mustOK(t, kchat(t, dir, "", "send", "general", "from", "another", "pane"))
	testutil.Eventually(t, 10*time.Second, "follow to print the message sent", func() bool {
		return strings.Contains(out.String(), "from another pane")
	})
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("read --follow exited %d: %s", code, errb.String())
	}
	if strings.Contains(out.String(), "old") {
		t.Fatalf("--limit 0 printed history:\n%s", out.String())
	}
	if _, err := os.Stat(node.ControlSocket(dir)); err == nil {
		t.Fatal("control socket left behind")
	}
}

// TestPlainWords: commands say what they did and what is wrong in plain
// words (issue 15: empty nickname, a search without text, silent part and
// nick, no channels, "1 messages").
func TestPlainWords(t *testing.T) {
	dir := t.TempDir()
	if r := kchat(t, dir, "", "channels"); r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "no channel joined yet") {
		t.Fatalf("channels with none: %+v", r)
	}
	if r := kchat(t, dir, "", "nick", ""); r.code == 0 || !strings.Contains(r.stderr, "empty nickname: give one") {
		t.Fatalf("empty nick: %+v", r)
	}
	if out := mustOK(t, kchat(t, dir, "", "nick", "ann")).stdout; out != "you are now known as ann\n" {
		t.Fatalf("nick: %q", out)
	}
	key := strings.TrimSpace(mustOK(t, kchat(t, dir, "", "new", "general")).stdout)
	if out := mustOK(t, kchat(t, dir, "", "channels")).stdout; out != "general\t1 message\n" {
		t.Fatalf("channels: %q", out) // the nick entry
	}
	if r := kchat(t, dir, "", "search", "general"); r.code == 0 || !strings.Contains(r.stderr, "search general for what?") {
		t.Fatalf("search without text: %+v", r)
	}
	if out := mustOK(t, kchat(t, dir, "", "part", "general")).stdout; out != "left general; its history stays here; to come back: kchat join "+key+"\n" {
		t.Fatalf("part: %q", out)
	}
}

// TestSeedSaysWhatHappens: after its banner, kchat seed prints a line as a
// peer connects in a channel and when it is in step.
func TestSeedSaysWhatHappens(t *testing.T) {
	dir := t.TempDir()
	mustOK(t, kchat(t, dir, "", "new", "general"))
	key := strings.TrimSpace(mustOK(t, kchat(t, dir, "", "channels", "--keys")).stdout)
	key = key[strings.LastIndex(key, "\t")+1:]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb testutil.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--data", dir, "seed", "--no-dht", "--no-mdns", "--no-nat", "--listen", "/ip4/127.0.0.1/tcp/0"},
			strings.NewReader(""), &out, &errb, nil)
	}()
	var addr string
	testutil.Eventually(t, 10*time.Second, "the seed's address", func() bool {
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(l, "/ip4/127.0.0.1/") {
				addr = l
				return true
			}
		}
		return false
	})
	other := t.TempDir()
	mustOK(t, kchat(t, other, "", "join", key))
	mustOK(t, kchat(t, other, "", "sync", "general", "--no-dht", "--no-mdns", "--no-nat",
		"--listen", "/ip4/127.0.0.1/tcp/0", "--peer", addr, "--timeout", "20s"))
	testutil.Eventually(t, 10*time.Second, "a line for the peer", func() bool {
		return strings.Contains(out.String(), "general: peer ") && strings.Contains(out.String(), " connected (it dialled us")
	})
	testutil.Eventually(t, 10*time.Second, "a line for the peer leaving", func() bool {
		return strings.Contains(out.String(), " gone\n")
	})
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("seed exited %d: %s", code, errb.String())
	}
}
