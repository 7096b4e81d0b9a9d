package replicate

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio"
	"github.com/multiformats/go-varint"
)

// violation is a protocol violation by the peer: the session is reset and
// the peer banned for the channel.
type violation struct {
	ch  feed.DiscoveryID // zero if not known yet (before a hello)
	err error
}

func (v *violation) Error() string { return "protocol violation: " + v.err.Error() }
func (v *violation) Unwrap() error { return v.err }

func violationf(ch feed.DiscoveryID, format string, a ...any) *violation {
	return &violation{ch: ch, err: fmt.Errorf(format, a...)}
}

// proofContext starts every key proof.
const proofContext = "kchat/sync/v1 proof"

// Roles in the key proof.
const (
	roleInitiator byte = 1
	roleResponder byte = 2
)

// proofMAC is HMAC-SHA256 keyed with the channel key over the context, the
// role of the prover, both peer ids (initiator first) and both nonces
// (initiator first). Peer ids are multihashes, which are self-delimiting.
func proofMAC(k feed.ChannelKey, role byte, initiator, responder peer.ID, nonceI, nonceR []byte) []byte {
	m := hmac.New(sha256.New, k[:])
	m.Write([]byte(proofContext))
	m.Write([]byte{role})
	m.Write([]byte(initiator))
	m.Write([]byte(responder))
	m.Write(nonceI)
	m.Write(nonceR)
	return m.Sum(nil)
}

// conn is a stream with msgio framing. Frames are written through a
// buffer: a session's writer queues the frames of one round (entries, then
// the have) and flushes them as one stream write, one muxer frame and one
// syscall instead of one per frame.
type conn struct {
	s     network.Stream
	rd    msgio.ReadCloser
	bw    *bufio.Writer
	wr    msgio.WriteCloser
	codec *codec
	cnt   *counters
}

func newConn(s network.Stream, c *codec, cnt *counters) *conn {
	bw := bufio.NewWriterSize(s, 16<<10)
	return &conn{
		s:     s,
		rd:    msgio.NewVarintReaderSize(bufio.NewReaderSize(s, 32<<10), c.lim.MaxFrame),
		bw:    bw,
		wr:    msgio.NewVarintWriter(bw),
		codec: c,
		cnt:   cnt,
	}
}

// read reads and decodes one frame. Anything the peer got wrong is a
// *violation (for channel ch); transport errors are returned as they are.
func (c *conn) read(ch feed.DiscoveryID) (frame, error) {
	msg, err := c.rd.ReadMsg()
	if err != nil {
		if errors.Is(err, msgio.ErrMsgTooLarge) || errors.Is(err, varint.ErrOverflow) || errors.Is(err, varint.ErrNotMinimal) {
			return frame{}, &violation{ch: ch, err: fmt.Errorf("%w: %w (limit %d bytes)", errFrame, err, c.codec.lim.MaxFrame)}
		}
		return frame{}, err
	}
	f, err := c.codec.decode(msg)
	c.cnt.framesReceived.Add(1)
	c.cnt.bytesReceived.Add(uint64(len(msg)))
	c.rd.ReleaseMsg(msg)
	if err != nil {
		return frame{}, &violation{ch: ch, err: err}
	}
	return f, nil
}

func (c *conn) write(t frameType, body any) error {
	if err := c.put(t, body); err != nil {
		return err
	}
	return c.flush()
}

// put queues one frame in the write buffer (written when it fills).
func (c *conn) put(t frameType, body any) error {
	b, err := encodeFrame(t, body)
	if err != nil {
		return err
	}
	if err := c.wr.WriteMsg(b); err != nil {
		return fmt.Errorf("send %s: %w", t, err)
	}
	c.cnt.framesSent.Add(1)
	c.cnt.bytesSent.Add(uint64(len(b)))
	return nil
}

