package discovery

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/internal/testutil"
)

// reexecInNamespace runs this test binary again inside a fresh user + network
// namespace (unshare -rn) with only a loopback interface, running the test or
// benchmark selected by args. It skips when namespaces cannot be made here.
func reexecInNamespace(tb testing.TB, args ...string) []byte {
	tb.Helper()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		testutil.MissingPrereq(tb, "mDNS runs only inside a network namespace the test makes, and unshare (util-linux) is not installed")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		testutil.MissingPrereq(tb, "the namespace needs `ip` (iproute2) to bring up multicast on loopback, and it is not installed")
	}
	if out, err := exec.Command(unshare, "-rn", "true").CombinedOutput(); err != nil {
		testutil.MissingPrereq(tb, "cannot create a network namespace here (unshare -rn: %v %s)", err, bytes.TrimSpace(out))
	}
	full := append([]string{"-rn", os.Args[0], "-test.v", "-test.count=1"}, args...)
	if d, ok := tb.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			full = append(full, "-test.timeout="+time.Until(dl).Round(time.Second).String())
		}
	}
	cmd := exec.Command(unshare, full...)
	cmd.Env = append(os.Environ(), inNamespaceEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("run inside network namespace failed: %v\n%s", err, out)
	}
	if bytes.Contains(out, []byte("--- SKIP")) {
		testutil.MissingPrereq(tb, "skipped inside namespace:\n%s", out)
	}
	if !bytes.Contains(out, []byte("PASS")) || bytes.Contains(out, []byte("no tests to run")) {
		tb.Fatalf("namespace run did not run the test:\n%s", out)
	}
	tb.Logf("inside network namespace:\n%s", out)
	return out
}

// setupNamespaceLoopback brings loopback up with multicast, then verifies that
// loopback is the only interface: mDNS must never reach a real network.
func setupNamespaceLoopback(tb testing.TB) {
	tb.Helper()
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "set", "lo", "multicast", "on"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			tb.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		tb.Fatal(err)
	}
	for _, ifi := range ifaces {
		if ifi.Flags&net.FlagLoopback == 0 {
			tb.Fatalf("refusing to run mDNS: interface %s in the test namespace is not loopback", ifi.Name)
		}
	}
}

func mdnsConfig(tb testing.TB) Config {
	return Config{
		Listen:    loopbackListen,
		Bootstrap: []string{},
		NoDHT:     true,
		NoMDNS:    false,
		NoNAT:     false, // port mapping is safe here (loopback only) and exercised
		Logger:    testLogger(tb),
	}
}

