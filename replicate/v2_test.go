package replicate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/storage"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

// poisoned builds n entries of id's feed whose entry bad has a garbage
// signature, vouched for by the next entry.
func poisoned(t *testing.T, id *feed.Identity, ch feed.DiscoveryID, n int, bad uint64) []feed.Entry {
	t.Helper()
	var out []feed.Entry
	h := feed.Head{Author: id.ID()}
	for range n {
		e := makeEntries(t, id, ch, h, 1, "p")[0]
		if e.Seq == bad {
			e = feed.Entry{Author: e.Author, Channel: e.Channel, Seq: e.Seq, Prev: e.Prev, Time: e.Time, Payload: e.Payload}
		}
		out = append(out, e)
		h = feed.Head{Author: id.ID(), Len: e.Seq + 1, Hash: e.Hash()}
	}
	return out
}

// TestPoisonedRunDoesNotGetSeedsBanned is issue 11's point 2 over the wire:
// a feed of 1,100 entries whose entry 1023 has a bad signature, pushed to a
// seed in runs of 1,000 and 100, reaches a fresh peer whole, with no
// violation and no ban, in version 2 and in a version 1 session (where the
// fresh peer is the old implementation's kind of receiver, checking one
// signature per run, and the seed must still never end a run at 1023).
func TestPoisonedRunDoesNotGetSeedsBanned(t *testing.T) {
	for _, v := range []int{2, 1} {
		t.Run(map[int]string{1: "v1", 2: "v2"}[v], func(t *testing.T) {
			c := newChannel(t, "general")
			ch := c.ID()
			seed := newNode(t, Limits{}, c)
			author := newIdentity(t)
			es := poisoned(t, author, ch, 1100, 1023)
			for _, run := range [][]feed.Entry{es[:1000], es[1000:]} {
				if _, err := seed.st.Apply(context.Background(), ch, author.ID(), run); err != nil {
					t.Fatal(err)
				}
			}
			fresh := newNodeV(t, Limits{}, v, c)
			fresh.connect(seed, ch)
			fresh.waitSynced(ch, seed)
			if h, _ := fresh.st.Head(ch, author.ID()); h.Len != 1100 || h.Hash != es[1099].Hash() {
				t.Fatalf("fresh peer holds %d of 1100", h.Len)
			}
			if fresh.r.Banned(seed.h.ID(), ch) || fresh.r.Stats().Violations != 0 {
				t.Fatal("the honest seed was banned")
			}
		})
	}
}

// newNodeV is newNode speaking at most protocol version v.
func newNodeV(t *testing.T, lim Limits, v int, chans ...feed.Channel) *node {
	n := newNode(t, lim, chans...)
	n.r.Close()
	n.r = New(n.h, n.st, Config{Limits: lim, Logger: testLogger(), MaxVersion: v})
	t.Cleanup(func() { n.r.Close() })
	return n
}

// TestVersion1PeerInterop: a version 2 node and a version 1 node replicate
// both ways, whichever dials.
func TestVersion1PeerInterop(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	old, cur := newNodeV(t, Limits{}, 1, c), newNode(t, Limits{}, c)
	old.append(ch, 30, "old")
	cur.append(ch, 40, "new")
	cur.connect(old, ch)
	cur.waitSynced(ch, old)
	old.waitSynced(ch, cur)
	if !sameHeads(t, ch, old, cur) {
		t.Fatal("heads differ")
	}
	for _, s := range cur.r.Sessions(ch) {
		if s.Version != 1 {
			t.Fatalf("session version %d, want 1", s.Version)
		}
	}
	cur.append(ch, 1, "live")
	eventually(t, 10*time.Second, "live entry at the old peer", func() bool { return sameHeads(t, ch, old, cur) }, old)
}

