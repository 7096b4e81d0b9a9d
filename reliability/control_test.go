package reliability_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestControlSocketKeepsText: while a node runs on a data dir (`kchat seed`,
// the UI), headless commands on that dir run inside it and their output
// comes back over the control socket. That output must be byte for byte
// what the command prints without a running node, even where a multi-byte
// character straddles one of the command's 4 KiB buffer flushes (once a
// bug: replies were JSON strings and split runes became U+FFFD).
func TestControlSocketKeepsText(t *testing.T) {
	needBin(t)
	r := newRun(t)
	dir := t.TempDir()
	mustKchat(t, dir, "", "new", "general")
	var in strings.Builder
	for i := range 300 {
		fmt.Fprintf(&in, "%d %s\n", i, strings.Repeat("é你🎉", r.between(1, 40)))
	}
	mustKchat(t, dir, in.String(), "send", "general", "--stdin")
	direct := mustKchat(t, dir, "", "read", "general", "--json", "--limit", "1000")

	sp := startSeed(t, dir)
	viaNode := mustKchat(t, dir, "", "read", "general", "--json", "--limit", "1000")
	sp.stop(t)
	if viaNode != direct {
		n := 0
		for n < len(direct) && n < len(viaNode) && direct[n] == viaNode[n] {
			n++
		}
		r.fatalf("read through the running node differs from a direct read at byte %d of %d: %q vs %q",
			n, len(direct), viaNode[max(0, n-10):min(len(viaNode), n+10)], direct[max(0, n-10):min(len(direct), n+10)])
	}
}