// flush writes what put queued.
func (c *conn) flush() error {
	if c.bw.Buffered() == 0 {
		return nil
	}
	if err := c.bw.Flush(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// handshake runs hello and proof on s. For an outbound stream c is the
// channel to open; for an inbound one the peer's hello names it. Nothing is
// sent before the peer's hello, and nothing after the hellos before the
// peer's proof has checked, except the initiator's own proof.
func (r *Replicator) handshake(ctx context.Context, s network.Stream, c feed.Channel, outbound bool, mesh uint64) (_ *session, err error) {
	version := 2
	if s.Protocol() == ProtocolV1 {
		version = 1
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	stopR := context.AfterFunc(r.ctx, func() { s.Reset() })
	defer stopR()
	if err := s.SetDeadline(time.Now().Add(r.lim.HandshakeTimeout)); err != nil {
		return nil, err
	}
	cn := newConn(s, r.codecs[version], &r.cnt)
	local, remote := r.h.ID(), s.Conn().RemotePeer()
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	var ch feed.DiscoveryID
	if outbound {
		ch = c.ID()
		if version < 2 {
			mesh = 0
		}
		if err := cn.write(frameHello, helloBody{Channel: ch[:], Nonce: nonce, Mesh: mesh}); err != nil {
			return nil, err
		}
		f, err := cn.read(ch)
		if err != nil {
			return nil, fmt.Errorf("hello from %s (does it hold the channel?): %w", remote.ShortString(), err)
		}
		if f.typ != frameHello || !bytes.Equal(f.hello.Channel, ch[:]) {
			return nil, violationf(ch, "want a hello for channel %s, got %s", ch.Short(), f.typ)
		}
		if err := cn.write(frameProof, proofBody{MAC: proofMAC(c.Key, roleInitiator, local, remote, nonce, f.hello.Nonce)}); err != nil {
			return nil, err
		}
		want := proofMAC(c.Key, roleResponder, local, remote, nonce, f.hello.Nonce)
		if err := readProof(cn, ch, want, mesh > 1); err != nil {
			return nil, err
		}
	} else {
		f, err := cn.read(ch)
		if err != nil {
			return nil, err
		}
		if f.typ != frameHello {
			return nil, violationf(ch, "want hello, got %s", f.typ)
		}
		copy(ch[:], f.hello.Channel)
		if r.banned(sessKey{remote, ch}) {
			return nil, fmt.Errorf("refused %s: %w", remote.ShortString(), ErrBanned)
		}
		if c, err = r.st.Channel(ch); err != nil {
			// Answer as a member would, and fail at the proof, which an
			// initiator without the key cannot make: whoever knows only D
			// cannot tell whether this peer holds the channel.
			r.strangerHello(remote)
			if err := cn.write(frameHello, helloBody{Channel: ch[:], Nonce: nonce}); err != nil {
				return nil, err
			}
			if _, err := cn.read(ch); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("refused %s: %w", remote.ShortString(), feed.ErrUnknownChannel)
		}
		// From here the handshake counts as pending for the key until the
		// caller registers the session (or it fails): a concurrent Connect
		// or WaitSynced waits for it rather than seeing no session.
		key := sessKey{remote, ch}
		r.pend(key, 1)
		defer func() {
			if err != nil {
				r.pend(key, -1)
			}
		}()
		if err := cn.write(frameHello, helloBody{Channel: ch[:], Nonce: nonce}); err != nil {
			return nil, err
		}
		want := proofMAC(c.Key, roleInitiator, remote, local, f.hello.Nonce, nonce)
		if err := readProof(cn, ch, want, false); err != nil {
			return nil, err
		}
		mesh = f.hello.Mesh
		if mesh > 1 && r.meshFull(ch) {
			// A member with other sessions of the channel asks for one more:
			// decline, after its proof, so only members learn that we are busy.
			if err := cn.write(frameBusy, busyBody{Retry: uint64(busyRetry.Milliseconds())}); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("mesh session from %s: %w", remote.ShortString(), errDeclined)
		}
		if err := cn.write(frameProof, proofBody{MAC: proofMAC(c.Key, roleResponder, remote, local, f.hello.Nonce, nonce)}); err != nil {
			return nil, err
		}
	}
	if err := s.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	sess := r.newSession(cn, sessKey{remote, ch}, outbound, version)
	sess.mesh, sess.meshN = mesh > 0, mesh
	return sess, nil
}

// errDeclined: this node declined a mesh session (it sent busy).
var errDeclined = errors.New("declined: enough inbound mesh sessions")

// readProof reads the peer's proof; busyOK accepts a busy frame in its
// place (the initiator of a mesh session).
func readProof(cn *conn, ch feed.DiscoveryID, want []byte, busyOK bool) error {
	f, err := cn.read(ch)
	if err != nil {
		return err
	}
	if f.typ == frameBusy && busyOK {
		return &BusyError{Retry: time.Duration(min(f.busy.Retry, uint64(time.Hour.Milliseconds()))) * time.Millisecond}
	}
	if f.typ != frameProof {
		return violationf(ch, "want proof, got %s", f.typ)
	}
	if !hmac.Equal(f.proof.MAC, want) {
		return violationf(ch, "wrong channel key proof")
	}
	return nil
}

// feedState is what a session knows of one feed: the local head it
// advertised, the peer's merged have, and how far each side got.
type feedState struct {
	local, peer feed.Head // Len 0: not held / not advertised
	next        uint64    // first seq neither sent to nor received from the peer
	checked     uint64    // peer length whose head hash matched ours
	lastSent    feed.Head // as last advertised to the peer
	sentEv      bool      // fork evidence sent

	// Reasons the feed does not converge in this session (it is left out
	// of "synced"): a fork seen here, the peer refused it, we refused it,
	// the peer sits on it.
	diverged  string
	refused   string    // by the peer, for long (throttled, blocked)
	holdUntil time.Time // the peer asked us not to send before (zero: no hold; far future: not in this session)
	throttled bool      // we refused it (budget, block)
	dropGaps  bool      // entries past our head may still come: drop them
	blocked   bool      // our user blocked the author
	stalled   bool

	// relay: the local head grew live from a third peer's entries; the
	// peer gets them after lazyUntil (set when the writer first had them
	// to send), unless its have shows it got them elsewhere first.
	relay     bool
	lazyUntil time.Time
}

func (f *feedState) excluded() bool {
	return f.diverged != "" || f.refused != "" || f.throttled || f.stalled || f.local.Forked || f.peer.Forked
}

// session is one authenticated stream for one channel. Its reader runs in
// the goroutine that calls run; run starts and waits for its writer.
type session struct {
	r        *Replicator
	key      sessKey
	cn       *conn
	version  int
	outbound bool
	mesh     bool   // opened by a mesh (the hello's mesh field), not by a user
	meshN    uint64 // the hello's mesh field
	since    time.Time
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelCauseFunc
	poke     chan struct{} // reader -> writer: something to act on
	shedding atomic.Bool   // ShedMesh -> writer: send busy and end

	sent, received, stored atomic.Uint64

	mu             sync.Mutex
	feeds          map[feed.AuthorID]*feedState
	dirty          map[feed.AuthorID]bool // writer's work list
	haveDirty      map[feed.AuthorID]bool // local heads changed since the last have
	gotHave        bool                   // the peer's first have arrived
	peerComplete   bool                   // the peer's listing is complete (no more pages pending)
	unsynced       int                    // feeds not excluded whose heads differ
	want, owe      uint64
	synced         bool
	lastEntries    time.Time // when the last entries frame arrived
	holds          int       // feeds the peer asked us to hold off
	refusals       int       // feeds with a refusal() reason
	applying       bool      // the reader is storing an entries frame
	lookedApplying bool      // isSynced said no because of applying
	newTokens      float64   // feeds new to the store this session may still bring
	newAt          time.Time
	served         int          // feeds advertised (version 1 caps it)
	tells          []refuseBody // refusals for the writer to send

	wmu       sync.Mutex // serialises frame writes; guards lastWrite
	lastWrite time.Time

	// writer only
	cursor   uint64 // store change version read so far
	haveSent bool
	deferred map[feed.AuthorID]time.Time // relayed feeds waiting, until (guarded by mu: dirty is)
	lazyT    *time.Timer                 // fires at lazyAt for deferred
	lazyAt   time.Time
}

func (r *Replicator) newSession(cn *conn, key sessKey, outbound bool, version int) *session {
	ctx, cancel := context.WithCancelCause(r.ctx)
	return &session{
		r: r, key: key, cn: cn, version: version, outbound: outbound, since: time.Now(),
		log: r.log.With("peer", key.peer.ShortString(), "channel", key.ch.Short()),
		ctx: ctx, cancel: cancel, poke: make(chan struct{}, 1),
		feeds: map[feed.AuthorID]*feedState{}, dirty: map[feed.AuthorID]bool{}, haveDirty: map[feed.AuthorID]bool{},
		deferred:    map[feed.AuthorID]time.Time{},
		lastEntries: time.Now(), newTokens: float64(r.lim.NewFeedsBurst), newAt: time.Now(),
	}
}

func (s *session) alive() bool { return s.ctx.Err() == nil && !s.cn.s.Conn().IsClosed() }

// initiator is the peer that opened the stream.
func (s *session) initiator() peer.ID {
	if s.outbound {
		return s.r.h.ID()
	}
	return s.key.peer
}

// contrib is what feed f adds to the session's progress counters.
func contrib(f *feedState) (unsynced bool, want, owe uint64) {
	if f.excluded() || (f.local.Len == 0 && f.peer.Len == 0) {
		return false, 0, 0
	}
	if f.peer.Len > f.local.Len {
		want = f.peer.Len - f.local.Len
	}
	if f.local.Len > f.peer.Len {
		owe = f.local.Len - f.peer.Len
	}
	return f.local.Len != f.peer.Len || f.local.Hash != f.peer.Hash, want, owe
}

// update changes feed a's state with fn and keeps the progress counters in
// step, so that "synced" costs O(1), never a walk over every feed. Caller
// holds s.mu.
func (s *session) update(a feed.AuthorID, fn func(f *feedState)) *feedState {
	f := s.feeds[a]
	if f == nil {
		f = &feedState{}
		s.feeds[a] = f
	}
	u0, w0, o0 := contrib(f)
	r0, _ := f.refusal()
	fn(f)
	u1, w1, o1 := contrib(f)
	if r1, _ := f.refusal(); (r0 == "") != (r1 == "") {
		if r1 == "" {
			s.refusals--
		} else {
			s.refusals++
		}
	}
	if u0 {
		s.unsynced--
	}
	if u1 {
		s.unsynced++
	}
	s.want += w1 - w0
	s.owe += o1 - o0
	return f
}

// shed asks the writer to send a busy frame and end the session with
// errShed, as soon as it is not in the middle of a write.
func (s *session) shed() {
	s.shedding.Store(true)
	s.wake()
}

func (s *session) wake() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

// run runs the session until it ends, then bans the peer if it broke the
// protocol and unregisters the session.
func (r *Replicator) run(s *session) {
	stop := context.AfterFunc(s.ctx, func() {
		if c := context.Cause(s.ctx); errors.Is(c, errReplaced) || errors.Is(c, errShed) {
			s.cn.s.Close() // the peer may still be reading our proof
		} else {
			s.cn.s.Reset()
		}
	})
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.writeLoop(); err != nil {
			s.cancel(err)
		}
	}()
	readErr := s.readLoop()
	var v *violation
	banned := errors.As(readErr, &v)
	if banned {
		// Ban before the stream is reset: a peer that reconnects at once
		// must find the ban, not a fresh hello.
		r.ban(s.key, readErr)
	}
	s.cancel(readErr)
	<-done
	why := context.Cause(s.ctx)
	if errors.As(why, &v) {
		if !banned {
			r.ban(s.key, why)
		}
	} else {
		s.log.Info("sync session ended", "why", why, "sent", s.sent.Load(), "stored", s.stored.Load())
	}
	r.unregister(s, why)
}

// readLoop handles the peer's frames until an error.
func (s *session) readLoop() error {
	idle := s.r.lim.IdleTimeout
	for {
		if err := s.cn.s.SetReadDeadline(time.Now().Add(idle)); err != nil {
			return err
		}
		f, err := s.cn.read(s.key.ch)
		if err != nil {
			return err
		}
		if f.typ == frameBusy && s.outbound && s.mesh {
			// The peer sheds this mesh session (4.3a): go elsewhere.
			retry := time.Duration(min(f.busy.Retry, uint64(time.Hour.Milliseconds()))) * time.Millisecond
			s.r.holdBusy(s.key, retry)
			return &BusyError{Retry: retry}
		}
		s.mu.Lock()
		first := !s.gotHave
		s.mu.Unlock()
		if first && f.typ != frameHave {
			return violationf(s.key.ch, "first frame after the proofs is %s, want have", f.typ)
		}
		switch f.typ {
		case frameHave:
			err = s.onHave(f.have)
		case frameEntries:
			err = s.onEntries(f.entries)
			// Entries refused or dropped change what is left out: the
			// writer recomputes "synced" (stored ones wake it anyway).
			s.wake()
		case frameFork:
			err = s.onFork(f.fork)
		case frameRefuse:
			err = s.onRefuse(f.refuse)
		case framePing:
		default:
			err = violationf(s.key.ch, "%s after the handshake", f.typ)
		}
		if err != nil {
			return err
		}
	}
}

func (s *session) onHave(h *haveBody) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range h.Feeds {
		nh := toHead(w)
		old := s.feeds[nh.Author]
		if old != nil && old.peer.Len > 0 && (nh.Len < old.peer.Len || nh.Len == old.peer.Len && nh.Hash != old.peer.Hash) {
			return violationf(s.key.ch, "have of feed %s went from %d to %d entries or changed its head", nh.Author.Short(), old.peer.Len, nh.Len)
		}
		if old == nil && len(s.feeds) >= s.maxFeeds() {
			return violationf(s.key.ch, "peer advertised more than %d feeds", s.maxFeeds())
		}
		s.update(nh.Author, func(f *feedState) { f.peer = nh })
		s.dirty[nh.Author] = true
	}
	s.gotHave = true
	s.peerComplete = !h.More
	s.wake()
	return nil
}

func (s *session) maxFeeds() int {
	if s.version < 2 {
		// Our own feeds plus the peer's; each side advertises at most
		// MaxFeedsV1.
		return 2 * s.r.lim.MaxFeedsV1
	}
	return s.r.lim.MaxSessionFeeds
}

// storeFaults are Apply errors that mean the batch itself is invalid.
var storeFaults = []error{feed.ErrBadSignature, feed.ErrBadPrev, feed.ErrSeqGap, feed.ErrWrongChannel,
	feed.ErrWrongAuthor, feed.ErrTooLarge, feed.ErrMalformed}

func (s *session) onEntries(b *entriesBody) error {
	// Until this frame is stored and counted, the session is not synced:
	// the store's signal wakes the writer, which may find the heads equal
	// before the counters below have moved (kchat sync reads them).
	s.mu.Lock()
	s.applying = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.applying = false
		looked := s.lookedApplying
		s.lookedApplying = false
		s.mu.Unlock()
		if looked {
			s.r.progressed() // a WaitSynced looked in between: look again
		}
	}()
	var a feed.AuthorID
	copy(a[:], b.Author)
	n := uint64(len(b.Entries))
	s.received.Add(n)
	s.r.cnt.entriesReceived.Add(n)
	batch := make([]feed.Entry, len(b.Entries))
	for i, raw := range b.Entries {
		e, err := feed.DecodeEntry(raw)
		if err != nil {
			return violationf(s.key.ch, "entry %d of feed %s: %w", i, a.Short(), err)
		}
		if i == 0 && e.Seq != b.First {
			return violationf(s.key.ch, "batch of feed %s says it starts at seq %d, its first entry has %d", a.Short(), b.First, e.Seq)
		}
		batch[i] = e
	}
	s.mu.Lock()
	if _, known := s.feeds[a]; !known && len(s.feeds) >= s.maxFeeds() {
		s.mu.Unlock()
		return violationf(s.key.ch, "peer sent more than %d feeds", s.maxFeeds())
	}
	if f := s.feeds[a]; f != nil && (f.throttled || f.dropGaps) {
		// We refused this feed, or took only part of a run; frames the peer
		// sent before it knew may follow, past what we hold. Not its
		// fault: drop them.
		s.mu.Unlock()
		if h, err := s.r.st.Head(s.key.ch, a); err != nil || b.First > h.Len {
			return err
		}
		s.mu.Lock()
	}
	// The peer holds what it sent: never send it back. (Before Apply, which
	// wakes our writer.)
	s.update(a, func(f *feedState) { f.next = max(f.next, b.First+n); f.stalled = false })
	s.lastEntries = time.Now()
	s.mu.Unlock()
	if s.r.blocked(s.key.ch, a) {
		return s.refuse(a, refuseBlocked, 0)
	}
	if err := s.takeNewFeed(a, batch[0].Seq); err != nil {
		return err
	}
	if s.version < 2 && len(batch) > 1 {
		// A version 1 peer may end a run at an entry whose own signature
		// does not verify (an author can chain one under a valid one):
		// take what can be verified rather than ban an honest relay.
		if err := batch[len(batch)-1].VerifySignature(); err != nil {
			batch = batch[:feed.VerifiedPrefix(batch)]
			s.mu.Lock()
			s.update(a, func(f *feedState) {
				f.dropGaps = true
				f.diverged = "a version 1 peer ended a run at an entry without a valid signature; the rest comes in a later session"
			})
			s.mu.Unlock()
			if len(batch) == 0 {
				return nil
			}
		}
	}
	stored, err := s.r.st.Apply(s.ctx, s.key.ch, a, batch)
	var te *feed.ThrottleError
	switch {
	case err == nil:
	case errors.Is(err, feed.ErrForked):
		// The store holds the evidence (now, or from before); the writer
		// hands it on, and status readers (the UI) hear of it.
		s.mu.Lock()
		s.dirty[a] = true
		s.mu.Unlock()
		s.wake()
		s.r.notify()
		return nil
	case errors.As(err, &te):
		return s.refuse(a, refuseThrottled, te.RetryAfter)
	case errors.Is(err, feed.ErrBlocked):
		return s.refuse(a, refuseBlocked, 0)
	default:
		for _, fault := range storeFaults {
			if errors.Is(err, fault) {
				return &violation{ch: s.key.ch, err: err}
			}
		}
		return fmt.Errorf("store batch of feed %s: %w", a.Short(), err)
	}
	s.mu.Lock()
	if f := s.feeds[a]; f != nil && f.throttled {
		s.update(a, func(f *feedState) { f.throttled, f.dropGaps = false, false })
	}
	s.mu.Unlock()
	if stored > 0 {
		s.stored.Add(uint64(stored))
		s.r.cnt.entriesStored.Add(uint64(stored))
		s.r.progressed()
	}
	return nil
}

