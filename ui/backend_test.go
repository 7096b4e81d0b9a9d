package ui

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/gdamore/tcell/v2"
	"github.com/rivo/uniseg"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/storage"
	"github.com/kchat-p2p/kchat/views"
)

// testBackend implements Backend over the real parts: a Badger store, the
// feed store and the views. Send is a local append, exactly what the node
// does; "a message from a peer" is another identity's entries in the same
// store, exactly what replication produces.
type testBackend struct {
	t  *testing.T
	db *badger.DB
	st *feed.Store
	v  *views.Views
	id *feed.Identity
	r  *countingReader

	mu     sync.Mutex
	nick   string
	status map[feed.DiscoveryID]NetStatus
	peers  map[feed.DiscoveryID][]PeerInfo
	netc   chan struct{}
	statec chan struct{}

	diskFull atomic.Bool // the store's write check fails (a full disk)
}

func newTestBackend(t *testing.T) *testBackend {
	t.Helper()
	db, err := storage.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &testBackend{}
	st, err := feed.Open(db, feed.WithWriteCheck(func() error {
		if b.diskFull.Load() {
			return fmt.Errorf("%w: 3.0 MiB free (test)", storage.ErrDiskFull)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	id, err := feed.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	v, err := views.Open(db, st, id.ID(), views.WithBlocked(b.Blocked))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		v.Close()
		db.Close()
	})
	*b = testBackend{t: t, db: db, st: st, v: v, id: id, r: &countingReader{Views: v},
		status: map[feed.DiscoveryID]NetStatus{},
		peers:  map[feed.DiscoveryID][]PeerInfo{}, netc: make(chan struct{}, 1), statec: make(chan struct{}, 1)}
	return b
}

// countingReader counts the pages read backwards (lazy paging).
type countingReader struct {
	*views.Views
	before atomic.Int64
}

func (c *countingReader) Before(ch feed.DiscoveryID, cur views.Cursor, n int) ([]views.Message, error) {
	c.before.Add(1)
	return c.Views.Before(ch, cur, n)
}

func (b *testBackend) Self() feed.AuthorID               { return b.id.ID() }
func (b *testBackend) Channels() ([]feed.Channel, error) { return b.st.Channels() }
func (b *testBackend) Views() Reader                     { return b.r }
func (b *testBackend) NetChanged() <-chan struct{}       { return b.netc }
func (b *testBackend) StateChanged() <-chan struct{}     { return b.statec }

// changed signals StateChanged, as the node does after a change made
// through its control socket.
func (b *testBackend) changed() {
	select {
	case b.statec <- struct{}{}:
	default:
	}
}
func (b *testBackend) Addrs() []string {
	return []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWtest"}
}

// Connect "connects" to addr: every joined channel, or an error for an
// address that does not end in /p2p/ID (as libp2p would refuse it).
func (b *testBackend) Connect(ctx context.Context, addr string) ([]string, error) {
	if !strings.Contains(addr, "/p2p/") {
		return nil, fmt.Errorf("peer address %q: expected a multiaddr ending in /p2p/PEERID", addr)
	}
	chans, err := b.st.Channels()
	var names []string
	for _, c := range chans {
		names = append(names, c.Name)
	}
	return names, err
}

func (b *testBackend) Send(ctx context.Context, ch feed.DiscoveryID, p feed.Payload) error {
	_, err := b.st.Append(ctx, b.id, ch, p)
	return err
}

func (b *testBackend) Join(ctx context.Context, key feed.ChannelKey, name string) (feed.Channel, error) {
	c := feed.Channel{Key: key, Name: name}
	if err := b.st.Join(c); err != nil {
		return c, err
	}
	if n := b.Nick(); n != "" {
		return c, b.Send(ctx, c.ID(), nick(n))
	}
	return c, nil
}

func (b *testBackend) Nick() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.nick
}

func (b *testBackend) Create(ctx context.Context, name string) (feed.Channel, error) {
	k, err := feed.NewChannelKey()
	if err != nil {
		return feed.Channel{}, err
	}
	return b.Join(ctx, k, name)
}

func (b *testBackend) Part(ctx context.Context, ch feed.DiscoveryID) error { return b.st.Part(ch) }

func (b *testBackend) SetNick(ctx context.Context, nick string) error {
	chans, err := b.st.Channels()
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.nick = nick
	b.mu.Unlock()
	var errs []error
	for _, c := range chans {
		_, err := b.st.Append(ctx, b.id, c.ID(), feed.Payload{Kind: feed.KindNick, Text: nick})
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (b *testBackend) Status(ch feed.DiscoveryID) NetStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status[ch]
}

func (b *testBackend) Peers(ch feed.DiscoveryID) []PeerInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peers[ch]
}

func (b *testBackend) setStatus(ch feed.DiscoveryID, s NetStatus, peers []PeerInfo) {
	b.mu.Lock()
	b.status[ch] = s
	b.peers[ch] = peers
	b.mu.Unlock()
	select {
	case b.netc <- struct{}{}:
	default:
	}
}

func (b *testBackend) Block(ctx context.Context, ch feed.DiscoveryID, a feed.AuthorID, purge bool) error {
	if err := b.st.Block(ch, a); err != nil || !purge {
		return err
	}
	if err := b.st.Purge(ctx, ch, a); err != nil {
		return err
	}
	return b.v.DropAuthor(ctx, ch, a)
}

func (b *testBackend) Unblock(ch feed.DiscoveryID, a feed.AuthorID) error {
	return b.st.Unblock(ch, a)
}

func (b *testBackend) PurgeChannel(ctx context.Context, ch feed.DiscoveryID) error {
	if err := b.st.PurgeChannel(ctx, ch); err != nil {
		return err
	}
	return b.v.DropChannel(ctx, ch)
}

// Blocked is the union of the channels' block lists, as the node's.
func (b *testBackend) Blocked() map[feed.AuthorID]bool {
	out := map[feed.AuthorID]bool{}
	chans, err := b.st.Channels()
	if err != nil {
		b.t.Error(err)
	}
	for _, c := range chans {
		as, _ := b.st.BlockedAuthors(c.ID())
		for _, a := range as {
			out[a] = true
		}
	}
	return out
}

func (b *testBackend) Members(ch feed.DiscoveryID) ([]Member, error) {
	ms, err := b.v.Members(ch)
	if err != nil {
		return nil, err
	}
	forks, err := b.st.Forks(ch)
	if err != nil {
		return nil, err
	}
	var out []Member
	for _, m := range ms {
		um := Member{Author: m.Author, Nick: m.Nick, Display: m.Display, Messages: m.Messages, Blocked: b.st.IsBlocked(ch, m.Author), LastArrival: m.LastArrival}
		for _, f := range forks {
			um.Forked = um.Forked || f.Author == m.Author
		}
		out = append(out, um)
	}
	return out, nil
}

func (b *testBackend) ResolveAuthor(ch feed.DiscoveryID, who string) (feed.AuthorID, error) {
	ms, err := b.v.Members(ch)
	if err != nil {
		return feed.AuthorID{}, err
	}
	return views.FindMember(ms, who)
}

// --- helpers that act on the store directly, as a peer or the CLI would ---

func (b *testBackend) channel(name string) feed.Channel {
	b.t.Helper()
	c, err := b.Create(context.Background(), name)
	if err != nil {
		b.t.Fatal(err)
	}
	return c
}

func newPeer(t *testing.T) *feed.Identity {
	t.Helper()
	id, err := feed.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// post appends payloads as id (a peer when id is not the backend's own).
func (b *testBackend) post(id *feed.Identity, ch feed.Channel, ps ...feed.Payload) {
	b.t.Helper()
	if _, err := b.st.Append(context.Background(), id, ch.ID(), ps...); err != nil {
		b.t.Fatal(err)
	}
}

func text(s string) feed.Payload  { return feed.Payload{Kind: feed.KindText, Text: s} }
func nick(s string) feed.Payload  { return feed.Payload{Kind: feed.KindNick, Text: s} }
func topic(s string) feed.Payload { return feed.Payload{Kind: feed.KindTopic, Text: s} }

// replicate stores entries of id's feed written at time at, through the
// store's replication path (Apply), as a sync with a peer would.
func (b *testBackend) replicate(id *feed.Identity, ch feed.Channel, at time.Time, ps ...feed.Payload) {
	b.t.Helper()
	head, err := b.st.Head(ch.ID(), id.ID())
	if err != nil {
		b.t.Fatal(err)
	}
	var batch []feed.Entry
	for i, p := range ps {
		raw, err := p.Marshal()
		if err != nil {
			b.t.Fatal(err)
		}
		e, err := feed.NewEntry(id, ch.ID(), head, at.Add(time.Duration(i)*time.Millisecond).UnixMilli(), raw)
		if err != nil {
			b.t.Fatal(err)
		}
		batch = append(batch, e)
		head = feed.Head{Author: id.ID(), Len: e.Seq + 1, Hash: e.Hash()}
	}
	if _, err := b.st.Apply(context.Background(), ch.ID(), id.ID(), batch); err != nil {
		b.t.Fatal(err)
	}
}

func (b *testBackend) catchUp() {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.v.CatchUp(ctx); err != nil {
		b.t.Fatal(err)
	}
}

// --- the screen harness ---

// beepScreen counts bells.
type beepScreen struct {
	tcell.SimulationScreen
	beeps atomic.Int64
}

func (s *beepScreen) Beep() error { s.beeps.Add(1); return nil }

type harness struct {
	t    *testing.T
	b    *testBackend
	scr  *beepScreen
	u    *UI
	done chan error
	stop context.CancelFunc
}

func start(t *testing.T, b *testBackend, w, h int, opts ...Option) *harness {
	t.Helper()
	return startOn(t, b, b, w, h, opts...)
}

// startOn starts a w x h UI on be: b itself, or a Backend wrapping b that
// adds to it (moderation, private messages).
func startOn(t *testing.T, be Backend, b *testBackend, w, h int, opts ...Option) *harness {
	t.Helper()
	scr := &beepScreen{SimulationScreen: tcell.NewSimulationScreen("UTF-8")}
	u := New(be, scr, opts...)
	scr.SetSize(w, h)
	ctx, cancel := context.WithCancel(context.Background())
	hs := &harness{t: t, b: b, scr: scr, u: u, done: make(chan error, 1), stop: cancel}
	go func() { hs.done <- u.Run(ctx) }()
	t.Cleanup(hs.close)
	return hs
}

// notifyLog records the desktop notifications a UI sends (WithNotify).
type notifyLog struct {
	mu     sync.Mutex
	got    []string
	format func(title, body string) string // how a notification is recorded
}

func (n *notifyLog) notify(_ context.Context, title, body string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, n.format(title, body))
	return nil
}

func (n *notifyLog) list() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.got)
}

