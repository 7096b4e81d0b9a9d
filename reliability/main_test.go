package reliability_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/node"
	"github.com/kchat-p2p/kchat/views"
)

// Environment knobs (documented in docs/reliability.md).
const (
	envLong = "KCHAT_LONG" // "1": the long forms (more kills, rounds, peers, data)
	envSeed = "KCHAT_SEED" // a seed printed by a failed run, to replay its choices
	envBin  = "KCHAT_BIN"  // a prebuilt kchat binary (skips the build in TestMain)
)

// kchatBin is the real binary, built once by TestMain.
var (
	kchatBin string
	buildErr error
)

func TestMain(m *testing.M) {
	if inNamespaceChild() {
		// Re-executed inside a user+mount namespace (disk_test.go): the
		// parent passed the binary in KCHAT_BIN.
		kchatBin = os.Getenv(envBin)
		os.Exit(m.Run())
	}
	if b := os.Getenv(envBin); b != "" {
		kchatBin = b
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "kchat-reliability-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "reliability: temp dir:", err)
		os.Exit(1)
	}
	kchatBin = filepath.Join(dir, "kchat")
	cmd := exec.Command("go", "build", "-o", kchatBin, "github.com/kchat-p2p/kchat/cmd/kchat")
	if out, err := cmd.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go build ./cmd/kchat: %v\n%s", err, out)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needBin fails the test if the binary could not be built.
func needBin(t *testing.T) {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

func long() bool { return os.Getenv(envLong) == "1" }

// pick returns short or, in the long form, long.
func pick[T any](short, lng T) T {
	if long() {
		return lng
	}
	return short
}

// run carries a test's seeded randomness. Its seed is logged at the start
// and repeated in every failure message (and once more if the test failed),
// so that a failure can be replayed with KCHAT_SEED.
type run struct {
	t    testing.TB
	seed uint64
	rng  *rand.Rand
}

var seedCounter atomic.Uint64

func newRun(t testing.TB) *run {
	t.Helper()
	seed := uint64(time.Now().UnixNano()) + seedCounter.Add(1)*0x9e3779b97f4a7c15
	if s := os.Getenv(envSeed); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", envSeed, s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay: %s=%d go test -run '^%s$' ./reliability/)", seed, envSeed, seed, t.Name())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d: replay with %s=%d", seed, envSeed, seed)
		}
	})
	return &run{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))}
}

// sub is r for subtest t: same seed and random source, but its failures
// stop t, not the parent (a subtest must not call FailNow on its parent).
func (r *run) sub(t testing.TB) *run {
	return &run{t: t, seed: r.seed, rng: r.rng}
}

// fatalf fails the test with the seed in the message.
func (r *run) fatalf(format string, a ...any) {
	r.t.Helper()
	r.t.Fatalf("[seed %d] %s", r.seed, fmt.Sprintf(format, a...))
}

func (r *run) errorf(format string, a ...any) {
	r.t.Helper()
	r.t.Errorf("[seed %d] %s", r.seed, fmt.Sprintf(format, a...))
}

// between returns a random int in [lo, hi].
func (r *run) between(lo, hi int) int { return lo + r.rng.IntN(hi-lo+1) }

// text returns a random printable message of n bytes (letters, digits,
// spaces and some multi-byte runes, never a newline).
func (r *run) text(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_"
	var sb strings.Builder
	for sb.Len() < n {
		if r.rng.IntN(50) == 0 {
			sb.WriteString([]string{"é", "ß", "你", "🎉", "ж"}[r.rng.IntN(5)])
			continue
		}
		sb.WriteByte(alphabet[r.rng.IntN(len(alphabet))])
	}
	return sb.String()
}

// ---- driving the real binary ----

type cliResult struct {
	code           int
	stdout, stderr string
}

// kchatCmd is the binary with args. It is killed if the test process dies
// (a timeout's panic runs no cleanups): no test leaves a kchat behind.
func kchatCmd(args ...string) *exec.Cmd {
	return kchatCmdContext(context.Background(), args...)
}

