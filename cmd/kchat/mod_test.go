package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kchat-p2p/kchat/node"
)

// modNet is data dirs driven through the real commands. A node runs on a
// data dir (networked, on loopback, serving its control socket, so commands
// go through it) only between start and stop; otherwise each command opens
// the data dir itself, and sync dials the peer afresh (a new session, so
// that it waits for a full exchange of heads).
type modNet struct {
	t    *testing.T
	dirs map[string]string
	ns   map[string]*node.Node
	stop map[string]func()
}

func newModNet(t *testing.T, names ...string) *modNet {
	t.Helper()
	m := &modNet{t: t, dirs: map[string]string{}, ns: map[string]*node.Node{}, stop: map[string]func(){}}
	for _, name := range names {
		m.dirs[name] = t.TempDir()
	}
	t.Cleanup(func() {
		for _, stop := range m.stop {
			stop()
		}
	})
	return m
}

// start runs a node on who's data dir until stopped.
func (m *modNet) start(who string) {
	m.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := m.dirs[who]
	n, err := node.Open(ctx, node.Options{DataDir: dir, Net: &node.NetOptions{
		Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true, NoDHT: true, NoNAT: true}})
	if err != nil {
		cancel()
		m.t.Fatal(err)
	}
	srv, err := (&app{dataDir: dir}).serve(ctx, n)
	if err != nil {
		n.Close()
		cancel()
		m.t.Fatal(err)
	}
	m.ns[who] = n
	m.stop[who] = func() {
		srv.Close()
		n.Close()
		cancel()
		delete(m.ns, who)
		delete(m.stop, who)
	}
}

func (m *modNet) run(who string, args ...string) string {
	m.t.Helper()
	return mustOK(m.t, kchat(m.t, m.dirs[who], "", args...)).stdout
}

// sync replicates general between who (no node running) and peer (a
// running node) until both hold the same.
func (m *modNet) sync(who, peer string) {
	m.t.Helper()
	r := kchat(m.t, m.dirs[who], "", "--no-dht", "--no-mdns", "--no-nat", "--listen", "/ip4/127.0.0.1/tcp/0",
		"sync", "general", "--timeout", "30s", "--peer", m.ns[peer].Addrs()[0])
	if r.code != 0 {
		m.t.Fatalf("%s sync with %s: exit %d: %s %s", who, peer, r.code, r.stdout, r.stderr)
	}
}

// searched is the text messages `kchat search general QUERY --json`
// finds on who.
func (m *modNet) searched(who, query string) []string {
	m.t.Helper()
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(m.run(who, "search", "general", query, "--json")), "\n") {
		var jm jsonMessage
		if err := json.Unmarshal([]byte(l), &jm); err != nil {
			m.t.Fatalf("%v: %q", err, l)
		}
		if jm.Kind == "text" {
			got = append(got, jm.Text)
		}
	}
	return got
}

// texts is what `kchat read general --json` shows on who (without --all).
func (m *modNet) texts(who string, all ...string) []string {
	m.t.Helper()
	out := m.run(who, append([]string{"read", "general", "--json"}, all...)...)
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var jm jsonMessage
		if err := json.Unmarshal([]byte(l), &jm); err != nil {
			m.t.Fatalf("%v: %q", err, l)
		}
		if jm.Kind == "text" {
			if jm.Hidden {
				jm.Text += " (hidden)"
			}
			got = append(got, jm.Text)
		}
	}
	return got
}

// held is how many messages of author's B's members lists (stored and
// indexed; blocked authors' rows stay until a purge).
func (m *modNet) held(who, author string) float64 {
	m.t.Helper()
	n, _ := membersJSON(m.t, m.dirs[who])[author]["messages"].(float64)
	return n
}

