package reliability_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"

	"github.com/kchat-p2p/kchat/internal/testutil"
)

// Disk trouble is simulated inside a user+mount namespace: a read-only bind
// mount of the data dir, or a tiny tmpfs. (chmod would not do: CI runs as
// root, whom permissions do not stop.) The test binary re-executes itself
// inside the namespace with envNSChild set, running only the one test; the
// parent reports the child's result. Where namespaces are not permitted the
// tests skip, saying so.

const envNSChild = "KCHAT_REL_NS_CHILD"

func inNamespaceChild() bool { return os.Getenv(envNSChild) != "" }

// inNamespace returns true when running inside the namespace (the caller
// then runs the test body); in the parent it runs the child, reports its
// outcome and returns false.
func inNamespace(t *testing.T, r *run) bool {
	t.Helper()
	if inNamespaceChild() {
		// Mounts made here must not propagate anywhere.
		if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
			testutil.MissingPrereq(t, "mounts not permitted in the mount namespace (make / private: %v)", err)
		}
		return true
	}
	needBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), envNSChild+"=1", envBin+"="+kchatBin, envSeed+"="+strconv.FormatUint(r.seed, 10))
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Pdeathsig:   syscall.SIGKILL, // and its kchat processes die with it (kchatCmd)
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		testutil.MissingPrereq(t, "cannot create a user+mount namespace here (%v): disk trouble cannot be simulated without "+
			"affecting the host (chmod does not stop root)", err)
	}
	text := string(out)
	for _, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) != "" && !strings.HasPrefix(l, "=== RUN") && !strings.HasPrefix(l, "PASS") &&
			!strings.HasPrefix(l, "ok ") && !strings.HasPrefix(l, "FAIL") {
			t.Log("child: " + l)
		}
	}
	switch {
	case strings.Contains(text, "--- SKIP: "+t.Name()):
		testutil.MissingPrereq(t, "skipped in the namespace (see the child's log above)")
	case err != nil || !strings.Contains(text, "--- PASS: "+t.Name()):
		t.Fatalf("the test failed inside the namespace (%v)", err)
	}
	return false
}

func mountOrSkip(t *testing.T, source, target, fstype string, flags uintptr, data string) {
	t.Helper()
	if err := syscall.Mount(source, target, fstype, flags, data); err != nil {
		testutil.MissingPrereq(t, "mount %s on %s not permitted in this namespace: %v", fstype, target, err)
	}
}

// cleanFailure checks that a failed kchat run failed the way a user can
// act on: a non-zero exit, one "kchat: ..." error on stderr naming the
// cause, and no crash dump.
func cleanFailure(t *testing.T, r *run, what string, res cliResult, cause string) {
	t.Helper()
	if res.code == 0 {
		r.errorf("%s succeeded on a store that cannot be written; stdout: %q", what, res.stdout)
		return
	}
	if strings.Contains(res.stderr, "goroutine ") || strings.Contains(res.stderr, "fatal error") || strings.Contains(res.stderr, "panic:") {
		r.errorf("%s crashed instead of reporting an error (exit %d):\n%.1500s", what, res.code, res.stderr)
		return
	}
	if !strings.HasPrefix(res.stderr, "kchat: ") || !strings.Contains(res.stderr, cause) {
		r.errorf("%s: exit %d, but the error does not say %q:\n%s", what, res.code, cause, res.stderr)
	}
	if strings.Contains(res.stdout, "ok ") {
		r.errorf("%s acknowledged a message it could not store: %q", what, res.stdout)
	}
}

