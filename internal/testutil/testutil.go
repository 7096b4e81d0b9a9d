// Package testutil holds small helpers shared by tests of several packages.
package testutil

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"go.uber.org/goleak"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers: a
// command's output read by a test while the command still runs, or logs
// written by library goroutines.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// LoopbackHost is a bare libp2p host on loopback TCP only: no relay, no NAT
// port mapping, no mDNS, no DHT. It is closed when the test ends.
func LoopbackHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// InCI reports whether the tests run in CI (the CI variable set, as CI
// runners do, and not "false" or "0").
func InCI() bool {
	switch os.Getenv("CI") {
	case "", "false", "0":
		return false
	}
	return true
}

// MissingPrereq reports that something a test needs (a tool, namespaces,
// root) is missing: locally the test is skipped; in CI it fails, because
// CI must not pass without having run it.
func MissingPrereq(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("missing prerequisite in CI (CI=%s): %s", os.Getenv("CI"), msg)
	}
	t.Skip("skipped: " + msg)
}

// Eventually calls cond until it returns true, or fails t after within,
// saying it timed out waiting for what. It never sleeps as
// synchronisation: it only spaces the checks out (1 ms, doubling up to
// 50 ms).
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	EventuallyWake(t, within, nil, what, cond)
}

// EventuallyWake is Eventually that also checks at once whenever wake
// delivers (a store's subscription signal, say).
func EventuallyWake(t testing.TB, within time.Duration, wake <-chan struct{}, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	wait := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-wake:
		}
		timer.Stop()
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// NoLeakedGoroutines fails t if goroutines other than those opts ignore
// (goleak.IgnoreCurrent() taken before the work, say) are still running
// after within: goroutines that end just after a Close get that long.
func NoLeakedGoroutines(t testing.TB, within time.Duration, opts ...goleak.Option) {
	t.Helper()
	var err error
	deadline := time.Now().Add(within)
	for {
		if err = goleak.Find(opts...); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left running after %v: %v", within, err)
		}
	}
}