// takeNewFeed bounds how fast one session brings feeds the store does not
// hold yet (a member can make authors without end, and each would get a
// whole storage budget): over the limit, the reader waits, and the peer's
// writes wait on flow control. No frames, no state at the peer.
func (s *session) takeNewFeed(a feed.AuthorID, first uint64) error {
	if first > 0 {
		return nil // continues a feed (the store checks it is held)
	}
	if h, err := s.r.st.Head(s.key.ch, a); err != nil || h.Len > 0 {
		return nil
	}
	s.mu.Lock()
	now := time.Now()
	lim := s.r.lim
	s.newTokens = min(float64(lim.NewFeedsBurst), s.newTokens+now.Sub(s.newAt).Seconds()*lim.NewFeedsRate)
	s.newAt = now
	s.newTokens--
	wait := time.Duration(0)
	if s.newTokens < 0 {
		wait = time.Duration(-s.newTokens / lim.NewFeedsRate * float64(time.Second))
	}
	s.mu.Unlock()
	if wait == 0 {
		return nil
	}
	if err := s.cn.s.SetReadDeadline(time.Now().Add(wait + s.r.lim.IdleTimeout)); err != nil {
		return err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-s.ctx.Done():
		return context.Cause(s.ctx)
	}
}

// refuse tells the peer that entries of feed a were not stored, and from
// which seq to send them again after retry (0: not in this session). Not
// the peer's fault: the session goes on. A version 1 peer cannot be told;
// it sends that feed again in its next session.
func (s *session) refuse(a feed.AuthorID, reason uint64, retry time.Duration) error {
	h, err := s.r.st.Head(s.key.ch, a)
	if err != nil {
		return err
	}
	s.mu.Lock()
	first := s.feeds[a] == nil || !s.feeds[a].throttled
	s.update(a, func(f *feedState) { f.throttled, f.dropGaps = true, true; f.next = h.Len })
	s.mu.Unlock()
	if first {
		s.log.Info("feed refused", "author", a.Short(), "reason", reason, "retry", retry)
	}
	return s.tell(a, reason, retry, h.Len)
}