// TestReadOnlyDataDir: a data dir that cannot be written (a read-only bind
// mount). Every command that would open the store fails at once with a
// clear error naming the cause and a non-zero exit, acknowledges nothing,
// and once the dir is writable again every message stored before is there.
func TestReadOnlyDataDir(t *testing.T) {
	t.Parallel()
	r := newRun(t)
	if !inNamespace(t, r) {
		return
	}
	dir := t.TempDir()
	key := strings.TrimSpace(mustKchat(t, dir, "", "new", "general"))
	var in strings.Builder
	sent := make([]string, 50)
	for i := range sent {
		sent[i] = fmt.Sprintf("before-%d %s", i, r.text(r.between(1, 200)))
		in.WriteString(sent[i] + "\n")
	}
	mustKchat(t, dir, in.String(), "send", "general", "--stdin")

	mountOrSkip(t, dir, dir, "", syscall.MS_BIND, "")
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	mountOrSkip(t, "", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, "")
	if err := os.WriteFile(filepath.Join(dir, "probe"), nil, 0o600); err == nil {
		t.Fatal("the read-only bind mount is writable")
	}

	cases := [][]string{
		{"send", "general", "hello"},
		{"send", "general", "--stdin"},
		{"read", "general"},
		{"channels"},
		{"nick", "bob"},
		{"new", "other"},
		{"join", strings.Replace(key, "general", "again", 1)},
		{"sync", "general", "--no-dht", "--no-mdns", "--no-nat", "--listen", "/ip4/127.0.0.1/tcp/0", "--timeout", "5s"},
		{"seed", "--no-dht", "--no-mdns", "--no-nat", "--listen", "/ip4/127.0.0.1/tcp/0"},
	}
	for _, args := range cases {
		start := time.Now()
		res := kchat(t, dir, "line one\nline two\n", args...)
		cleanFailure(t, r, "kchat "+strings.Join(args, " "), res, "read-only file system")
		if el := time.Since(start); el > 10*time.Second {
			r.errorf("kchat %s took %v to fail", strings.Join(args, " "), el.Round(time.Second))
		}
	}

	if err := syscall.Unmount(dir, 0); err != nil {
		t.Fatalf("unmount: %v", err)
	}
	msgs := readAll(t, dir, "general")
	if len(msgs) != len(sent) {
		r.fatalf("after the read-only spell: %d messages, %d were stored before", len(msgs), len(sent))
	}
	for i, m := range msgs {
		if m.Seq != uint64(i) || m.Text != sent[i] {
			r.fatalf("message %d: seq %d %q, stored as %q", i, m.Seq, m.Text, sent[i])
		}
	}
	mustKchat(t, dir, "", "send", "general", "after")
	t.Logf("read-only: %d commands refused cleanly; the %d messages stored before are intact; writes work again", len(cases), len(sent))
}

// smallDisk mounts a 64 MiB tmpfs at a fresh dir and returns it with a
// function that fills it with a ballast file until only free bytes are
// left, and one that frees space (deletes the ballast, grows the disk).
//
// (The store refuses to write, and to open, when less than 48 MiB is free:
// Badger writes through mmapped sparse files, and a page the file system
// cannot back kills the process with SIGBUS. So "full" here means "less
// than that reserve left", which a 64 MiB tmpfs reaches after a few MiB of
// writes once the ballast is in.)
func smallDisk(t *testing.T) (mnt string, fill func(free int64), free func()) {
	t.Helper()
	mnt = t.TempDir()
	mountOrSkip(t, "tmpfs", mnt, "tmpfs", 0, "size=64m")
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	var ballasts []string
	fill = func(left int64) {
		t.Helper()
		var st syscall.Statfs_t
		if err := syscall.Statfs(mnt, &st); err != nil {
			t.Fatal(err)
		}
		n := int64(st.Bavail)*st.Bsize - left
		if n <= 0 {
			return
		}
		ballast := filepath.Join(mnt, fmt.Sprintf("ballast%d", len(ballasts)))
		ballasts = append(ballasts, ballast)
		f, err := os.Create(ballast)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		chunk := make([]byte, 1<<20)
		for n > 0 {
			k := min(n, int64(len(chunk)))
			if _, err := f.Write(chunk[:k]); err != nil {
				t.Fatalf("ballast: %v", err)
			}
			n -= k
		}
	}
	free = func() {
		t.Helper()
		for _, b := range ballasts {
			if err := os.Remove(b); err != nil {
				t.Fatal(err)
			}
		}
		ballasts = nil
		// And grow the disk: what is left above the reserve is small.
		if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT, "size=512m"); err != nil {
			t.Fatalf("grow the tmpfs: %v", err)
		}
	}
	return mnt, fill, free
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// sendUntilFull pipes messages into `kchat send --stdin` on dir until the
// process ends (the disk fills up long before the input does). It returns
// the acknowledged messages by seq (from base) and the run's result.
func sendUntilFull(t *testing.T, r *run, dir string, base uint64) (acked map[uint64]string, res cliResult) {
	t.Helper()
	cmd := kchatCmd("--data", dir, "send", "general", "--stdin")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	errTail := drainTo(stderr)
	var fed []string
	fedDone := make(chan struct{})
	go func() {
		defer close(fedDone)
		defer stdin.Close()
		bw := bufio.NewWriter(stdin)
		for i := 0; i < 1_000_000; i++ { // the disk fills long before
			l := fmt.Sprintf("fill-%d %s", i, r.text(r.between(50, 400)))
			fed = append(fed, l)
			if _, err := bw.WriteString(l + "\n"); err != nil {
				return
			}
		}
		bw.Flush()
	}()
	br := bufio.NewReader(stdout)
	var ackSeqs []uint64
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			break // a last line without its newline acknowledges nothing
		}
		f := strings.Fields(line)
		if len(f) != 2 || f[0] != "ok" {
			r.fatalf("unexpected output %q", line)
		}
		seq, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			r.fatalf("unexpected output %q", line)
		}
		ackSeqs = append(ackSeqs, seq)
	}
	werr := cmd.Wait()
	<-fedDone
	acked = map[uint64]string{}
	for i, seq := range ackSeqs {
		if seq != base+uint64(i) {
			r.fatalf("ack %d is for seq %d", i, seq)
		}
		acked[seq] = fed[i]
	}
	res = cliResult{code: 0, stdout: fmt.Sprint(len(ackSeqs), " acks"), stderr: errTail.String()}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		res.code = ee.ExitCode()
		if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
			res.code = 128 + int(ws.Signal())
		}
	} else if werr != nil {
		t.Fatal(werr)
	}
	return acked, res
}

