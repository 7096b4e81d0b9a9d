package views

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/storage"

	"github.com/kchat-p2p/kchat/internal/testutil"
)

func allMapped(t *testing.T, v *Views, want int64) {
	t.Helper()
	for name, n := range v.mappedCounts() {
		if n != want {
			t.Errorf("view %s mapped %d entries, want %d", name, n, want)
		}
	}
}

// TestIncrementalCatchUp: after a restart only the entries that arrived
// since are given to the views.
func TestIncrementalCatchUp(t *testing.T) {
	e := newEnv(t)
	ann, bob := newAuthor(t), newAuthor(t)
	e.say(ann, t0, texts("ann", 300)...)
	e.say(bob, t0, texts("bob", 200)...)
	e.wait()
	allMapped(t, e.v, 500)

	e.reopen()
	e.wait()
	allMapped(t, e.v, 0)
	if e.v.Indexed() != 500 {
		t.Fatalf("indexed %d after reopen", e.v.Indexed())
	}

	// Entries written while the views were closed, then live ones.
	e.v.Close()
	e.say(ann, t0.Add(time.Second), texts("ann later", 70)...)
	e.openViews()
	e.wait()
	allMapped(t, e.v, 70)
	e.say(bob, t0.Add(time.Second), texts("bob live", 30)...)
	e.wait()
	allMapped(t, e.v, 100)
	if n, _ := e.v.Count(e.d); n != 600 {
		t.Fatalf("count %d", n)
	}
}

var errCrash = errors.New("simulated crash")

// rawConsistent checks, straight from the keys, that every view's rows match
// its clock: n entries (all text by others, in one channel) processed means n
// message rows, n arrival rows, count n, unread n.
func rawConsistent(t *testing.T, db *badger.DB, d feed.DiscoveryID) uint64 {
	t.Helper()
	st := storedStates(t, db)
	clock := st["messages"].clock
	for name, s := range st {
		if s.clock != clock {
			t.Errorf("view %s clock %d, messages view %d", name, s.clock, clock)
		}
	}
	rows := countKeys(t, db, chanKey(tagMsg, d))
	arr := countKeys(t, db, chanKey(tagArrival, d))
	var count uint64
	var unread Unread
	if err := db.View(func(txn *badger.Txn) error {
		var err error
		if count, err = getU64(txn, chanKey(tagCount, d)); err != nil {
			return err
		}
		unread, err = readUnread(txn, d)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if uint64(rows) != clock || uint64(arr) != clock || count != clock || uint64(unread.Messages) != clock {
		t.Fatalf("clock %d but %d rows, %d arrival rows, count %d, unread %d", clock, rows, arr, count, unread.Messages)
	}
	return clock
}

// TestCrashRollsBackChunk: a chunk that fails before its commit leaves no
// rows and no clock change; after a restart the views finish with exact
// counts, having mapped only what was not committed.
func TestCrashRollsBackChunk(t *testing.T) {
	var commits atomic.Int32
	reached := make(chan struct{}, 1)
	crash := func(last uint64) error {
		if commits.Add(1) >= 4 { // chunks 1-3 commit, the 4th "crashes" every time
			select {
			case reached <- struct{}{}:
			default:
			}
			return errCrash
		}
		return nil
	}
	e := newEnv(t, withChunk(100), withBeforeCommit(crash))
	ann, bob := newAuthor(t), newAuthor(t)
	e.say(ann, t0, texts("ann", 600)...)
	e.say(bob, t0, texts("bob", 400)...)
	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		t.Fatal("indexer never reached the 4th chunk")
	}
	e.v.Close()
	if n := rawConsistent(t, e.db, e.d); n != 300 {
		t.Fatalf("clock %d after the crash, want 300", n)
	}

	e.opts = nil
	e.reopen()
	e.wait()
	allMapped(t, e.v, 700)
	if n := rawConsistent(t, e.db, e.d); n != 1000 {
		t.Fatalf("clock %d at the end", n)
	}
	if u, _ := e.v.Unread(e.d); u.Messages != 1000 {
		t.Fatalf("unread %d", u.Messages)
	}
}

// TestCrashProcessExit kills a real indexing process between chunks (no
// Close, no DB close) and checks the data dir it leaves behind.
func TestCrashProcessExit(t *testing.T) {
	if dir := os.Getenv("KCHAT_VIEWS_CRASH_DIR"); dir != "" {
		crashChild(dir)
		return
	}
	e := newEnv(t)
	ann, bob := newAuthor(t), newAuthor(t)
	e.say(ann, t0, texts("ann", 1500)...)
	e.say(bob, t0, texts("bob", 500)...)
	// Index a first part here, then hand the data dir to the child.
	e.wait()
	// Stop this indexer before the rest arrives: the child must find 1000
	// entries to index (once, this indexer got to them before Close).
	e.v.Close()
	e.v = nil
	e.say(ann, t0, texts("ann more", 1000)...)
	e.close()

	for _, exitAt := range []int{1, 3, 7} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashProcessExit$")
		cmd.Env = append(os.Environ(), "KCHAT_VIEWS_CRASH_DIR="+e.dir, "KCHAT_VIEWS_CRASH_AT="+strconv.Itoa(exitAt))
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Fatalf("child: %v\n%s", err, out)
		}
		e.openStore()
		got := rawConsistent(t, e.db, e.d)
		t.Logf("child exited at chunk %d: clock %d, rows consistent", exitAt, got)
		e.close()
	}
	e.openStore()
	e.openViews()
	e.wait()
	if n := rawConsistent(t, e.db, e.d); n != 3000 {
		t.Fatalf("clock %d at the end", n)
	}
}