// TestLyingHaveDoesNotHangSync is issue 11's point 9: a peer that advertises
// a feed of 2^40 entries and sends none cannot keep a one-shot sync waiting:
// after the stall time the feed is left out, and the session says why.
func TestLyingHaveDoesNotHangSync(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	a := newNode(t, Limits{StallTimeout: 2 * time.Second}, c)
	m := newHost(t)
	rc := rawSession(t, m, a, c)
	lie := feed.Head{Author: feed.AuthorID{7}, Len: 1 << 40}
	rc.send(frameHave, haveBody{Feeds: []wireHead{fromHead(lie)}})
	go func() { // keep reading, like a live peer
		for {
			if _, err := rc.read(ch); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.r.WaitSynced(ctx, ch, m.ID()); err != nil {
		t.Fatalf("sync with a lying peer: %v", err)
	}
	ss := a.r.Sessions(ch)
	if len(ss) != 1 || len(ss[0].Refused) != 1 || ss[0].Refused[0].Author != lie.Author {
		t.Fatalf("sessions %+v", ss)
	}
}

// TestThrottledAuthorDoesNotStallOthers: a receiver with a small budget
// refuses a flooder's feed with a refuse frame; the sender holds it back,
// the honest feed arrives, nobody is banned, and both sides report the
// throttled feed.
func TestThrottledAuthorDoesNotStallOthers(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	src := newNode(t, Limits{}, c)
	flooder := newIdentity(t)
	fill(t, src.st, flooder, ch, 3000) // ~250 bytes each: ~750 kB
	src.append(ch, 10, "honest")

	db, err := storage.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := feed.Open(db, feed.WithBudget(feed.Budget{Burst: 300 << 10, Rate: 1}))
	if err != nil {
		t.Fatal(err)
	}
	st.Join(c)
	dst := &node{t: t, h: newHost(t), db: db, st: st, id: newIdentity(t)}
	dst.r = New(dst.h, st, Config{Logger: testLogger()})
	t.Cleanup(func() { dst.r.Close() })
	dst.connect(src, ch)
	dst.waitSynced(ch, src)
	src.waitSynced(ch, dst)
	if h, _ := st.Head(ch, src.id.ID()); h.Len != 10 {
		t.Fatalf("honest feed: %d of 10", h.Len)
	}
	h, _ := st.Head(ch, flooder.ID())
	if h.Len == 0 || h.Len >= 3000 || !st.Throttled(ch, flooder.ID()) {
		t.Fatalf("flooder: %d stored, throttled %v", h.Len, st.Throttled(ch, flooder.ID()))
	}
	var size int64
	st.Range(ch, flooder.ID(), 0, 0, func(e feed.Entry) error { size += int64(len(e.Encode())); return nil })
	if size > 300<<10 {
		t.Fatalf("flooder stored %d bytes, budget 300 KiB", size)
	}
	if src.r.Banned(dst.h.ID(), ch) || dst.r.Banned(src.h.ID(), ch) || src.r.Stats().Violations+dst.r.Stats().Violations > 0 {
		t.Fatal("a throttle was taken for a violation")
	}
	ss := src.r.Sessions(ch)
	if len(ss) != 1 || len(ss[0].Refused) != 1 || ss[0].Refused[0].Why != "throttled" || !ss[0].Refused[0].ByPeer {
		t.Fatalf("sender's view: %+v", ss)
	}
}

// TestNonMemberAnswersLikeAMember is issue 11's point 9: a peer that knows
// only D gets the same answer (a hello, then a reset after its proof)
// whether or not the responder holds the channel.
func TestNonMemberAnswersLikeAMember(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	member := newNode(t, Limits{}, c)
	stranger := newNode(t, Limits{}) // has not joined
	for _, target := range []*node{member, stranger} {
		m := newHost(t)
		wrong, _ := feed.NewChannelKey()
		rc, hello, _ := rawDial(t, m, target, ch, wrong)
		if string(hello.hello.Channel) != string(ch[:]) {
			t.Fatal("hello for another channel")
		}
		rc.expectDropped(false)
	}
}

// TestStrangerHellosAreRateLimited: hellos for channels a node does not
// hold get the peer refused for every channel after strangerLimit a minute,
// without reading more.
func TestStrangerHellosAreRateLimited(t *testing.T) {
	a := newNode(t, Limits{})
	m := newHost(t)
	m.Peerstore().AddAddrs(a.h.ID(), a.h.Addrs(), peerstore.PermanentAddrTTL)
	for i := range strangerLimit {
		var ch feed.DiscoveryID
		ch[0] = byte(i)
		rc, _, _ := rawDial(t, m, a, ch, feed.ChannelKey{})
		rc.expectDropped(false)
	}
	eventually(t, 5*time.Second, "the stranger to be refused", func() bool { return a.r.banned(sessKey{peer: m.ID()}) })
	s, err := m.NewStream(context.Background(), a.h.ID(), ProtocolID)
	if err == nil {
		rc := newRawConn(t, s, feed.DiscoveryID{})
		rc.send(frameHello, helloBody{Channel: make([]byte, 32), Nonce: make([]byte, 32)})
		rc.s.SetReadDeadline(time.Now().Add(10 * time.Second))
		if f, err := rc.read(feed.DiscoveryID{}); err == nil {
			t.Fatalf("refused stranger got %s", f.typ)
		} else if errors.Is(err, context.DeadlineExceeded) {
			t.Fatal("not reset")
		}
	}
}

// TestBanListIsBounded is issue 11's point 9: bans of thousands of peer ids
// do not grow the list past maxBans, and the newest ban is kept.
func TestBanListIsBounded(t *testing.T) {
	a := newNode(t, Limits{})
	var last sessKey
	for i := range maxBans + 500 {
		var ch feed.DiscoveryID
		ch[0], ch[1] = byte(i), byte(i>>8)
		last = sessKey{peer: a.h.ID(), ch: ch}
		a.r.ban(last, errors.New("test"))
	}
	a.r.mu.Lock()
	n := len(a.r.bans)
	a.r.mu.Unlock()
	if n > maxBans || !a.r.banned(last) {
		t.Fatalf("%d bans (at most %d), newest kept: %v", n, maxBans, a.r.banned(last))
	}
}

// TestMalformedHelloRefusesThePeer: one malformed hello (before any channel
// is named) refuses the peer for every channel, so that a stream of them
// costs one log line.
func TestMalformedHelloRefusesThePeer(t *testing.T) {
	c := newChannel(t, "general")
	a := newNode(t, Limits{}, c)
	m := newHost(t)
	m.Peerstore().AddAddrs(a.h.ID(), a.h.Addrs(), peerstore.PermanentAddrTTL)
	s, err := m.NewStream(context.Background(), a.h.ID(), ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	rc := newRawConn(t, s, feed.DiscoveryID{})
	rc.send(frameHello, helloBody{Channel: make([]byte, 5), Nonce: make([]byte, 32)})
	rc.expectDropped(false)
	eventually(t, 5*time.Second, "the peer to be refused everywhere", func() bool { return a.r.Banned(m.ID(), c.ID()) })
}

// TestBlockedFeedIsNotStoredNorForwarded: b has blocked author x: in a line
// a - b - c, b stores none of x's feed, a is told (a refuse frame, no
// violation), c never gets it through b, and everything else converges.
func TestBlockedFeedIsNotStoredNorForwarded(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	a, b, cc := newNode(t, Limits{}, c), newNode(t, Limits{}, c), newNode(t, Limits{}, c)
	x := newIdentity(t)
	fill(t, a.st, x, ch, 50)
	a.append(ch, 5, "a")
	if err := b.st.Block(ch, x.ID()); err != nil {
		t.Fatal(err)
	}
	b.connect(a, ch)
	cc.connect(b, ch)
	a.waitSynced(ch, b)
	b.waitSynced(ch, a, cc)
	cc.waitSynced(ch, b)
	for _, n := range []*node{b, cc} {
		if h, _ := n.st.Head(ch, x.ID()); h.Len != 0 {
			t.Fatalf("a blocked feed reached %s: %d entries", n.h.ID().ShortString(), h.Len)
		}
		if h, _ := n.st.Head(ch, a.id.ID()); h.Len != 5 {
			t.Fatalf("a's own feed: %d of 5", h.Len)
		}
	}
	ss := a.r.Sessions(ch)
	if len(ss) != 1 || len(ss[0].Refused) != 1 || ss[0].Refused[0].Why != "blocked" || !ss[0].Refused[0].ByPeer {
		t.Fatalf("a's view of the refusal: %+v", ss)
	}
	if a.r.Stats().Violations+b.r.Stats().Violations+cc.r.Stats().Violations != 0 {
		t.Fatal("a violation")
	}
	// Blocking a feed b already holds: b stops advertising it to a new peer.
	y := newIdentity(t)
	fill(t, b.st, y, ch, 3)
	if err := b.st.Block(ch, y.ID()); err != nil {
		t.Fatal(err)
	}
	d := newNode(t, Limits{}, c)
	d.connect(b, ch)
	d.waitSynced(ch, b)
	if h, _ := d.st.Head(ch, y.ID()); h.Len != 0 {
		t.Fatalf("b forwarded a feed it blocked: %d entries", h.Len)
	}
}

// TestNewFeedsAreRateLimited: one session brings feeds new to the store at
// most NewFeedsBurst at once, then NewFeedsRate a second: at every moment
// of a flood of new feeds, the store holds no more than that allows (a slow
// machine only lowers the count), all arrive in the end, and the flooder
// is not dropped (valid data).
func TestNewFeedsAreRateLimited(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	lim := Limits{NewFeedsBurst: 10, NewFeedsRate: 20}
	a := newNode(t, lim, c)
	m := newHost(t)
	rc := rawSession(t, m, a, c)
	rc.send(frameHave, haveBody{})
	const n = 50
	go func() { // read what a sends, as a live peer does
		for {
			if _, err := rc.read(ch); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			es := makeEntries(t, newIdentity(t), ch, feed.Head{}, 1, "new")
			if err := rc.write(frameEntries, entriesBody{Author: ab(es[0].Author), First: 0, Entries: entryBytes(es)}); err != nil {
				return
			}
		}
	}()
	worst := 0.0
	eventually(t, 30*time.Second, "every new feed stored", func() bool {
		hs, _ := a.st.Heads(ch)
		allowed := float64(lim.NewFeedsBurst) + lim.NewFeedsRate*time.Since(start).Seconds() + 1
		if over := float64(len(hs)) / allowed; over > worst {
			worst = over
		}
		if float64(len(hs)) > allowed {
			t.Fatalf("%d new feeds stored after %v: more than %.0f allowed", len(hs), time.Since(start), allowed)
		}
		return len(hs) == n
	}, a)
	<-done
	if a.r.Stats().Violations != 0 {
		t.Fatal("the flooder was dropped")
	}
	if took := time.Since(start); took < time.Duration(float64(n-lim.NewFeedsBurst)/lim.NewFeedsRate*float64(time.Second))*9/10 {
		t.Fatalf("%d new feeds took %v: the rate limit did not hold them back", n, took)
	}
}

// TestRefusalDoesNotWaitForTheWriter: a session's reader that refuses a
// feed leaves the refuse frame to the writer. If it wrote it itself it
// would wait on the write lock, which a writer blocked on a peer's flow
// control holds (up to the write deadline), and read nothing meanwhile;
// two peers doing that at once would stall each other. Here the writer
// is held in a write: the reader still stores what follows a refused
// batch, and the refusal goes out once the writer is free.
func TestRefusalDoesNotWaitForTheWriter(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	b := newNode(t, Limits{}, c)
	x, y := newIdentity(t), newIdentity(t)
	if err := b.st.Block(ch, x.ID()); err != nil {
		t.Fatal(err)
	}
	m := newHost(t)
	rc := rawSession(t, m, b, c)
	b.r.mu.Lock()
	s := b.r.sessions[sessKey{m.ID(), ch}]
	b.r.mu.Unlock()
	if s == nil {
		t.Fatal("no session of b with the raw peer")
	}
	s.wmu.Lock() // the writer in a write that does not end
	locked := true
	defer func() {
		if locked {
			s.wmu.Unlock()
		}
	}()
	rc.send(frameHave, haveBody{})
	rc.send(frameEntries, entriesBody{Author: ab(x.ID()), First: 0, Entries: entryBytes(makeEntries(t, x, ch, feed.Head{}, 2, "x"))})
	rc.send(frameEntries, entriesBody{Author: ab(y.ID()), First: 0, Entries: entryBytes(makeEntries(t, y, ch, feed.Head{}, 3, "y"))})
	eventually(t, 10*time.Second, "b to store y's entries after refusing x's", func() bool {
		h, _ := b.st.Head(ch, y.ID())
		return h.Len == 3
	})
	s.wmu.Unlock()
	locked = false
	rc.s.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := rc.read(ch)
		if err != nil {
			t.Fatalf("no refuse frame for x: %v", err)
		}
		if f.typ == frameRefuse {
			if string(f.refuse.Author) != string(ab(x.ID())) || f.refuse.Reason != refuseBlocked {
				t.Fatalf("refuse frame %+v, want x blocked", f.refuse)
			}
			break
		}
	}
	if h, _ := b.st.Head(ch, x.ID()); h.Len != 0 {
		t.Fatalf("b stored %d entries of a feed it blocked", h.Len)
	}
}