// TestModBlockThreeNodes is issue 14's scenario: A creates the channel
// (admin), B and M join with A's key, M writes; A blocks M; after B syncs
// with A, B shows none of M's messages and lists M as blocked; M writes
// more and syncs with B directly, and B stores none of it; A unblocks and B
// then takes M's feed again.
func TestModBlockThreeNodes(t *testing.T) {
	m := newModNet(t, "A", "B", "M")
	m.start("A")
	ids := map[string]string{}
	for _, who := range []string{"A", "B", "M"} {
		ids[who] = strings.TrimSpace(m.run(who, "id"))
	}
	m.run("M", "nick", "mallory")
	key := strings.TrimSpace(m.run("A", "new", "general"))
	if !strings.HasSuffix(key, "?name=general&admin="+ids["A"]) {
		t.Fatalf("new printed %q, want the admin's id in it", key)
	}
	m.run("B", "join", key)
	m.run("M", "join", key)
	m.run("M", "send", "general", "m1")
	m.sync("M", "A")
	m.sync("B", "A")
	if got := m.texts("B"); strings.Join(got, ",") != "m1" {
		t.Fatalf("B reads %v before the block", got)
	}

	out := m.run("A", "mod", "general", "block", "mallory", "--reason", "spam")
	if !strings.Contains(out, "block mallory") {
		t.Fatalf("mod block printed %q", out)
	}
	m.sync("B", "A")
	if got := m.texts("B"); len(got) != 0 {
		t.Fatalf("B reads %v after A's block, want none of M's; B's mod list:\n%s\nchannels %s", got, m.run("B", "mod", "general", "list"), m.run("B", "channels", "--keys"))
	}
	if got := m.texts("B", "--all"); strings.Join(got, ",") != "m1 (hidden)" {
		t.Fatalf("B reads --all %v", got)
	}
	ms := membersJSON(t, m.dirs["B"])
	if ms[ids["M"]]["blocked"] != true || ms[ids["A"]]["role"] != "admin" || ms[ids["M"]]["role"] != "" {
		t.Fatalf("B's members: M %v, A %v", ms[ids["M"]], ms[ids["A"]])
	}

	m.run("M", "send", "general", "m2")
	m.start("B")
	m.sync("M", "B") // B refuses M's feed: M's sync still ends
	m.stop["B"]()
	if got := m.held("B", ids["M"]); got != 1 {
		t.Fatalf("B holds %v of M's messages, want 1: A blocked M", got)
	}

	m.run("A", "mod", "general", "unblock", "mallory")
	m.sync("B", "A")
	m.start("M")
	m.sync("B", "M")
	if got := m.held("B", ids["M"]); got != 2 {
		t.Fatalf("B holds %v of M's messages after the unblock, want 2", got)
	}
	if got := m.texts("B"); strings.Join(got, ",") != "m1,m2" {
		t.Fatalf("B reads %v after the unblock", got)
	}
}