// TestDiskFull fills a small tmpfs with `kchat send --stdin` until the disk
// is full. The run must stop with a clear error naming the cause (no crash,
// a non-zero exit, nothing acknowledged that was not stored); `kchat read`
// on the full disk must work or fail just as clearly; and once space is
// freed every acknowledged message is there, intact, with no gap, the views
// agree with the feed, and sending works again.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	r := newRun(t)
	if !inNamespace(t, r) {
		return
	}
	mnt, fill, free := smallDisk(t)
	dir := filepath.Join(mnt, "data")
	mustKchat(t, dir, "", "new", "general")
	fill(52 << 20) // a few MiB above the store's 48 MiB reserve

	acked, res := sendUntilFull(t, r, dir, 0)
	if len(acked) == 0 {
		r.fatalf("nothing was acknowledged before the disk filled up (exit %d): %s", res.code, res.stderr)
	}
	cleanFailure(t, r, fmt.Sprintf("kchat send --stdin on a full disk (after %d acks)", len(acked)), res, "no space left on device")
	first, _, _ := strings.Cut(res.stderr, "\n")
	t.Logf("disk full after %d acknowledged messages (%.1f MiB free): exit %d, %q", len(acked), float64(freeBytes(t, mnt))/(1<<20), res.code, first)
	// Reading history needs no free space: below the reserve the store is
	// opened read-only, with a warning.
	fill(40 << 20)
	lowSpace := freeBytes(t, mnt) < 48<<20
	rd := kchat(t, dir, "", "read", "general", "--json", "--limit", "5")
	if rd.code != 0 {
		r.fatalf("kchat read on a full disk: exit %d: %s", rd.code, rd.stderr)
	}
	got := parseMessages(t, rd.stdout)
	last := uint64(len(acked) - 1)
	if len(got) == 0 || got[len(got)-1].Seq != last || got[len(got)-1].Text != acked[last] {
		r.fatalf("kchat read on a full disk does not end with the last acknowledged message (seq %d): %+v", last, got)
	}
	if lowSpace && !strings.Contains(rd.stderr, "read-only") {
		r.fatalf("read below the reserve gave no read-only warning: %q", rd.stderr)
	}
	t.Logf("read on the full disk works (low space %v): %s", lowSpace, strings.TrimSpace(rd.stderr))
	// The store refuses writes while less than its reserve is free; Badger
	// may free some space meanwhile (a flush, a compaction), so one more
	// message may be taken: then it must be acknowledged and kept.
	if s := kchat(t, dir, "", "send", "general", "one more"); s.code == 0 {
		var seq uint64
		if _, err := fmt.Sscanf(s.stdout, "ok %d", &seq); err != nil || seq != uint64(len(acked)) {
			r.fatalf("one more send printed %q", s.stdout)
		}
		acked[seq] = "one more"
	} else {
		cleanFailure(t, r, "kchat send on a full disk", s, "no space left on device")
	}

	free()
	msgs := readAll(t, dir, "general")
	if len(msgs) < len(acked) {
		r.fatalf("%d messages after freeing space, %d were acknowledged", len(msgs), len(acked))
	}
	for i, m := range msgs {
		if m.Seq != uint64(i) {
			r.fatalf("message %d has seq %d (gap)", i, m.Seq)
		}
		if want, ok := acked[m.Seq]; ok && m.Text != want {
			r.fatalf("seq %d reads %q, acknowledged as %q", m.Seq, m.Text, want)
		}
	}
	n := openNodeNoCleanup(t, dir)
	entries, _ := checkViewsAgree(t, n, mustResolve(t, n, "general"))
	n.Close()
	if len(entries) != len(msgs) {
		r.fatalf("feeds hold %d entries, read lists %d", len(entries), len(msgs))
	}
	mustKchat(t, dir, "", "send", "general", "after the disk was freed")
	t.Logf("full disk: a clear error; %d acknowledged messages all present after freeing space (%d stored); writes work again",
		len(acked), len(msgs))
}