// tell sends a refuse frame (version 2 only).
func (s *session) tell(a feed.AuthorID, reason uint64, retry time.Duration, held uint64) error {
	if s.version < 2 {
		return nil
	}
	ms := uint64(0)
	if retry > 0 {
		ms = uint64(max(retry.Milliseconds(), 1))
	}
	// The writer sends it: the reader must not wait on the write lock,
	// which a writer blocked on flow control holds (if both peers' readers
	// did, neither would read again until the write deadline).
	s.mu.Lock()
	s.tells = append(s.tells, refuseBody{Author: a[:], Len: held, Reason: reason, Retry: ms})
	s.mu.Unlock()
	s.wake()
	return nil
}

// sendTells queues the refuse frames the reader left for the writer.
// Writer only; the round's end flushes them.
func (s *session) sendTells() error {
	s.mu.Lock()
	tells := s.tells
	s.tells = nil
	s.mu.Unlock()
	for _, b := range tells {
		if err := s.queue(frameRefuse, b); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) onFork(b *forkBody) error {
	x, err := feed.DecodeEntry(b.A)
	if err != nil {
		return violationf(s.key.ch, "fork evidence: %w", err)
	}
	y, err := feed.DecodeEntry(b.B)
	if err != nil {
		return violationf(s.key.ch, "fork evidence: %w", err)
	}
	isNew, err := s.r.st.RecordFork(s.key.ch, x, y)
	if errors.Is(err, feed.ErrBadEvidence) {
		return &violation{ch: s.key.ch, err: err}
	}
	if err != nil {
		return fmt.Errorf("record fork evidence: %w", err)
	}
	s.mu.Lock()
	s.update(x.Author, func(f *feedState) { f.sentEv = true; f.peer.Forked = true })
	s.mu.Unlock()
	if isNew {
		s.log.Warn("fork evidence received: feed frozen", "author", x.Author.Short(), "seq", x.Seq)
		s.r.notify()
	}
	return nil
}

func (s *session) onRefuse(b *refuseBody) error {
	var a feed.AuthorID
	copy(a[:], b.Author)
	why := ""
	switch b.Reason {
	case refuseBlocked:
		why = "blocked"
	case refuseThrottled:
		why = "throttled"
	default:
		why = fmt.Sprintf("refused (reason %d)", b.Reason)
	}
	hold := time.Now().Add(365 * 24 * time.Hour)
	if b.Retry > 0 {
		hold = time.Now().Add(time.Duration(b.Retry) * time.Millisecond)
	}
	s.mu.Lock()
	if f := s.feeds[a]; f == nil || f.holdUntil.IsZero() {
		s.holds++
	}
	s.update(a, func(f *feedState) {
		f.refused = why
		f.holdUntil = hold
		f.next = min(f.next, b.Len)
	})
	s.mu.Unlock()
	s.log.Debug("peer refused a feed", "author", a.Short(), "why", why, "retry_ms", b.Retry)
	s.wake() // the writer looks at holds once a second
	s.r.notify()
	return nil
}

// writeLoop sends the full have, then on every change of the channel in
// the store or of the peer's have sends what the peer lacks and a have of
// what changed. A ping goes out when nothing else was sent for a while, so
// no quiet gap exceeds IdleTimeout/3.
func (s *session) writeLoop() error {
	sub := s.r.st.SubscribeChannel(s.key.ch)
	defer sub.Close()
	every := s.r.lim.IdleTimeout / 6
	// The timer wakes the writer for pings, stalls and the peer's holds:
	// once a second while a hold is pending, else every min(every,
	// StallTimeout/3), so that idle sessions cost few wake-ups.
	gap := func() time.Duration {
		g := min(every, s.r.lim.StallTimeout/3)
		s.mu.Lock()
		if s.holds > 0 {
			g = min(g, time.Second)
		}
		s.mu.Unlock()
		return g
	}
	next := time.Now().Add(gap())
	tick := time.NewTimer(time.Until(next))
	defer tick.Stop()
	s.lazyT = time.NewTimer(time.Hour)
	s.lazyT.Stop()
	defer s.lazyT.Stop()
	if err := s.start(); err != nil {
		return err
	}
	for {
		if s.shedding.Load() {
			if err := s.send(frameBusy, busyBody{Retry: uint64(busyRetry.Milliseconds())}); err != nil {
				return err
			}
			return errShed
		}
		if err := s.sendTells(); err != nil {
			return err
		}
		if err := s.round(); err != nil {
			if s.ctx.Err() != nil {
				return nil
			}
			return err
		}
		if g := gap(); time.Until(next) > g {
			next = time.Now().Add(g)
			tick.Reset(g)
		}
		select {
		case <-s.ctx.Done():
			return nil
		case <-sub.C():
			s.readChanges()
		case <-s.poke:
		case <-s.lazyT.C:
			s.lazyDue()
		case <-tick.C:
			next = time.Now().Add(gap())
			tick.Reset(time.Until(next))
			s.timers()
			s.wmu.Lock()
			quiet := time.Since(s.lastWrite)
			s.wmu.Unlock()
			if quiet >= every {
				if err := s.send(framePing, pingBody{}); err != nil {
					return err
				}
			}
		}
	}
}

// send writes one frame now (with whatever the writer queued before it).
// Only the writer writes (the reader leaves refusals to it: tell); wmu
// guards lastWrite and is held for the length of a write.
func (s *session) send(t frameType, body any) error { return s.write(t, body, true) }

// queue writes one frame of the writer's round into the write buffer; the
// round's end flushes it (flush), or a full buffer does.
func (s *session) queue(t frameType, body any) error { return s.write(t, body, false) }

func (s *session) write(t frameType, body any, now bool) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.cn.s.SetWriteDeadline(time.Now().Add(s.r.lim.IdleTimeout)); err != nil {
		return err
	}
	if err := s.cn.put(t, body); err != nil {
		return err
	}
	if now {
		if err := s.cn.flush(); err != nil {
			return err
		}
	}
	s.lastWrite = time.Now()
	return nil
}

