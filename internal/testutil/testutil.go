// Package testutil holds small helpers shared by tests of several packages.
package testutil

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
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