// startIn starts a w x hh UI on a backend that has joined "general", once
// the channel is shown.
func startIn(t *testing.T, w, hh int, opts ...Option) (*testBackend, feed.Channel, *harness) {
	t.Helper()
	b := newTestBackend(t)
	ch := b.channel("general")
	h := start(t, b, w, hh, opts...)
	h.waitText("#general")
	return b, ch, h
}

func (h *harness) close() {
	h.stop()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
		h.done <- nil
	case <-time.After(10 * time.Second):
		h.t.Error("UI did not stop")
	}
}

// onUI runs f on the UI goroutine (reading UI state safely).
func (h *harness) onUI(f func()) {
	done := make(chan struct{})
	go func() {
		h.u.app.QueueUpdate(f)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		h.t.Fatal("UI goroutine stuck")
	}
}

// lines is the screen's text, one string per row (wide characters once).
func (h *harness) lines() []string {
	var out []string
	h.onUI(func() {
		cells, w, hh := h.scr.GetContents()
		for y := 0; y < hh; y++ {
			var b strings.Builder
			for x := 0; x < w; x++ {
				c := cells[y*w+x]
				if len(c.Runes) == 0 {
					b.WriteByte(' ')
					continue
				}
				b.WriteString(string(c.Runes))
				if uniseg.StringWidth(string(c.Runes)) == 2 {
					x++ // the cell a wide character covers
				}
			}
			out = append(out, b.String())
		}
	})
	return out
}