// TestModHideAppointUnfollow: A hides and unhides one of M's messages; A
// appoints D a moderator and D hides M (an author); B, following A by
// default, sees what they decided; B unfollows A and sees M again.
func TestModHideAppointUnfollow(t *testing.T) {
	m := newModNet(t, "A", "B", "M", "D")
	m.start("A")
	ids := map[string]string{}
	for _, who := range []string{"A", "B", "M", "D"} {
		ids[who] = strings.TrimSpace(m.run(who, "id"))
	}
	m.run("M", "nick", "mallory")
	m.run("D", "nick", "dora")
	key := strings.TrimSpace(m.run("A", "new", "general"))
	for _, who := range []string{"B", "M", "D"} {
		m.run(who, "join", key)
	}
	m.run("M", "send", "general", "m1") // seq 1 (seq 0 is the nick)
	m.run("M", "send", "general", "m2")
	m.sync("M", "A")
	m.sync("D", "A")

	m.run("A", "mod", "general", "hide", "mallory:1", "--reason", "rude")
	m.sync("B", "A")
	if got := strings.Join(m.texts("B"), ","); got != "m2" {
		t.Fatalf("B reads %q after A hid m1", got)
	}
	if got := strings.Join(m.texts("B", "--all"), ","); got != "m1 (hidden),m2" {
		t.Fatalf("B reads --all %q", got)
	}
	if got := strings.Join(m.searched("B", "m"), ","); got != "m2" {
		t.Fatalf("B's search finds %q after A hid m1", got)
	}
	m.run("A", "mod", "general", "unhide", "mallory:1")
	m.sync("B", "A")
	if got := strings.Join(m.texts("B"), ","); got != "m1,m2" {
		t.Fatalf("B reads %q after A unhid m1", got)
	}

	m.run("A", "mod", "general", "add-mod", "dora")
	m.sync("D", "A")
	r := mustOK(t, kchat(t, m.dirs["D"], "", "mod", "general", "hide", "mallory", "--reason", "noise"))
	if strings.Contains(r.stderr, "no role") {
		t.Fatalf("D was appointed, yet: %s", r.stderr)
	}
	m.sync("D", "A")
	m.sync("B", "A")
	if got := m.texts("B"); len(got) != 0 {
		t.Fatalf("B reads %v after D hid M", got)
	}
	ms := membersJSON(t, m.dirs["B"])
	if ms[ids["M"]]["hidden"] != true || ms[ids["D"]]["role"] != "mod" || ms[ids["M"]]["blocked"] != false {
		t.Fatalf("B's members: M %v, D %v", ms[ids["M"]], ms[ids["D"]])
	}
	var list []jsonMod
	for _, l := range strings.Split(strings.TrimSpace(m.run("B", "mod", "general", "list", "--json")), "\n") {
		var jm jsonMod
		if err := json.Unmarshal([]byte(l), &jm); err != nil {
			t.Fatalf("%v: %q", err, l)
		}
		list = append(list, jm)
	}
	found := false
	for _, jm := range list {
		found = found || jm.Kind == "action" && jm.Moderator == ids["D"] && jm.Action == "hide" && jm.Target == ids["M"] && jm.Reason == "noise"
	}
	if !found {
		t.Fatalf("mod list does not show D's hide of M: %+v", list)
	}

	if out := m.run("B", "mod", "general", "unfollow", ids["A"]); !strings.HasPrefix(out, "unfollowed ") {
		t.Fatalf("unfollow printed %q", out)
	}
	if got := strings.Join(m.texts("B"), ","); got != "m1,m2" {
		t.Fatalf("B reads %q after unfollowing A", got)
	}
	if ms := membersJSON(t, m.dirs["B"]); ms[ids["D"]]["role"] != "" || ms[ids["M"]]["hidden"] != false {
		t.Fatalf("after unfollowing A: D %v, M %v", ms[ids["D"]], ms[ids["M"]])
	}
	// Errors: bad action, self, a block by message.
	for _, c := range []struct{ args, want string }{
		{"mod general ban mallory", "unknown moderation action"},
		{"mod general block " + ids["B"], "yourself"},
		{"mod general block mallory:1", "names an author"},
		{"mod general hide", "needs a TARGET"},
	} {
		r := kchat(t, m.dirs["B"], "", strings.Fields(c.args)...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Fatalf("%s: %+v, want %q", c.args, r, c.want)
		}
	}
}

// TestReadDoesNotQuoteHidden: `kchat read` shows a reply to a message
// moderation hides without quoting it; --all quotes it (and shows it).
func TestReadDoesNotQuoteHidden(t *testing.T) {
	m := newModNet(t, "A", "M")
	m.start("A")
	m.run("M", "nick", "mallory")
	key := strings.TrimSpace(m.run("A", "new", "general"))
	m.run("M", "join", key)
	m.run("M", "send", "general", "rude words") // seq 1 (seq 0 is the nick)
	m.sync("M", "A")
	m.run("A", "send", "general", "--reply-to", "mallory:1", "please stop")
	m.run("A", "mod", "general", "hide", "mallory:1")
	out := m.run("A", "read", "general")
	if strings.Contains(out, "rude") || !strings.Contains(out, "↪ (a hidden message) | please stop") {
		t.Fatalf("read shows:\n%s", out)
	}
	out = m.run("A", "read", "general", "--all")
	if !strings.Contains(out, "↪ mallory: rude words | please stop") {
		t.Fatalf("read --all shows:\n%s", out)
	}
}
