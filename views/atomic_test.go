package views

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
)

// TestRowsAndClockOneTransaction: every chunk's rows and the view clock that
// covers them are committed in ONE Badger transaction. Badger gives all
// writes of one transaction the same commit version, and its subscription
// reports each write with that version, so the test reads the commits
// themselves: no crash hook placed before or after a commit can make two
// transactions look like one.
func TestRowsAndClockOneTransaction(t *testing.T) {
	e := newEnv(t, withChunk(100))
	rowsPrefix := chanKey(tagMsg, e.d)
	clockKey := stateKey("messages")
	sentinel := stateKey("~test-sentinel")

	var mu sync.Mutex
	rows := map[uint64]int{}      // commit version -> message rows written
	clocks := map[uint64]uint64{} // commit version -> messages clock written
	ready := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- e.db.Subscribe(ctx, func(kvs *pb.KVList) error {
			mu.Lock()
			defer mu.Unlock()
			for _, kv := range kvs.Kv {
				switch {
				case bytes.Equal(kv.Key, sentinel):
					select {
					case ready <- struct{}{}:
					default:
					}
				case bytes.Equal(kv.Key, clockKey):
					if len(kv.Value) == 12 {
						clocks[kv.Version] = binary.BigEndian.Uint64(kv.Value[4:])
					}
				case bytes.HasPrefix(kv.Key, rowsPrefix):
					rows[kv.Version]++
				}
			}
			return nil
		}, []pb.Match{{Prefix: rowsPrefix}, {Prefix: clockKey}, {Prefix: sentinel}})
	}()
	// The subscription registers asynchronously: write the sentinel until
	// the subscriber reports it.
	deadline := time.Now().Add(10 * time.Second)
	for subscribed := false; !subscribed; {
		if err := e.db.Update(func(txn *badger.Txn) error { return txn.Set(sentinel, nil) }); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ready:
			subscribed = true
		case <-time.After(50 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("badger subscription never started")
			}
		}
	}

	ann, bob := newAuthor(t), newAuthor(t)
	e.say(ann, t0, texts("ann", 600)...)
	e.say(bob, t0, texts("bob", 400)...)
	e.wait()
	// One more write after the indexer's last commit flushes the
	// subscriber's queue up to it.
	deadline = time.Now().Add(30 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatal("the subscriber never saw the 1000 message rows")
		}
		if err := e.db.Update(func(txn *badger.Txn) error { return txn.Set(sentinel, nil) }); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ready:
		case <-time.After(10 * time.Second):
			t.Fatal("subscriber did not see the final sentinel")
		}
		mu.Lock()
		n := 0
		for _, c := range rows {
			n += c
		}
		mu.Unlock()
		if n >= 1000 {
			break
		}
	}
	cancel()
	<-done

	mu.Lock()
	defer mu.Unlock()
	if len(rows) < 10 {
		t.Fatalf("1000 entries in chunks of 100 were committed in %d transactions", len(rows))
	}
	var top uint64
	for ver, n := range rows {
		c, ok := clocks[ver]
		if !ok {
			t.Fatalf("commit %d wrote %d message rows but not the messages clock: rows and clock are not one transaction", ver, n)
		}
		top = max(top, c)
	}
	for ver, c := range clocks {
		if c > 0 && rows[ver] == 0 {
			t.Fatalf("commit %d moved the messages clock to %d without rows", ver, c)
		}
	}
	if top != 1000 {
		t.Fatalf("last clock committed with rows: %d, want 1000", top)
	}
}
