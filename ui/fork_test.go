package ui

import (
	"strings"
	"testing"
)

// TestForkedAuthorIsTold: when the node finds that an author forked their
// feed, the channel gets one line saying so (once, however often the status
// repeats it).
func TestForkedAuthorIsTold(t *testing.T) {
	b, ch, h := startIn(t, 140, 24)
	mallory := newPeer(t)
	st := NetStatus{Peers: 1, Forked: []Forked{{Author: mallory.ID(), Display: "mallory", Seq: 12}}}
	b.setStatus(ch.ID(), st, nil)
	h.waitText("mallory forked their feed: they signed two different messages at #12")
	b.setStatus(ch.ID(), NetStatus{Peers: 2, Forked: st.Forked}, nil)
	h.waitText("2 peers")
	if n := strings.Count(h.screen(), "forked their feed"); n != 1 {
		t.Fatalf("the fork was told %d times:\n%s", n, h.screen())
	}
}