func (h *harness) screen() string { return strings.Join(h.lines(), "\n") }

// waitFor polls the screen until cond holds or the deadline passes.
func (h *harness) waitFor(what string, cond func(screen string) bool) string {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := h.screen()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; screen:\n%s", what, s)
		}
		time.Sleep(10 * time.Millisecond) // poll interval, not synchronisation
	}
}

func (h *harness) waitText(s string) string {
	h.t.Helper()
	return h.waitFor(`"`+s+`"`, func(scr string) bool { return strings.Contains(scr, s) })
}

func (h *harness) waitGone(s string) string {
	h.t.Helper()
	return h.waitFor(`"`+s+`" to go`, func(scr string) bool { return !strings.Contains(scr, s) })
}

func (h *harness) key(k tcell.Key, r rune, mod tcell.ModMask) { h.scr.InjectKey(k, r, mod) }

// post queues ev behind the keys already injected. tcell's PostEvent drops
// the event while the screen's 10-event queue is full (a loaded machine
// gets there), so post retries until the UI has drained a slot.
func (h *harness) post(ev tcell.Event) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for h.scr.PostEvent(ev) != nil {
		if time.Now().After(deadline) {
			h.t.Fatalf("the UI took no event for 30 s: %T not posted", ev)
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *harness) typeLine(s string) {
	for _, r := range s {
		h.key(tcell.KeyRune, r, tcell.ModNone)
	}
	h.key(tcell.KeyEnter, '\r', tcell.ModNone)
}

// typeText types s without Enter.
func (h *harness) typeText(s string) {
	for _, r := range s {
		h.key(tcell.KeyRune, r, tcell.ModNone)
	}
}

func (h *harness) resize(w, hh int) {
	h.onUI(func() { h.scr.SetSize(w, hh) })
	h.post(tcell.NewEventResize(w, hh))
}

// pressUntil presses key until text is on screen.
func (h *harness) pressUntil(k tcell.Key, text string) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s := h.screen(); !strings.Contains(s, text); {
		if time.Now().After(deadline) {
			h.t.Fatalf("%q never shown; screen:\n%s", text, h.screen())
		}
		h.key(k, 0, tcell.ModNone)
		// One key at a time: wait (briefly) for it to be drawn, so that a
		// busy machine does not queue presses that scroll past the text.
		for wait := time.Now().Add(time.Second); time.Now().Before(wait); time.Sleep(2 * time.Millisecond) {
			if now := h.screen(); now != s {
				s = now
				break
			}
		}
	}
}
