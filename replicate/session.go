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

// conn is a stream with msgio framing.
type conn struct {
	s     network.Stream
	rd    msgio.ReadCloser
	wr    msgio.WriteCloser
	codec *codec
	cnt   *counters
}

func newConn(s network.Stream, c *codec, cnt *counters) *conn {
	return &conn{
		s:     s,
		rd:    msgio.NewVarintReaderSize(bufio.NewReaderSize(s, 32<<10), c.lim.MaxFrame),
		wr:    msgio.NewVarintWriter(s),
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

// handshake runs hello and proof on s. For an outbound stream c is the
// channel to open; for an inbound one the peer's hello names it. Nothing is
// sent before the peer's hello, and nothing after the hellos before the
// peer's proof has checked, except the initiator's own proof.
func (r *Replicator) handshake(ctx context.Context, s network.Stream, c feed.Channel, outbound bool) (_ *session, err error) {
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	stopR := context.AfterFunc(r.ctx, func() { s.Reset() })
	defer stopR()
	if err := s.SetDeadline(time.Now().Add(r.lim.HandshakeTimeout)); err != nil {
		return nil, err
	}
	cn := newConn(s, r.codec, &r.cnt)
	local, remote := r.h.ID(), s.Conn().RemotePeer()
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	var ch feed.DiscoveryID
	if outbound {
		ch = c.ID()
		if err := cn.write(frameHello, helloBody{Channel: ch[:], Nonce: nonce}); err != nil {
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
		if err := readProof(cn, ch, want); err != nil {
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
			return nil, fmt.Errorf("refused %s: %w", remote.ShortString(), err)
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
		if err := readProof(cn, ch, want); err != nil {
			return nil, err
		}
		if err := cn.write(frameProof, proofBody{MAC: proofMAC(c.Key, roleResponder, remote, local, f.hello.Nonce, nonce)}); err != nil {
			return nil, err
		}
	}
	if err := s.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return r.newSession(cn, sessKey{remote, ch}, outbound), nil
}

func readProof(cn *conn, ch feed.DiscoveryID, want []byte) error {
	f, err := cn.read(ch)
	if err != nil {
		return err
	}
	if f.typ != frameProof {
		return violationf(ch, "want proof, got %s", f.typ)
	}
	if !hmac.Equal(f.proof.MAC, want) {
		return violationf(ch, "wrong channel key proof")
	}
	return nil
}

// session is one authenticated stream for one channel. Its reader runs in
// the goroutine that calls run; run starts and waits for its writer.
type session struct {
	r        *Replicator
	key      sessKey
	cn       *conn
	outbound bool
	since    time.Time
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelCauseFunc
	poke     chan struct{} // reader -> writer: the peer's have changed

	sent, received, stored atomic.Uint64

	mu       sync.Mutex
	peerHave map[feed.AuthorID]feed.Head // merged have frames of the peer
	gotHave  bool
	heads    map[feed.AuthorID]feed.Head // local heads at the writer's last round (served feeds)
	next     map[feed.AuthorID]uint64    // first seq not yet sent, per feed
	diverged map[feed.AuthorID]string    // feeds no longer replicated in this session, and why
	synced   bool

	// writer only
	served    map[feed.AuthorID]bool      // feeds advertised (at most MaxFeeds)
	lastSent  map[feed.AuthorID]feed.Head // heads as last advertised
	haveSent  bool
	checked   map[feed.AuthorID]uint64 // peer length whose head hash matched ours
	lastWrite time.Time
}

func (r *Replicator) newSession(cn *conn, key sessKey, outbound bool) *session {
	ctx, cancel := context.WithCancelCause(r.ctx)
	return &session{
		r: r, key: key, cn: cn, outbound: outbound, since: time.Now(),
		log: r.log.With("peer", key.peer.ShortString(), "channel", key.ch.Short()),
		ctx: ctx, cancel: cancel, poke: make(chan struct{}, 1),
		peerHave: map[feed.AuthorID]feed.Head{}, heads: map[feed.AuthorID]feed.Head{},
		next: map[feed.AuthorID]uint64{}, diverged: map[feed.AuthorID]string{},
		served: map[feed.AuthorID]bool{}, lastSent: map[feed.AuthorID]feed.Head{},
		checked: map[feed.AuthorID]uint64{},
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

// run runs the session until it ends, then bans the peer if it broke the
// protocol and unregisters the session.
func (r *Replicator) run(s *session) {
	stop := context.AfterFunc(s.ctx, func() {
		if errors.Is(context.Cause(s.ctx), errReplaced) {
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
	for _, w := range h.Feeds {
		nh := toHead(w)
		old, ok := s.peerHave[nh.Author]
		if ok && (nh.Len < old.Len || nh.Len == old.Len && nh.Hash != old.Hash) {
			s.mu.Unlock()
			return violationf(s.key.ch, "have of feed %s went from %d to %d entries or changed its head", nh.Author.Short(), old.Len, nh.Len)
		}
		s.peerHave[nh.Author] = nh
	}
	s.gotHave = true
	n := len(s.peerHave)
	s.mu.Unlock()
	if n > s.r.lim.MaxFeeds {
		return violationf(s.key.ch, "peer advertised %d feeds, at most %d", n, s.r.lim.MaxFeeds)
	}
	select {
	case s.poke <- struct{}{}:
	default:
	}
	return nil
}

// storeFaults are Apply errors that mean the batch itself is invalid.
var storeFaults = []error{feed.ErrBadSignature, feed.ErrBadPrev, feed.ErrSeqGap, feed.ErrWrongChannel,
	feed.ErrWrongAuthor, feed.ErrTooLarge, feed.ErrMalformed}

func (s *session) onEntries(b *entriesBody) error {
	var a feed.AuthorID
	copy(a[:], b.Author)
	n := uint64(len(b.Entries))
	s.received.Add(n)
	s.r.cnt.entriesReceived.Add(n)

	s.mu.Lock()
	_, skip := s.diverged[a]
	_, known := s.heads[a]
	feeds := len(s.heads)
	s.mu.Unlock()
	if skip {
		return nil
	}
	if !known && feeds >= s.r.lim.MaxFeeds {
		if h, err := s.r.st.Head(s.key.ch, a); err == nil && h.Len == 0 {
			s.diverge(a, fmt.Sprintf("channel already has %d feeds", feeds))
			return nil
		}
	}
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
	// The peer holds what it sent: never send it back. (Before Apply, which
	// wakes our writer; if Apply fails, the feed or the session ends.)
	s.mu.Lock()
	s.next[a] = max(s.next[a], b.First+n)
	s.mu.Unlock()
	stored, err := s.r.st.Apply(s.ctx, s.key.ch, a, batch)
	switch {
	case err == nil:
	case errors.Is(err, feed.ErrForked):
		s.diverge(a, "forked: its author signed two entries at one seq")
		return nil
	case errors.Is(err, feed.ErrTooManyFeeds):
		// The store's cap, not the peer's fault: skip that feed.
		s.diverge(a, err.Error())
		return nil
	default:
		for _, fault := range storeFaults {
			if errors.Is(err, fault) {
				return &violation{ch: s.key.ch, err: err}
			}
		}
		return fmt.Errorf("store batch of feed %s: %w", a.Short(), err)
	}
	if stored > 0 {
		s.stored.Add(uint64(stored))
		s.r.cnt.entriesStored.Add(uint64(stored))
		s.r.notify()
	}
	return nil
}

// diverge stops replicating feed a in this session.
func (s *session) diverge(a feed.AuthorID, why string) {
	s.mu.Lock()
	s.diverged[a] = why
	s.mu.Unlock()
	s.log.Warn("feed not replicated with this peer", "author", a.Short(), "why", why)
}

// writeLoop sends the full have, then on every change of the local store or
// of the peer's have sends what the peer lacks and a have of what changed.
// A ping goes out when nothing else was sent for a while, so no quiet gap
// exceeds IdleTimeout/3.
func (s *session) writeLoop() error {
	sub := s.r.st.Subscribe()
	defer sub.Close()
	// Ping when nothing was sent for half of a third of the idle time,
	// checked that often: no quiet gap exceeds a third of it.
	every := s.r.lim.IdleTimeout / 6
	tick := time.NewTicker(every)
	defer tick.Stop()
	dirty := true
	for {
		if dirty {
			if err := s.round(); err != nil {
				if s.ctx.Err() != nil {
					return nil
				}
				return err
			}
			dirty = false
		}
		select {
		case <-s.ctx.Done():
			return nil
		case <-sub.C():
			dirty = true
		case <-s.poke:
			dirty = true
		case <-tick.C:
			if time.Since(s.lastWrite) >= every {
				if err := s.send(framePing, pingBody{}); err != nil {
					return err
				}
			}
		}
	}
}

func (s *session) send(t frameType, body any) error {
	if err := s.cn.s.SetWriteDeadline(time.Now().Add(s.r.lim.IdleTimeout)); err != nil {
		return err
	}
	if err := s.cn.write(t, body); err != nil {
		return err
	}
	s.lastWrite = time.Now()
	return nil
}

// round reads the local heads and brings the peer up to date with them.
func (s *session) round() error {
	all, err := s.r.st.Heads(s.key.ch)
	if err != nil {
		return err
	}
	heads := all[:0:0]
	for _, h := range all {
		if !s.served[h.Author] && len(s.served) < s.r.lim.MaxFeeds {
			s.served[h.Author] = true
		}
		if s.served[h.Author] {
			heads = append(heads, h)
		}
	}
	s.mu.Lock()
	for _, h := range heads {
		s.heads[h.Author] = h
	}
	s.mu.Unlock()
	if !s.haveSent {
		if err := s.sendHave(heads); err != nil {
			return err
		}
	}
	if err := s.sendEntries(heads); err != nil {
		return err
	}
	if err := s.sendHave(heads); err != nil {
		return err
	}
	s.mu.Lock()
	synced, _, _ := s.progress()
	changed := synced != s.synced
	s.synced = synced
	s.mu.Unlock()
	if changed {
		s.log.Debug("sync state", "synced", synced)
		s.r.notify()
	}
	return nil
}

// sendHave sends the heads that changed since the last have (all of them
// the first time).
func (s *session) sendHave(heads []feed.Head) error {
	var delta []wireHead
	for _, h := range heads {
		if s.lastSent[h.Author] != h {
			delta = append(delta, fromHead(h))
		}
	}
	if len(delta) == 0 && s.haveSent {
		return nil
	}
	if err := s.send(frameHave, haveBody{Feeds: delta}); err != nil {
		return err
	}
	for _, h := range heads {
		s.lastSent[h.Author] = h
	}
	s.haveSent = true
	return nil
}

// sendEntries sends, one batch per feed in turn, every entry up to heads
// that the peer neither advertised nor was sent.
func (s *session) sendEntries(heads []feed.Head) error {
	s.mu.Lock()
	got := s.gotHave
	s.mu.Unlock()
	if !got {
		return nil
	}
	for {
		progress := false
		for _, h := range heads {
			from, ok, err := s.sendFrom(h)
			if err != nil {
				return err
			}
			if !ok || from >= h.Len {
				continue
			}
			n, err := s.sendBatch(h.Author, from)
			if err != nil {
				return err
			}
			progress = progress || n > 0
		}
		if !progress {
			return nil
		}
		if err := s.ctx.Err(); err != nil {
			return err
		}
	}
}

// sendFrom returns the first seq of feed h to send, or false if the feed is
// not replicated with this peer. Before continuing a feed from the length the
// peer advertised, it checks that the peer's head is our entry there; if not,
// the author forked the feed: the peer gets our entry at that seq as evidence
// and the feed is no longer replicated in this session.
func (s *session) sendFrom(h feed.Head) (uint64, bool, error) {
	a := h.Author
	s.mu.Lock()
	_, div := s.diverged[a]
	p, known := s.peerHave[a]
	from := s.next[a]
	s.mu.Unlock()
	if div || (known && p.Forked) {
		return 0, false, nil
	}
	if !known || p.Len <= from {
		return from, true, nil
	}
	from = p.Len
	if from > h.Len || s.checked[a] == p.Len {
		return from, true, nil
	}
	held, err := s.r.st.Get(s.key.ch, a, p.Len-1)
	if err != nil {
		return 0, false, err
	}
	if held.Hash() == p.Hash {
		s.checked[a] = p.Len
		return from, true, nil
	}
	s.diverge(a, fmt.Sprintf("forked: the peer holds another entry at seq %d", p.Len-1))
	if err := s.send(frameEntries, entriesBody{Author: a[:], First: held.Seq, Entries: [][]byte{held.Encode()}}); err != nil {
		return 0, false, err
	}
	s.sent.Add(1)
	s.r.cnt.entriesSent.Add(1)
	return 0, false, nil
}

var errBatchFull = errors.New("batch full")

// sendBatch sends one entries frame of feed a from seq from, and returns
// how many entries it held.
func (s *session) sendBatch(a feed.AuthorID, from uint64) (int, error) {
	lim := s.r.lim
	raws := make([][]byte, 0, min(lim.MaxBatchEntries, 256))
	total := 0
	err := s.r.st.Range(s.key.ch, a, from, lim.MaxBatchEntries, func(e feed.Entry) error {
		raw := e.Encode()
		if len(raws) > 0 && total+len(raw) > lim.MaxBatchBytes {
			return errBatchFull
		}
		raws = append(raws, raw)
		total += len(raw)
		return nil
	})
	if err != nil && !errors.Is(err, errBatchFull) {
		return 0, err
	}
	if len(raws) == 0 {
		return 0, nil
	}
	if err := s.send(frameEntries, entriesBody{Author: a[:], First: from, Entries: raws}); err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.next[a] = from + uint64(len(raws))
	s.mu.Unlock()
	s.sent.Add(uint64(len(raws)))
	s.r.cnt.entriesSent.Add(uint64(len(raws)))
	return len(raws), nil
}

// progress compares the local heads with the peer's have, leaving out feeds
// that cannot converge (forked or refused). Caller holds s.mu.
func (s *session) progress() (synced bool, want, owe uint64) {
	synced = s.gotHave
	skip := func(a feed.AuthorID) bool {
		_, div := s.diverged[a]
		return div || s.heads[a].Forked || s.peerHave[a].Forked
	}
	for a, h := range s.heads {
		if skip(a) {
			continue
		}
		p := s.peerHave[a]
		if p.Len != h.Len || p.Hash != h.Hash {
			synced = false
		}
		if h.Len > p.Len {
			owe += h.Len - p.Len
		}
	}
	for a, p := range s.peerHave {
		if skip(a) {
			continue
		}
		h, ok := s.heads[a]
		if !ok {
			synced = false
		}
		if p.Len > h.Len {
			want += p.Len - h.Len
		}
	}
	return synced, want, owe
}

func (s *session) isSynced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.synced
}

func (s *session) info() SessionInfo {
	s.mu.Lock()
	synced, want, owe := s.progress()
	s.mu.Unlock()
	return SessionInfo{
		Peer: s.key.peer, Channel: s.key.ch, Outbound: s.outbound, Since: s.since,
		Sent: s.sent.Load(), Received: s.received.Load(), Stored: s.stored.Load(),
		Synced: synced, Want: want, Owe: owe,
	}
}