// flush writes the frames the writer queued.
func (s *session) flush() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.cn.s.SetWriteDeadline(time.Now().Add(s.r.lim.IdleTimeout)); err != nil {
		return err
	}
	return s.cn.flush()
}

// start reads every local head once and sends the first have.
func (s *session) start() error {
	s.cursor = s.r.st.Version(s.key.ch)
	heads, err := s.r.st.Heads(s.key.ch)
	if err != nil {
		return err
	}
	s.mu.Lock()
	for _, h := range heads {
		s.setLocal(h)
	}
	s.mu.Unlock()
	if err := s.sendHave(); err != nil {
		return err
	}
	return s.flush()
}

// readChanges takes the heads that changed in the store since the cursor.
func (s *session) readChanges() {
	heads, ver, complete := s.r.st.Changes(s.key.ch, s.cursor)
	if !complete {
		var err error
		if heads, err = s.r.st.Heads(s.key.ch); err != nil {
			s.log.Warn("read heads", "err", err)
			return
		}
	}
	s.cursor = ver
	s.mu.Lock()
	for _, h := range heads {
		s.setLocal(h)
	}
	s.mu.Unlock()
}

// setLocal records a local head as the session will advertise it. Blocked
// feeds and, in version 1, feeds past the cap are not replicated. Caller
// holds s.mu.
func (s *session) setLocal(h feed.Head) {
	if s.r.blocked(s.key.ch, h.Author) {
		// Neither advertised nor forwarded, nor waited for.
		s.update(h.Author, func(f *feedState) {
			f.local = feed.Head{Author: h.Author}
			f.throttled, f.dropGaps, f.blocked = true, true, true
		})
		return
	}
	f := s.feeds[h.Author]
	if f != nil && f.blocked { // unblocked
		s.update(h.Author, func(f *feedState) { f.throttled, f.dropGaps, f.blocked = false, false, false })
	}
	if (f == nil || f.local.Len == 0) && h.Len > 0 {
		if s.version < 2 && s.served >= s.r.lim.MaxFeedsV1 {
			s.update(h.Author, func(f *feedState) { f.diverged = "over the version 1 feed limit" })
			return
		}
		s.served++
	}
	live := s.haveSent && s.version >= 2 && s.r.lim.RelayDelay > 0 && !s.r.st.Appended(h.Author)
	s.update(h.Author, func(f *feedState) {
		if live && h.Len > f.local.Len {
			f.relay = true
		}
		f.local = h
	})
	s.dirty[h.Author] = true
	s.haveDirty[h.Author] = true
}