// TestDiskFullDuringSync: a `kchat seed` on a small disk receives a sync
// (25 000 messages, some 11 MiB with their index) bigger than its free space. It must not crash: the sync stops with the
// disk full, the seed keeps running and serving reads of what it stored (a
// valid prefix of every feed), and once space is freed the next sync
// completes: identical heads and views.
func TestDiskFullDuringSync(t *testing.T) {
	t.Parallel()
	r := newRun(t)
	if !inNamespace(t, r) {
		return
	}
	ctx := context.Background()
	src, c := openWithChannel(t, "general") // on the ordinary disk
	ch := c.ID()
	const total = 25000
	for i := 0; i < total/1000; i++ {
		ps := make([]feed.Payload, 1000)
		for j := range ps {
			ps[j] = feed.Payload{Kind: feed.KindText, Text: fmt.Sprintf("m%d-%d %s", i, j, r.text(r.between(50, 400)))}
		}
		if _, err := src.Send(ctx, ch, ps...); err != nil {
			t.Fatal(err)
		}
	}
	mnt, fill, free := smallDisk(t)
	seedDir := filepath.Join(mnt, "seed")
	mustKchat(t, seedDir, "", "join", c.Key.WithName("general"))
	fill(52 << 20)

	sp := startSeed(t, seedDir)
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	_, syncErr := src.Sync(sctx, ch, []string{sp.addr})
	cancel()
	if syncErr == nil {
		r.fatalf("a sync of %d entries into a few MiB of free space succeeded", total)
	}
	select {
	case err := <-sp.done:
		r.fatalf("the seed died when its disk filled up: %v\n%s", err, sp.stderr)
	default:
	}
	// The running seed still serves reads (through its control socket; the
	// texts are compared after it stops, see TestControlSocketKeepsText).
	got := readAll(t, seedDir, "general")
	want := feedEntries(t, src.Store(), ch)
	for i, m := range got {
		if _, ok := want[msgID{src.Self(), m.Seq}]; !ok || m.Seq != uint64(i) {
			r.fatalf("the full seed lists message %d as seq %d", i, m.Seq)
		}
	}
	t.Logf("disk full during a sync: the sync stopped (%v); the seed kept running and serves the %d of %d messages it stored",
		syncErr, len(got), len(want))

	free()
	sctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := src.Sync(sctx, ch, []string{sp.addr}); err != nil {
		logb, _ := os.ReadFile(filepath.Join(seedDir, "kchat.log"))
		if len(logb) > 3000 {
			logb = logb[len(logb)-3000:]
		}
		r.fatalf("sync after freeing space (%.1f MiB free): %v\nseed log: ...%s", float64(freeBytes(t, mnt))/(1<<20), err, logb)
	}
	if err := sp.stop(t); err != nil {
		r.fatalf("seed did not stop cleanly: %v\n%s", err, sp.stderr)
	}
	sn := openNodeNoCleanup(t, seedDir)
	defer sn.Close()
	srcHeads, _ := src.Store().Heads(ch)
	seedHeads, _ := sn.Store().Heads(ch)
	if fmt.Sprint(srcHeads) != fmt.Sprint(seedHeads) {
		r.fatalf("heads differ after the sync that followed freeing space")
	}
	_, srcView := checkViewsAgree(t, src, ch)
	_, seedView := checkViewsAgree(t, sn, ch)
	if len(srcView) != len(seedView) {
		r.fatalf("views: source %d messages, seed %d", len(srcView), len(seedView))
	}
	for i := range srcView {
		if srcView[i] != seedView[i] {
			r.fatalf("chronological views differ at %d", i)
		}
	}
	t.Logf("after freeing space the sync completed: %d messages, heads and views identical", len(seedView))
}
