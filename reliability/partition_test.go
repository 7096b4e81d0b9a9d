package reliability_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/node"

	"github.com/kchat-p2p/kchat/internal/testutil"
)

var tcpPort = regexp.MustCompile(`^/ip4/127\.0\.0\.1/tcp/(\d+)/p2p/`)

// peerNode is one in-process peer of the partition test.
type peerNode struct {
	dir  string
	mu   sync.RWMutex // writers hold R while sending; a restart holds W
	n    *node.Node
	addr string
	port int
}

func (p *peerNode) open(t testing.TB) {
	t.Helper()
	n, err := node.Open(context.Background(), node.Options{DataDir: p.dir, Net: loopback()})
	if err != nil {
		t.Fatalf("open node: %v", err)
	}
	p.n = n
	p.addr, p.port = "", 0
	for _, a := range n.Addrs() {
		if m := tcpPort.FindStringSubmatch(a); m != nil {
			p.addr = a
			p.port, _ = strconv.Atoi(m[1])
		}
	}
	if p.addr == "" {
		t.Fatalf("node has no loopback TCP address: %v", n.Addrs())
	}
}

// TestPartitionsAndChurn runs N in-process peers (at least 20) on loopback in
// one channel. Every peer writes all along, while a seeded scheduler cuts
// random links (shutting their TCP sockets down, as a failing network
// does), restores others, splits the peers into partitions and heals them,
// and restarts peers from their data dirs (churn). At the end it heals along
// a ring and requires that every peer holds identical heads, exactly the
// messages that were written (each once, text intact), and an identical
// chronological view.
func TestPartitionsAndChurn(t *testing.T) {
	r := newRun(t)
	ctx := context.Background()
	n := pick(20, 32)
	rounds := pick(20, 400)

	peers := make([]*peerNode, n)
	for i := range peers {
		peers[i] = &peerNode{dir: t.TempDir()}
		peers[i].open(t)
	}
	t.Cleanup(func() {
		for _, p := range peers {
			p.mu.Lock()
			p.n.Close()
			p.mu.Unlock()
		}
	})
	c, err := peers[0].n.Create(ctx, "general")
	if err != nil {
		t.Fatal(err)
	}
	ch := c.ID()
	for _, p := range peers[1:] {
		if _, err := p.n.Join(ctx, c.Key, "general"); err != nil {
			t.Fatal(err)
		}
	}
	ports := func() []int {
		out := make([]int, n)
		for i, p := range peers {
			p.mu.RLock()
			out[i] = p.port
			p.mu.RUnlock()
		}
		return out
	}

	// connect has i sync with j, bounded in time: the session stays up
	// after the call returns, whether or not both sides were caught up.
	var restores, restoreFails int
	var stMu sync.Mutex
	connect := func(i, j int, within time.Duration) {
		a, b := peers[i], peers[j]
		a.mu.RLock()
		defer a.mu.RUnlock()
		b.mu.RLock()
		addr := b.addr
		b.mu.RUnlock()
		cctx, cancel := context.WithTimeout(ctx, within)
		defer cancel()
		_, err := a.n.Sync(cctx, ch, []string{addr})
		stMu.Lock()
		restores++
		if err != nil && !strings.Contains(err.Error(), "not caught up") {
			restoreFails++
			if restoreFails <= 3 {
				t.Logf("restore %d->%d: %v", i, j, err)
			}
		}
		stMu.Unlock()
	}
	parallel := func(pairs [][2]int, within time.Duration) {
		var wg sync.WaitGroup
		for _, pr := range pairs {
			wg.Go(func() { connect(pr[0], pr[1], within) })
		}
		wg.Wait()
	}
	ring := func() [][2]int {
		var ps [][2]int
		for i := range n {
			ps = append(ps, [2]int{i, (i + 1) % n})
		}
		return ps
	}

	// Start as a ring, and check that links can be seen (and so cut).
	parallel(ring(), 10*time.Second)
	ls, err := links(ports())
	if err != nil {
		testutil.MissingPrereq(t, "cannot list this process's sockets (/proc): %v", err)
	}
	if len(ls) < n/2 {
		r.fatalf("only %d of the %d ring links are visible as loopback socket pairs between listen ports "+
			"(is LIBP2P_TCP_REUSEPORT off?): the test could not cut them", len(ls), n)
	}

	// Every peer writes all along.
	type written struct {
		id   msgID
		text string
	}
	var (
		wMu     sync.Mutex
		wrote   []written
		changed = map[msgID]string{} // the final text of edited messages ("" deleted)
		feedLen = map[feed.AuthorID]uint64{}
		nEdits  int
		nDels   int
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for i, p := range peers {
		wrng := rand.New(rand.NewPCG(r.seed, uint64(i)))
		wg.Go(func() {
			var mine []msgID // this peer's messages, not deleted
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(10+wrng.IntN(90)) * time.Millisecond):
				}
				if len(mine) > 0 && wrng.IntN(6) == 0 {
					// Now and then an edit or a delete of an earlier message:
					// replicated like any entry, it must converge as well.
					x := wrng.IntN(len(mine))
					target := mine[x]
					pl := feed.Payload{Kind: feed.KindEdit, Text: fmt.Sprintf("edit p%d-%d %x", i, k, wrng.Uint64()), Ref: feed.NewRef(target.Author, target.Seq)}
					if wrng.IntN(3) == 0 {
						pl = feed.Payload{Kind: feed.KindDelete, Ref: pl.Ref}
						mine = slices.Delete(mine, x, x+1)
					}
					p.mu.RLock()
					es, err := p.n.Send(ctx, ch, pl)
					p.mu.RUnlock()
					if err != nil {
						t.Errorf("[seed %d] peer %d send: %v", r.seed, i, err)
						return
					}
					wMu.Lock()
					feedLen[es[0].Author] = max(feedLen[es[0].Author], es[0].Seq+1)
					changed[target] = pl.Text
					if pl.Kind == feed.KindDelete {
						nDels++
					} else {
						nEdits++
					}
					wMu.Unlock()
					continue
				}
				ps := make([]feed.Payload, 1+wrng.IntN(3))
				for x := range ps {
					ps[x] = feed.Payload{Kind: feed.KindText, Text: fmt.Sprintf("p%d-%d-%d %x", i, k, x, wrng.Uint64())}
				}
				p.mu.RLock()
				es, err := p.n.Send(ctx, ch, ps...)
				p.mu.RUnlock()
				if err != nil {
					t.Errorf("[seed %d] peer %d send: %v", r.seed, i, err)
					return
				}
				wMu.Lock()
				for x, e := range es {
					wrote = append(wrote, written{msgID{e.Author, e.Seq}, ps[x].Text})
					mine = append(mine, msgID{e.Author, e.Seq})
					feedLen[e.Author] = max(feedLen[e.Author], e.Seq+1)
				}
				wMu.Unlock()
			}
		})
	}

	// The scheduler.
	chaosStart := time.Now()
	var group []int // nil: no partition
	allowed := func(i, j int) bool { return group == nil || group[i] == group[j] }
	var cuts, linkCuts, partitions, heals, restarts int
	randomPairs := func(k int, ok func(i, j int) bool) [][2]int {
		var ps [][2]int
		for range k * 4 {
			if len(ps) == k {
				break
			}
			i, j := r.rng.IntN(n), r.rng.IntN(n)
			if i != j && ok(i, j) {
				ps = append(ps, [2]int{i, j})
			}
		}
		return ps
	}
	for round := 0; round < rounds; round++ {
		op := r.rng.IntN(100)
		// Whatever the dice say, every run cuts links, partitions, heals
		// and restarts a peer at least once.
		switch round {
		case 0:
			op = 0 // cut
		case rounds / 4:
			op = 70 // partition (or heal, if one is on)
		case rounds / 2:
			op = 90 // restart
		case 3 * rounds / 4:
			if group != nil {
				op = 85 // heal
			}
		}
		switch {
		case op < 35: // cut random live links
			ls, err := links(ports())
			if err != nil {
				t.Fatal(err)
			}
			live := make([][2]int, 0, len(ls))
			for l := range ls {
				live = append(live, l)
			}
			slices.SortFunc(live, func(a, b [2]int) int { return (a[0]*n + a[1]) - (b[0]*n + b[1]) })
			k := min(len(live), r.between(1, 5))
			doomed := map[[2]int]bool{}
			for _, x := range r.rng.Perm(len(live))[:k] {
				doomed[live[x]] = true
			}
			s, err := cut(ports(), func(i, j int) bool { return doomed[[2]int{min(i, j), max(i, j)}] })
			if err != nil {
				t.Fatal(err)
			}
			cuts += s
			linkCuts += k
			// The cut is real: the connections close, and nothing in kchat
			// redials them (only this scheduler connects peers).
			testutil.Eventually(t, 20*time.Second, "cut links to close", func() bool {
				ls, err := links(ports())
				if err != nil {
					return false
				}
				for l := range doomed {
					if ls[l] {
						return false
					}
				}
				return true
			})
		case op < 65: // restore random links (within the partition, if any)
			parallel(randomPairs(r.between(1, 5), allowed), time.Second)
		case op >= 65 && op < 80 && group == nil: // split into partitions
			group = make([]int, n)
			g := r.between(2, 3)
			for i := range group {
				group[i] = r.rng.IntN(g)
			}
			s, err := cut(ports(), func(i, j int) bool { return group[i] != group[j] })
			if err != nil {
				t.Fatal(err)
			}
			cuts += s
			partitions++
		case op >= 65 && op < 88 && group != nil: // heal the partition
			group = nil
			heals++
			parallel(randomPairs(r.between(2, 6), allowed), time.Second)
		case op < 96: // churn: restart a peer from its data dir
			i := r.rng.IntN(n)
			p := peers[i]
			p.mu.Lock()
			if err := p.n.Close(); err != nil {
				p.mu.Unlock()
				r.fatalf("round %d: close peer %d: %v", round, i, err)
			}
			p.open(t)
			p.mu.Unlock()
			restarts++
			parallel(randomPairs(2, func(a, b int) bool { return a == i && allowed(a, b) }), time.Second)
		default: // isolate a peer: cut all of its links
			i := r.rng.IntN(n)
			s, err := cut(ports(), func(a, b int) bool { return a == i || b == i })
			if err != nil {
				t.Fatal(err)
			}
			cuts += s
		}
		// Chaos timing (not synchronisation): let writes and syncs run.
		time.Sleep(time.Duration(r.between(5, 60)) * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}

	// Heal along a ring and wait for every peer to hold everything.
	healStart := time.Now()
	group = nil
	parallel(ring(), 30*time.Second)
	want := map[feed.AuthorID]uint64{}
	wantText := map[msgID]string{}
	for _, w := range wrote {
		wantText[w.id] = w.text
	}
	if len(wantText) != len(wrote) {
		r.fatalf("a seq was returned twice by Send: %d writes, %d distinct", len(wrote), len(wantText))
	}
	for a, l := range feedLen {
		want[a] = l
	}
	for id, text := range changed {
		wantText[id] = text
	}
	converged := func(p *peerNode) bool {
		hs, err := p.n.Store().Heads(ch)
		if err != nil || len(hs) != len(want) {
			return false
		}
		for _, h := range hs {
			if want[h.Author] != h.Len || h.Forked {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(pick(3*time.Minute, 5*time.Minute))
	for {
		done := 0
		for _, p := range peers {
			if converged(p) {
				done++
			}
		}
		if done == n {
			break
		}
		if time.Now().After(deadline) {
			var sb strings.Builder
			for i, p := range peers {
				hs, _ := p.n.Store().Heads(ch)
				total := uint64(0)
				for _, h := range hs {
					total += h.Len
				}
				fmt.Fprintf(&sb, "\n  peer %d: %d feeds, %d entries, converged %v, sessions:", i, len(hs), total, converged(p))
				for _, s := range p.n.Peers(ch) {
					if s.Syncing {
						fmt.Fprintf(&sb, " [%s synced=%v want=%d]", s.ID[len(s.ID)-6:], s.Synced, s.Want)
					}
				}
			}
			r.fatalf("not converged after healing: %d of %d peers hold every entry (%d written in %d feeds)%s",
				done, n, len(wrote), len(want), sb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Identical heads, identical chronological views, exactly what was written.
	checkStart := time.Now()
	ref, _ := peers[0].n.Store().Heads(ch)
	var refView []msgViewed
	for i, p := range peers {
		hs, _ := p.n.Store().Heads(ch)
		if fmt.Sprint(hs) != fmt.Sprint(ref) {
			r.fatalf("peer %d heads differ from peer 0's", i)
		}
		_, view := checkViewsAgree(t, p.n, ch)
		if len(view) != len(wrote) {
			r.fatalf("peer %d shows %d messages, %d were written", i, len(view), len(wrote))
		}
		for _, m := range view {
			if wantText[m.id] != m.text {
				r.fatalf("peer %d shows %s/%d as %q, written as %q", i, m.id.Author.Short(), m.id.Seq, m.text, wantText[m.id])
			}
		}
		if i == 0 {
			refView = view
			continue
		}
		for x := range view {
			if view[x].id != refView[x].id {
				r.fatalf("peer %d's chronological view differs from peer 0's at position %d: %s/%d vs %s/%d", i, x,
					view[x].id.Author.Short(), view[x].id.Seq, refView[x].id.Author.Short(), refView[x].id.Seq)
			}
		}
	}
	if cuts == 0 || partitions == 0 || restarts == 0 {
		r.fatalf("the scheduler did too little to prove anything: %d sockets cut, %d partitions, %d restarts", cuts, partitions, restarts)
	}
	t.Logf("timing: chaos %v, heal and converge %v, checks %v", healStart.Sub(chaosStart).Round(time.Millisecond),
		checkStart.Sub(healStart).Round(time.Millisecond), time.Since(checkStart).Round(time.Millisecond))
	t.Logf("partitions: %d peers, %d rounds: %d links picked for cutting, %d sockets shut down, %d partitions (%d healed before the end), "+
		"%d restarts, %d restore syncs (%d failed to connect); %d messages by %d authors, %d edits and %d deletes: all on every peer, heads and views identical",
		n, rounds, linkCuts, cuts, partitions, heals, restarts, restores, restoreFails, len(wrote), len(want), nEdits, nDels)
}