// timers ends refusals whose retry time came, and leaves out feeds the
// peer claims to be ahead on but sends nothing of.
func (s *session) timers() {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	stalled := s.gotHave && s.want > 0 && now.Sub(s.lastEntries) > s.r.lim.StallTimeout
	if !stalled && s.holds == 0 {
		return // nothing to look at: no walk over the feeds
	}
	for a, f := range s.feeds {
		if !f.holdUntil.IsZero() && now.After(f.holdUntil) {
			s.update(a, func(f *feedState) { f.refused = ""; f.holdUntil = time.Time{} })
			s.holds--
			s.dirty[a] = true
		}
		if stalled && !f.stalled && !f.excluded() && f.peer.Len > f.local.Len {
			s.update(a, func(f *feedState) { f.stalled = true })
			s.log.Info("peer advertises entries it does not send; feed left out", "author", a.Short(), "claimed", f.peer.Len, "held", f.local.Len)
		}
	}
	s.syncState()
}

// round brings the peer up to date: entries it lacks, taking turns between
// feeds, fork evidence, then a have of what changed.
func (s *session) round() error {
	s.mu.Lock()
	got := s.gotHave
	s.mu.Unlock()
	if got {
		for {
			s.mu.Lock()
			work := make([]feed.AuthorID, 0, len(s.dirty))
			for a := range s.dirty {
				work = append(work, a)
			}
			s.mu.Unlock()
			progress := false
			for _, a := range work {
				more, err := s.serve(a)
				if err != nil {
					return err
				}
				progress = progress || more
				if !more {
					s.mu.Lock()
					delete(s.dirty, a)
					s.mu.Unlock()
				}
			}
			if err := s.sendHave(); err != nil {
				return err
			}
			if !progress {
				break
			}
			if err := s.ctx.Err(); err != nil {
				return err
			}
		}
	}
	if err := s.flush(); err != nil {
		return err
	}
	s.mu.Lock()
	s.syncState()
	s.mu.Unlock()
	return nil
}