// crashChild indexes in chunks of 97 and exits the process abruptly when
// about to commit chunk KCHAT_VIEWS_CRASH_AT.
func crashChild(dir string) {
	at, _ := strconv.Atoi(os.Getenv("KCHAT_VIEWS_CRASH_AT"))
	db, err := storage.Open(dir, nil)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	st, err := feed.Open(db)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	n := 0
	v, err := Open(db, st, feed.AuthorID{}, withChunk(97), withBeforeCommit(func(uint64) error {
		if n++; n == at {
			os.Exit(3)
		}
		return nil
	}))
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = v.CatchUp(ctx)
	fmt.Println("caught up without reaching the crash point:", err)
	os.Exit(1)
}

// TestRebuildOnVersionChange: a view whose stored version differs is dropped
// and rebuilt from the first arrival; local state (the read marker) stays.
func TestRebuildOnVersionChange(t *testing.T) {
	e := newEnv(t)
	ann, bob := newAuthor(t), newAuthor(t)
	e.say(ann, t0, nick("ann"), topic("hello"))
	e.say(bob, t0, texts("bob", 99)...)
	e.wait()
	if err := e.v.MarkRead(e.d); err != nil {
		t.Fatal(err)
	}
	e.say(bob, t0.Add(time.Second), texts("bob unread", 5)...)
	e.wait()
	marker, _ := e.v.ReadMarker(e.d)
	e.v.Close()

	// Pretend every view was written by another version, and leave a stale
	// row of the old version behind.
	stale := append(chanKey(tagMsg, e.d), pos{t: 1, seq: 7}.append(nil)...)
	if err := e.db.Update(func(txn *badger.Txn) error {
		for _, name := range []string{"messages", "topics", "users", "unread", "members", "moderation", "private"} {
			if err := writeState(txn, name, viewState{version: 999, clock: 106}); err != nil {
				return err
			}
		}
		return txn.Set(stale, []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	}); err != nil {
		t.Fatal(err)
	}
	e.openViews()
	e.wait()
	allMapped(t, e.v, 106)
	want := map[string]uint32{}
	for _, vw := range e.v.views {
		want[vw.Name()] = vw.Version()
	}
	for name, s := range storedStates(t, e.db) {
		if s.version != want[name] || s.clock != 106 {
			t.Errorf("view %s state %+v", name, s)
		}
	}
	if n, _ := e.v.Count(e.d); n != 106 || countKeys(t, e.db, chanKey(tagMsg, e.d)) != 106 {
		t.Fatalf("count %d after rebuild", n)
	}
	if s, _ := e.v.Topic(e.d); s != "hello" {
		t.Fatalf("topic %q", s)
	}
	if s := e.v.Nick(e.d, ann.ID()); s != "ann" {
		t.Fatalf("nick %q", s)
	}
	if u, _ := e.v.Unread(e.d); u.Messages != 5 {
		t.Fatalf("unread after rebuild %+v, want the 5 after the marker", u)
	}
	if m, _ := e.v.ReadMarker(e.d); m != marker {
		t.Fatal("read marker lost in the rebuild")
	}
}

// TestCloseStopsIndexer: Close waits for the goroutine; waiters are released.
func TestCloseStopsIndexer(t *testing.T) {
	e := newEnv(t)
	if _, err := Open(e.db, e.st, e.me.ID()); !errors.Is(err, ErrAlreadyOpen) {
		t.Fatalf("second Open on one DB: %v", err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- e.v.WaitIndexed(context.Background(), 1_000_000) }()
	e.v.Close()
	select {
	case <-e.v.done:
	default:
		t.Fatal("indexer still running after Close")
	}
	select {
	case err := <-waitErr:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("waiter: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter not released by Close")
	}
	if err := e.v.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.v.WaitIndexed(ctx, 0); err != nil {
		t.Fatalf("already reached: %v", err)
	}
	e.openViews() // Close released the DB
}

// TestLiveFollow: a subscriber sees own appends (durable, through
// Store.Append) and replicated batches as they are indexed.
func TestLiveFollow(t *testing.T) {
	e := newEnv(t)
	sub := e.v.Subscribe()
	defer sub.Close()
	bob := newAuthor(t)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		for i := range 20 {
			if _, err := e.st.Append(ctx, e.me.id, e.d, text(fmt.Sprintf("me %d", i))); err != nil {
				done <- err
				return
			}
			es := bob.entries(e.d, t0, text(fmt.Sprintf("bob %d", i)))
			if _, err := e.st.Apply(ctx, e.d, bob.ID(), es); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var seen []Message
	after := uint64(0)
	deadline := time.After(30 * time.Second)
	for len(seen) < 40 {
		select {
		case <-sub.C():
		case <-deadline:
			t.Fatalf("saw %d of 40", len(seen))
		}
		ms, err := e.v.Arrived(e.d, after, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			after = m.Arrival
		}
		seen = append(seen, ms...)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	own := 0
	for i, m := range seen {
		if m.Arrival != uint64(i+1) {
			t.Fatalf("message %d has arrival %d", i, m.Arrival)
		}
		if m.Own {
			own++
		}
	}
	if own != 20 {
		t.Fatalf("%d own messages", own)
	}
}

// TestOpenDoesNotReindex: opening views on an indexed store takes the
// clocks from the stored state (Indexed is right at once) and maps nothing
// again. Its timing is BenchmarkReopen.
func TestOpenDoesNotReindex(t *testing.T) {
	e := newEnv(t)
	e.say(newAuthor(t), t0, texts("x", 2000)...)
	e.wait()
	e.v.Close()
	e.openViews()
	if e.v.Indexed() != 2000 {
		t.Fatalf("indexed %d right after open", e.v.Indexed())
	}
	e.wait()
	allMapped(t, e.v, 0)
	if n, _ := e.v.Count(e.d); n != 2000 {
		t.Fatalf("count %d after reopen", n)
	}
}

// TestWriteCheckRefusesAndResumes: while the write check fails (the disk is
// nearly full) the views write nothing and MarkRead reports the check's
// error; once it passes again the indexer catches up by itself.
func TestWriteCheckRefusesAndResumes(t *testing.T) {
	errFull := errors.New("disk full (test)")
	var full atomic.Bool
	var refused atomic.Int32
	check := func() error {
		if full.Load() {
			refused.Add(1)
			return errFull
		}
		return nil
	}
	e := newEnv(t, WithWriteCheck(check))
	ann := newAuthor(t)
	e.say(ann, t0, texts("before", 10)...)
	e.wait()
	indexed := e.v.Indexed()

	full.Store(true)
	e.say(ann, t0, texts("during", 5)...)
	testutil.Eventually(t, 30*time.Second, "the indexer to run the write check for the new entries", func() bool { return refused.Load() > 0 })
	if got := e.v.Indexed(); got != indexed {
		t.Fatalf("indexed moved from %d to %d while writes were refused", indexed, got)
	}
	if n, _ := e.v.Count(e.d); n != 10 {
		t.Fatalf("count %d while writes were refused, want 10", n)
	}
	if err := e.v.MarkRead(e.d); !errors.Is(err, errFull) {
		t.Fatalf("MarkRead with a failing write check: %v", err)
	}

	full.Store(false)
	e.wait()
	if n, _ := e.v.Count(e.d); n != 15 {
		t.Fatalf("count %d after the check passed again, want 15", n)
	}
	if err := e.v.MarkRead(e.d); err != nil {
		t.Fatal(err)
	}
}

// TestReadOnly: on a database opened read-only (a full disk) the views show
// what was indexed, write nothing, and say how much they cannot show.
func TestReadOnly(t *testing.T) {
	e := newEnv(t)
	ann := newAuthor(t)
	e.say(ann, t0, texts("indexed", 10)...)
	e.wait()
	e.v.Close()
	e.v = nil
	e.say(ann, t0, texts("not indexed", 3)...)
	e.close()

	db, err := storage.OpenReadOnly(e.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := feed.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Open(db, st, e.me.ID(), WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	msgs, err := v.Last(e.d, 50)
	if err != nil || len(msgs) != 10 || msgs[9].Text != "indexed 9" {
		t.Fatalf("read-only Last: %d messages (%v), want the 10 indexed", len(msgs), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := v.WaitIndexed(ctx, st.Last()); !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "3 entries") {
		t.Fatalf("WaitIndexed past the indexed entries: %v", err)
	}
	if err := v.WaitIndexed(ctx, v.Indexed()); err != nil {
		t.Fatalf("WaitIndexed of what is indexed: %v", err)
	}
	if err := v.MarkRead(e.d); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("MarkRead read-only: %v", err)
	}
}