// TestMDNSInNamespace: inside a test-made network namespace, A and B (topic X)
// find each other by mDNS; C and D (topic Y) find each other and not A or B.
func TestMDNSInNamespace(t *testing.T) {
	if !inTestNamespace() {
		reexecInNamespace(t, "-test.run=^TestMDNSInNamespace$")
		return
	}
	setupNamespaceLoopback(t)
	x, y := testTopic("mdns-x"), testTopic("mdns-y")
	a, b := startNode(t, mdnsConfig(t)), startNode(t, mdnsConfig(t))
	c, d := startNode(t, mdnsConfig(t)), startNode(t, mdnsConfig(t))

	start := time.Now()
	a.Join(x)
	b.Join(x)
	c.Join(y)
	d.Join(y)

	fa, otherA := waitFound(t, a, 30*time.Second, foundPeer(x, b.Host().ID()))
	tA := time.Since(start)
	fb, otherB := waitFound(t, b, 30*time.Second, foundPeer(x, a.Host().ID()))
	tB := time.Since(start)
	fc, otherC := waitFound(t, c, 30*time.Second, foundPeer(y, d.Host().ID()))
	fd, otherD := waitFound(t, d, 30*time.Second, foundPeer(y, c.Host().ID()))
	t.Logf("time to first peer via mDNS (joined together): A found B after %s, B found A after %s", fmtDur(tA), fmtDur(tB))
	for _, f := range []Found{fa, fb, fc, fd} {
		if f.Source != SourceMDNS {
			t.Fatalf("source %q, want mdns", f.Source)
		}
	}
	for _, o := range [][]Found{otherA, otherB, otherC, otherD} {
		if len(o) != 0 {
			t.Fatalf("cross-topic or unexpected reports: %+v", o)
		}
	}
	// Y's pair found each other, so its queries and answers went round while X's
	// services were up: still nothing across topics.
	for _, n := range []*Node{a, b, c, d} {
		select {
		case f := <-n.Found():
			t.Fatalf("unexpected report %+v", f)
		default:
		}
	}
	if p := a.Book().Peers(x); len(p) != 1 || p[0].ID != b.Host().ID() || p[0].Source != SourceMDNS {
		t.Fatalf("A's book: %+v", p)
	}

	// Leave stops answering: a node joining X afterwards finds only B.
	phase := time.Now()
	a.Leave(x)
	t.Logf("leave: %v", time.Since(phase))
	phase = time.Now()
	e := startNode(t, mdnsConfig(t))
	t.Logf("start: %v", time.Since(phase))
	phase = time.Now()
	e.Join(x)
	if f, _ := waitFound(t, e, 30*time.Second, func(Found) bool { return true }); f.Peer.ID != b.Host().ID() {
		t.Fatalf("after A left X, E found %s (want B)", f.Peer.ID)
	}
	t.Logf("late joiner found B after %v", time.Since(phase))
}

// BenchmarkFirstPeerMDNS measures, inside a test-made namespace, the time from two
// nodes joining a topic together until both have found each other by mDNS.
func BenchmarkFirstPeerMDNS(b *testing.B) {
	if !inTestNamespace() {
		out := reexecInNamespace(b, "-test.run=^$", "-test.bench=^BenchmarkFirstPeerMDNS$",
			fmt.Sprintf("-test.benchtime=%dx", b.N))
		for _, unit := range []string{"ms-first-peer", "ms-both-found"} {
			m := regexp.MustCompile(`([0-9.]+) ` + unit).FindSubmatch(out)
			if m == nil {
				b.Fatalf("no %s in namespace output", unit)
			}
			v, _ := strconv.ParseFloat(string(m[1]), 64)
			b.ReportMetric(v, unit)
		}
		b.ReportMetric(0, "ns/op")
		return
	}
	setupNamespaceLoopback(b)
	var first, both time.Duration
	for i := 0; i < b.N; i++ {
		topic := testTopic("bench-mdns-" + time.Now().String())
		cfg := mdnsConfig(b)
		cfg.NoNAT = true
		n1, n2 := startNode(b, cfg), startNode(b, cfg)
		start := time.Now()
		n1.Join(topic)
		n2.Join(topic)
		f, a := waitBothFound(b, n1, n2, start)
		first += f
		both += a
		n1.Close()
		n2.Close()
	}
	b.ReportMetric(float64(first.Milliseconds())/float64(b.N), "ms-first-peer")
	b.ReportMetric(float64(both.Milliseconds())/float64(b.N), "ms-both-found")
	b.ReportMetric(0, "ns/op")
}

// waitBothFound waits until both nodes reported a peer; it returns the time of the
// first and of the second report since start.
func waitBothFound(tb testing.TB, n1, n2 *Node, start time.Time) (first, both time.Duration) {
	tb.Helper()
	c1, c2 := n1.Found(), n2.Found()
	timeout := time.After(60 * time.Second)
	for c1 != nil || c2 != nil {
		select {
		case <-c1:
			c1 = nil
		case <-c2:
			c2 = nil
		case <-timeout:
			tb.Fatal("peers not found within 60 s")
		}
		if first == 0 {
			first = time.Since(start)
		}
	}
	return first, time.Since(start)
}