// syncState recomputes "synced" from the counters. Caller holds s.mu.
func (s *session) syncState() {
	synced := s.gotHave && s.peerComplete && s.haveSent && s.unsynced == 0
	if synced != s.synced {
		s.synced = synced
		s.log.Debug("sync state", "synced", synced)
		s.r.progressed()
	}
}

// serve sends the peer at most one frame of feed a, and reports whether
// there may be more to send.
func (s *session) serve(a feed.AuthorID) (bool, error) {
	s.mu.Lock()
	f := s.feeds[a]
	if f == nil {
		s.mu.Unlock()
		return false, nil
	}
	st := *f
	s.mu.Unlock()
	switch {
	case st.local.Forked:
		return false, s.sendEvidence(a, &st)
	case st.local.Len == 0 || st.peer.Forked || st.diverged != "" || st.refused != "" || !st.holdUntil.IsZero():
		return false, nil
	}
	if st.peer.Len > 0 && st.peer.Len <= st.local.Len && st.checked != st.peer.Len {
		// The peer's head must be our entry there (checked once per head
		// the peer advertises, also when both hold as many entries).
		held, err := s.r.st.Get(s.key.ch, a, st.peer.Len-1)
		if err != nil {
			return false, err
		}
		if held.Hash() != st.peer.Hash {
			// The author forked the feed: the peer gets our entry there
			// (in a run ending at a verified signature) and records the
			// evidence; so does our store once the peer hands its side back.
			s.mu.Lock()
			s.update(a, func(f *feedState) { f.diverged = "forked" })
			s.mu.Unlock()
			s.log.Warn("fork: the peer holds another entry of this feed", "author", a.Short(), "seq", st.peer.Len-1)
			_, err := s.sendRun(a, st.peer.Len-1)
			return false, err
		}
		s.mu.Lock()
		f.checked = st.peer.Len
		s.mu.Unlock()
	}
	from := max(st.peer.Len, st.next)
	if from >= st.local.Len {
		if st.relay {
			s.mu.Lock()
			f.relay, f.lazyUntil = false, time.Time{}
			s.mu.Unlock()
		}
		return false, nil
	}
	if st.relay && s.wait(a, f, st.lazyUntil) {
		return false, nil
	}
	n, err := s.sendRun(a, from)
	return n > 0, err
}

// wait reports whether relayed entries of feed a must wait before they go
// to the peer: for RelayDelay plus a random part of RelayJitter from when
// the writer first had them to send, so that the peer, if it got them from
// someone else meanwhile, says so in a have and is not sent a copy. The
// wait is per feed and ends when the peer holds the feed's head (serve
// clears relay). Writer only.
func (s *session) wait(a feed.AuthorID, f *feedState, until time.Time) bool {
	now := time.Now()
	if until.IsZero() {
		until = now.Add(s.r.lim.RelayDelay)
		if j := s.r.lim.RelayJitter; j > 0 {
			until = until.Add(mrand.N(j))
		}
		s.mu.Lock()
		f.lazyUntil = until
		s.mu.Unlock()
	}
	if !now.Before(until) {
		return false
	}
	s.mu.Lock()
	s.deferred[a] = until
	s.mu.Unlock()
	if s.lazyAt.IsZero() || until.Before(s.lazyAt) {
		s.lazyAt = until
		s.lazyT.Reset(time.Until(until))
	}
	return true
}