func kchatCmdContext(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, kchatBin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// kchat runs the binary to completion on data dir dir.
func kchat(t testing.TB, dir, stdin string, args ...string) cliResult {
	t.Helper()
	// A bound on a hang, not a speed check: under -race on a busy 2-core
	// machine, reading 30,000 messages through a seed that is still
	// indexing them took over 2 minutes once (TestCrashSeedDuringSync).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := kchatCmdContext(ctx, append([]string{"--data", dir}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("kchat %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return cliResult{code, out.String(), errb.String()}
}

func mustKchat(t testing.TB, dir, stdin string, args ...string) string {
	t.Helper()
	r := kchat(t, dir, stdin, args...)
	if r.code != 0 {
		t.Fatalf("kchat %v: exit %d\nstderr: %s", args, r.code, r.stderr)
	}
	return r.stdout
}

// jsonMessage is one line of `kchat read --json`.
type jsonMessage struct {
	Author string `json:"author"`
	Seq    uint64 `json:"seq"`
	Kind   string `json:"kind"`
	Text   string `json:"text"`
}

// readAll reads every message of channel ch through the CLI.
func readAll(t testing.TB, dir, ch string) []jsonMessage {
	t.Helper()
	return parseMessages(t, mustKchat(t, dir, "", "read", ch, "--json", "--limit", "100000000"))
}

func parseMessages(t testing.TB, out string) []jsonMessage {
	t.Helper()
	var msgs []jsonMessage
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m jsonMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("read --json printed %q: %v", sc.Text(), err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// ---- in-process nodes ----

// loopback is the only network these tests use.
func loopback() *node.NetOptions {
	return &node.NetOptions{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoDHT: true, NoMDNS: true, NoNAT: true}
}

func openNode(t testing.TB, dir string, networked bool) *node.Node {
	t.Helper()
	o := node.Options{DataDir: dir}
	if networked {
		o.Net = loopback()
	}
	n, err := node.Open(context.Background(), o)
	if err != nil {
		t.Fatalf("open node on %s: %v", dir, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// openWithChannel opens a networked node (loopback) that created channel
// name.
func openWithChannel(t testing.TB, name string) (*node.Node, feed.Channel) {
	t.Helper()
	n := openNode(t, t.TempDir(), true)
	c, err := n.Create(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return n, c
}

// openJoined opens a networked node (loopback) that joined c as "general".
func openJoined(t testing.TB, c feed.Channel) *node.Node {
	t.Helper()
	n := openNode(t, t.TempDir(), true)
	if _, err := n.Join(context.Background(), c.Key, "general"); err != nil {
		t.Fatal(err)
	}
	return n
}

// msgID is one message's place: (author, seq).
type msgID struct {
	Author feed.AuthorID
	Seq    uint64
}

// walkViews returns every message of ch in chronological order, walking the
// messages view from the newest backwards with Before, page by page.
func walkViews(t testing.TB, n *node.Node, ch feed.DiscoveryID) []msgViewed {
	t.Helper()
	var pages [][]msgViewed
	var c string
	for {
		page, err := n.Views().Before(ch, views.Cursor(c), 500)
		if err != nil {
			t.Fatalf("views Before: %v", err)
		}
		if len(page) == 0 {
			break
		}
		ms := make([]msgViewed, len(page))
		for i, m := range page {
			ms[i] = msgViewed{msgID{m.Author, m.Seq}, m.Text}
		}
		pages = append(pages, ms)
		c = string(page[0].Cursor)
	}
	var out []msgViewed
	for i := len(pages) - 1; i >= 0; i-- {
		out = append(out, pages[i]...)
	}
	return out
}

type msgViewed struct {
	id   msgID
	text string
}

// feedEntries reads every entry of every feed of ch from the store and
// checks each feed: seqs from 0 without gaps, each prev the hash of the
// entry before, heads matching, the last signature valid (it commits to the
// whole chain).
func feedEntries(t testing.TB, st *feed.Store, ch feed.DiscoveryID) map[msgID]feed.Entry {
	t.Helper()
	heads, err := st.Heads(ch)
	if err != nil {
		t.Fatalf("heads: %v", err)
	}
	out := map[msgID]feed.Entry{}
	for _, h := range heads {
		var prev feed.Hash
		next := uint64(0)
		err := st.Range(ch, h.Author, 0, 0, func(e feed.Entry) error {
			if e.Seq != next {
				return fmt.Errorf("feed %s: seq %d where %d expected (gap)", h.Author.Short(), e.Seq, next)
			}
			if e.Prev != prev {
				return fmt.Errorf("feed %s seq %d: prev does not chain", h.Author.Short(), e.Seq)
			}
			if e.Author != h.Author || e.Channel != ch {
				return fmt.Errorf("feed %s seq %d: stored under the wrong feed", h.Author.Short(), e.Seq)
			}
			if e.Seq+1 == h.Len {
				// The last signature covers the whole chain through prev.
				if err := e.VerifySignature(); err != nil {
					return fmt.Errorf("feed %s seq %d: %w", h.Author.Short(), e.Seq, err)
				}
			}
			prev = e.Hash()
			out[msgID{e.Author, e.Seq}] = e
			next++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if next != h.Len || (next > 0 && prev != h.Hash) {
			t.Fatalf("feed %s: head says %d entries, store holds %d (or head hash differs)", h.Author.Short(), h.Len, next)
		}
	}
	return out
}

// checkViewsAgree checks that the messages view of n holds exactly the text
// entries of the feeds of ch: each once, none missing, Count equal.
func checkViewsAgree(t testing.TB, n *node.Node, ch feed.DiscoveryID) (entries map[msgID]feed.Entry, viewed []msgViewed) {
	t.Helper()
	if err := n.WaitIndexed(context.Background()); err != nil {
		t.Fatalf("wait indexed: %v", err)
	}
	entries = feedEntries(t, n.Store(), ch)
	viewed = walkViews(t, n, ch)
	shown := expectedTexts(t, entries)
	seen := map[msgID]bool{}
	for _, m := range viewed {
		if seen[m.id] {
			t.Fatalf("views show %s/%d twice", m.id.Author.Short(), m.id.Seq)
		}
		seen[m.id] = true
		want, ok := shown[m.id]
		if !ok {
			t.Fatalf("views show %s/%d, which no feed holds as a message", m.id.Author.Short(), m.id.Seq)
		}
		if want != m.text {
			t.Fatalf("views show %s/%d as %q, the feed says %q", m.id.Author.Short(), m.id.Seq, m.text, want)
		}
	}
	for id := range shown {
		if !seen[id] {
			t.Fatalf("feed entry %s/%d is missing from the views", id.Author.Short(), id.Seq)
		}
	}
	count, err := n.Views().Count(ch)
	if err != nil || count != len(shown) {
		t.Fatalf("views Count = %d (%v), feeds hold %d messages", count, err, len(shown))
	}
	return entries, viewed
}

// expectedTexts is what the views must show for each message of entries,
// applying edits and deletes by protocol.md §3, computed independently of
// the views: an edit or delete applies to an earlier text or emote of its
// own author, the highest seq wins, a delete is final (shown as "").
// Edits and deletes are not messages.
func expectedTexts(t testing.TB, entries map[msgID]feed.Entry) map[msgID]string {
	t.Helper()
	type change struct {
		seq  uint64
		kind feed.Kind
		text string
	}
	shown := map[msgID]string{}
	kinds := map[msgID]feed.Kind{}
	changes := map[msgID][]change{}
	for id, e := range entries {
		p, err := feed.UnmarshalPayload(e.Payload)
		if err != nil {
			t.Fatalf("entry %s/%d: %v", id.Author.Short(), id.Seq, err)
		}
		switch p.Kind {
		case feed.KindEdit, feed.KindDelete:
			if a, ok := p.Ref.AuthorID(); ok && a == id.Author && p.Ref.Seq < id.Seq {
				target := msgID{a, p.Ref.Seq}
				changes[target] = append(changes[target], change{id.Seq, p.Kind, p.Text})
			}
		default:
			shown[id], kinds[id] = p.Text, p.Kind
		}
	}
	for id, cs := range changes {
		if k, ok := kinds[id]; !ok || (k != feed.KindText && k != feed.KindEmote) {
			continue
		}
		slices.SortFunc(cs, func(a, b change) int { return cmp.Compare(a.seq, b.seq) })
		for _, c := range cs {
			if c.kind == feed.KindDelete {
				shown[id] = ""
				break
			}
			shown[id] = c.text
		}
	}
	return shown
}

// tailBuffer collects a child's stderr in the background, up to 1 MiB,
// for failure messages (drainTo starts it).
type tailBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

func drainTo(r io.Reader) *tailBuffer {
	tb := &tailBuffer{done: make(chan struct{})}
	go func() {
		defer close(tb.done)
		b := make([]byte, 32<<10)
		for {
			n, err := r.Read(b)
			tb.mu.Lock()
			if n > 0 && tb.buf.Len() < 1<<20 {
				tb.buf.Write(b[:n])
			}
			tb.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return tb
}

// String is what was collected: all of it once the writer is done, or
// what arrived within a second if it is still running.
func (tb *tailBuffer) String() string {
	select {
	case <-tb.done:
	case <-time.After(time.Second):
	}
	tb.mu.Lock()
	s := tb.buf.String()
	tb.mu.Unlock()
	if len(s) > 4000 {
		s = s[:2000] + "\n[...]\n" + s[len(s)-2000:]
	}
	return s
}
