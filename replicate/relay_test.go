package replicate

import (
	"testing"
	"time"
)

// TestRelayWaitsForThePeersHave: in a triangle, b stores a's new entries
// and would relay them to c, which gets them from a itself. b waits before
// relaying (here for longer than the test runs), c's have tells b that c
// got them, and b never sends them: each node receives each entry once.
// The author's own entries are not held back: a pushes to both at once.
func TestRelayWaitsForThePeersHave(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	lim := Limits{RelayDelay: time.Hour}
	a, b, cc := newNode(t, lim, c), newNode(t, lim, c), newNode(t, lim, c)
	a.connect(b, ch)
	a.connect(cc, ch)
	b.connect(cc, ch)
	a.waitSynced(ch, b, cc)
	b.waitSynced(ch, a, cc)
	cc.waitSynced(ch, a, b)

	const n = 40
	for i := range n / 10 {
		a.append(ch, 10, "burst "+string(rune('a'+i)))
	}
	eventually(t, 30*time.Second, "b and c to get a's entries", func() bool {
		return heads(t, b.st, ch)[a.id.ID()].Len == n && heads(t, cc.st, ch)[a.id.ID()].Len == n
	}, b, cc)
	// Synced means each side's have view of the other shows the same heads,
	// so b has seen c's have of all n, and nothing more is owed.
	b.waitSynced(ch, a, cc)
	cc.waitSynced(ch, a, b)

	for _, x := range []struct {
		name string
		n    *node
	}{{"b", b}, {"c", cc}} {
		if st := x.n.r.Stats(); st.EntriesReceived != n || st.EntriesStored != n {
			t.Errorf("%s received %d entries (stored %d), want each of the %d once", x.name, st.EntriesReceived, st.EntriesStored, n)
		}
	}
	if sent := a.r.Stats().EntriesSent; sent != 2*n {
		t.Errorf("a sent %d entries, want %d: its own go to both peers at once", sent, 2*n)
	}
}