// lazyDue hands the writer the deferred feeds whose wait is over, and arms
// the timer for the rest. Writer only.
func (s *session) lazyDue() {
	now := time.Now()
	s.lazyAt = time.Time{}
	s.mu.Lock()
	for a, t := range s.deferred {
		if !now.Before(t) {
			s.dirty[a] = true
			delete(s.deferred, a)
		} else if s.lazyAt.IsZero() || t.Before(s.lazyAt) {
			s.lazyAt = t
		}
	}
	s.mu.Unlock()
	if !s.lazyAt.IsZero() {
		s.lazyT.Reset(time.Until(s.lazyAt))
	}
}

// sendRun sends one entries frame of feed a from seq from, ending at an
// entry with a valid signature of its own, and returns how many it held.
func (s *session) sendRun(a feed.AuthorID, from uint64) (int, error) {
	run, err := s.r.st.Run(s.key.ch, a, from, s.r.lim.MaxBatchEntries, s.r.lim.MaxBatchBytes)
	if err != nil || len(run) == 0 {
		if errors.Is(err, feed.ErrNoVerifiedEnd) {
			s.mu.Lock()
			s.update(a, func(f *feedState) { f.diverged = err.Error() })
			s.mu.Unlock()
			return 0, nil
		}
		return 0, err
	}
	raws := make([][]byte, len(run))
	for i := range run {
		raws[i] = run[i].Encode()
	}
	if err := s.queue(frameEntries, entriesBody{Author: a[:], First: from, Entries: raws}); err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.update(a, func(f *feedState) { f.next = max(f.next, from+uint64(len(raws))) })
	s.mu.Unlock()
	s.sent.Add(uint64(len(raws)))
	s.r.cnt.entriesSent.Add(uint64(len(raws)))
	return len(raws), nil
}

// sendEvidence hands fork evidence for feed a to a version 2 peer that has
// not advertised the feed as forked, once per session.
func (s *session) sendEvidence(a feed.AuthorID, st *feedState) error {
	if s.version < 2 || st.sentEv || st.peer.Forked {
		return nil
	}
	s.mu.Lock()
	s.feeds[a].sentEv = true
	s.mu.Unlock()
	ev, err := s.r.st.Fork(s.key.ch, a)
	if err != nil {
		return err
	}
	if !ev.Portable() {
		return nil // proves nothing alone; the peer finds the fork from haves
	}
	return s.queue(frameFork, forkBody{A: ev.Held, B: ev.Other})
}

// sendHave sends, in pages, the heads that changed since the last have
// (every head the first time).
func (s *session) sendHave() error {
	s.mu.Lock()
	var delta []wireHead
	for a := range s.haveDirty {
		if f := s.feeds[a]; f != nil && f.local.Len > 0 && f.lastSent != f.local {
			delta = append(delta, fromHead(f.local))
			f.lastSent = f.local
		}
	}
	clear(s.haveDirty)
	s.mu.Unlock()
	if len(delta) == 0 && s.haveSent {
		return nil
	}
	slices.SortFunc(delta, func(x, y wireHead) int { return bytes.Compare(x.Author, y.Author) })
	page := s.r.lim.MaxHaveFeeds
	if s.version < 2 {
		page = max(page, len(delta)) // at most MaxFeedsV1 served
	}
	for len(delta) > 0 || !s.haveSent {
		n := min(page, len(delta))
		if err := s.queue(frameHave, haveBody{Feeds: delta[:n], More: n < len(delta)}); err != nil {
			return err
		}
		delta = delta[n:]
		s.haveSent = true
	}
	return nil
}

func (s *session) isSynced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.synced && s.applying {
		s.lookedApplying = true
		return false
	}
	return s.synced
}

// Refusal is a feed that a session does not replicate, and why.
type Refusal struct {
	Author feed.AuthorID
	Why    string // "forked", "throttled" (by the peer), "blocked" (by the peer), "stalled", ...
	ByPeer bool   // the peer refused it (else: this side)
}

// refusal says why feed f is left out of the session ("" if it is not),
// and whether the peer refused it.
func (f *feedState) refusal() (why string, byPeer bool) {
	switch {
	case f.refused != "":
		return f.refused, true
	case f.local.Forked || f.peer.Forked || f.diverged == "forked":
		return "forked", false
	case f.diverged != "":
		return f.diverged, false
	case f.stalled:
		return "stalled: the peer advertises entries it does not send", false
	case f.blocked:
		return "blocked", false
	case f.throttled:
		return "throttled", false
	}
	return "", false
}

// info is the session's state. It walks the feeds only when some are
// left out (status readers call it for every session, often).
func (s *session) info() SessionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	si := SessionInfo{
		Peer: s.key.peer, Channel: s.key.ch, Outbound: s.outbound, Mesh: s.mesh, Since: s.since, Version: s.version,
		Sent: s.sent.Load(), Received: s.received.Load(), Stored: s.stored.Load(),
		Synced: s.synced, Want: s.want, Owe: s.owe,
	}
	if s.refusals == 0 {
		return si
	}
	for a, f := range s.feeds {
		if why, byPeer := f.refusal(); why != "" {
			si.Refused = append(si.Refused, Refusal{Author: a, Why: why, ByPeer: byPeer})
		}
	}
	return si
}
