package reliability_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestHelloFloodDoesNotFillTheLog is issue 11's point 4: strangers who only
// reach a node's address send hellos with a malformed channel field as fast
// as they can, from one peer id and then from many. Before, each hello
// logged a Warn line and banned nobody (11,283 hellos in 10 s grew kchat.log
// by 2.75 MB). Now a malformed hello refuses the peer for every channel for
// the ban time (its next streams are reset unread), peer faults are rate
// limited in the log, and the log files are capped: the log grows by a few
// lines per peer id, not per hello.
func TestHelloFloodDoesNotFillTheLog(t *testing.T) {
	needBin(t)
	dir := t.TempDir()
	mustKchat(t, dir, "", "new", "general")
	sp := startSeed(t, dir)
	defer sp.stop(t)
	logSize := func() int64 {
		var n int64
		ms, _ := filepath.Glob(filepath.Join(dir, "kchat.log*"))
		for _, m := range ms {
			if fi, err := os.Stat(m); err == nil {
				n += fi.Size()
			}
		}
		return n
	}
	before := logSize()
	bad := map[int]any{1: make([]byte, 5), 2: nonce()} // a 5-byte channel field
	flood := func(open func() (*wconn, error), d time.Duration) int {
		n := 0
		for end := time.Now().Add(d); time.Now().Before(end); n++ {
			wc, err := open()
			if err != nil {
				continue
			}
			wc.send(tHello, bad)
			wc.untilEnd(2 * time.Second)
			wc.s.Reset()
		}
		return n
	}
	// One peer id, 5 s.
	h := newRawHost(t)
	sent := flood(func() (*wconn, error) { wc, _, err := dialStream(h, sp.addr); return wc, err }, pick(5*time.Second, 30*time.Second))
	one := logSize() - before
	// Many peer ids: a fresh host every 20 hellos.
	ids := pick(20, 100)
	for range ids {
		h := newRawHost(t)
		sent += flood(func() (*wconn, error) { wc, _, err := dialStream(h, sp.addr); return wc, err }, 200*time.Millisecond)
		h.Close()
	}
	all := logSize() - before
	t.Logf("hello flood: %d malformed hellos from 1 + %d peer ids; kchat.log grew %d bytes from the first peer id, %d bytes in all (was 2.75 MB for 11,283 hellos in 10 s)",
		sent, ids, one, all)
	if one > 4<<10 {
		t.Errorf("one peer id's hello flood grew the log by %d bytes", one)
	}
	if all > int64(ids+1)*2<<10 {
		t.Errorf("%d peer ids grew the log by %d bytes, more than 2 KiB each", ids+1, all)
	}
	if all > 10<<20 {
		t.Errorf("kchat.log* is %d bytes, over the 10 MiB cap", all)
	}
}
