// Package replicate is kchat's sync protocol (/kchat/sync/1) over libp2p
// streams: one stream per (peer, channel); a mutual proof of the channel key
// before any data; have-vectors; bounded, verified batches of what the other
// side lacks, both ways; then live push of every new entry, own or received
// from a third peer, so gossip is transitive.
//
// Data flows one way: a received batch goes into the feed store through its
// verified batch path (feed.Store.Apply), and what a session sends is always
// read back from the store, never from an in-memory queue. Writes block on
// the stream's flow control, so a slow peer slows its session, not memory.
//
// The wire format is specified in docs/protocol.md section 4.
package replicate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/notify"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Errors of the replicator. Others are wrapped with details.
var (
	ErrClosed    = errors.New("replicator closed")
	ErrBanned    = errors.New("peer is banned for this channel")
	ErrNoSession = errors.New("no session")
	// ErrBusy: the peer declined a mesh session (it has enough of them for
	// the channel). Errors that wrap it are *BusyError.
	ErrBusy = errors.New("peer has enough mesh sessions for this channel")
)

// BusyError is a declined mesh session and when to ask again.
type BusyError struct{ Retry time.Duration }

func (e *BusyError) Error() string { return fmt.Sprintf("%v (ask again in %v)", ErrBusy, e.Retry) }
func (e *BusyError) Unwrap() error { return ErrBusy }

// DefaultMeshIn is how many inbound mesh sessions per channel a node
// accepts from peers that have other sessions of the channel (4.3a).
const DefaultMeshIn = 8

// busyRetry is what a busy responder asks the initiator to wait.
const busyRetry = time.Minute

// Config configures a Replicator. Zero fields take defaults.
type Config struct {
	Limits Limits
	Logger *slog.Logger
	// MaxVersion caps the protocol versions spoken (0: the newest). A
	// version 1 node is for tests of the fallback.
	MaxVersion int
	// MeshIn bounds the inbound mesh sessions per channel (0:
	// DefaultMeshIn; negative: no bound). Sessions the initiator's user
	// asked for, and mesh sessions of an initiator with no other session
	// of the channel, are always accepted.
	MeshIn int
}

// SessionInfo is the state of one session, for status displays.
type SessionInfo struct {
	Peer     peer.ID
	Channel  feed.DiscoveryID
	Outbound bool      // we opened the stream
	Mesh     bool      // a mesh opened it (the hello's mesh field), not a user
	Since    time.Time // when the key proofs checked
	Sent     uint64    // entries sent
	Received uint64    // entries received
	Stored   uint64    // received entries that were new here
	Version  int       // protocol version (1 or 2)
	Synced   bool      // both sides hold the same heads, as last exchanged
	Want     uint64    // entries the peer advertised that we do not hold
	Owe      uint64    // entries we hold that the peer has not advertised holding
	Refused  []Refusal // feeds left out of this session, and why
}

// Stats are totals since New.
type Stats struct {
	Sessions        int    // live sessions
	Banned          int    // (peer, channel) pairs currently refused
	EntriesSent     uint64 // in entries frames
	EntriesReceived uint64 // in entries frames
	EntriesStored   uint64 // received and new
	FramesSent      uint64
	FramesReceived  uint64
	BytesSent       uint64 // frame bytes, without the length prefix
	BytesReceived   uint64
	Violations      uint64 // sessions ended because the peer broke the protocol
}

type sessKey struct {
	peer peer.ID
	ch   feed.DiscoveryID
}

// counters are shared by the replicator and its sessions.
type counters struct {
	entriesSent, entriesReceived, entriesStored atomic.Uint64
	framesSent, framesReceived                  atomic.Uint64
	bytesSent, bytesReceived                    atomic.Uint64
	violations                                  atomic.Uint64
}

// Replicator runs the sync protocol for every joined channel of a store on
// a libp2p host. It answers inbound streams from New on, and opens streams
// on Connect. It never dials by itself: who to connect to and when to
// reconnect is the caller's (discovery's) business.
type Replicator struct {
	h      host.Host
	st     *feed.Store
	lim    Limits
	meshIn int
	log    *slog.Logger
	codecs map[int]*codec // by protocol version
	protos []protocol.ID  // spoken, newest first
	ctx    context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup // every goroutine the replicator starts
	cnt    counters

	mu        sync.Mutex
	closed    bool
	sessions  map[sessKey]*session
	dialing   map[sessKey]*dial
	pending   map[sessKey]int       // inbound handshakes past the hello
	bans      map[sessKey]time.Time // a zero channel: the peer for every channel
	ended     map[sessKey]error     // why the last session of a key ended
	strangers map[peer.ID]*strangerCount
	busy      map[sessKey]time.Time // peers that declined or shed a mesh session, until
	shed      map[sessKey]time.Time // peers whose session this node shed, when

	sig     notify.Signal // status changes, progress included
	sessSig notify.Signal // sessions up or down, bans, forks, refusals
}

type dial struct {
	done chan struct{}
	err  error
}

// New makes a replicator for st on h and sets the stream handler.
func New(h host.Host, st *feed.Store, cfg Config) *Replicator {
	lim := cfg.Limits.withDefaults()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(context.Background())
	r := &Replicator{
		h: h, st: st, lim: lim, meshIn: cmp.Or(cfg.MeshIn, DefaultMeshIn), log: log.With("component", "replicate"),
		codecs: map[int]*codec{1: newCodecVersion(lim, 1), 2: newCodecVersion(lim, 2)},
		ctx:    ctx, stop: stop,
		sessions: map[sessKey]*session{}, dialing: map[sessKey]*dial{}, pending: map[sessKey]int{},
		bans: map[sessKey]time.Time{}, ended: map[sessKey]error{}, strangers: map[peer.ID]*strangerCount{},
		busy: map[sessKey]time.Time{}, shed: map[sessKey]time.Time{},
	}
	r.protos = []protocol.ID{ProtocolID, ProtocolV1}
	if cfg.MaxVersion == 1 {
		r.protos = r.protos[1:]
	}
	for _, p := range r.protos {
		h.SetStreamHandler(p, r.handle)
	}
	return r
}

// Close removes the stream handler, ends every session and waits until all
// goroutines of the replicator have stopped.
func (r *Replicator) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	for _, p := range r.protos {
		r.h.RemoveStreamHandler(p)
	}
	r.stop()
	r.wg.Wait()
	return nil
}

// track registers a goroutine the replicator owns; false once closed.
func (r *Replicator) track() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.wg.Add(1)
	return true
}

// Connect opens a session with p for channel ch, unless one is live, and
// returns once both key proofs have checked (or the attempt failed). The
// session then runs until Close, CloseChannel, an error, or the peer leaves.
func (r *Replicator) Connect(ctx context.Context, p peer.ID, ch feed.DiscoveryID) error {
	return r.open(ctx, sessKey{p, ch}, false)
}

// ConnectMesh is Connect for a session a mesh picked rather than one the
// user asked for: a peer with enough mesh sessions of ch may decline it
// with a *BusyError, unless this node has no other session of ch.
func (r *Replicator) ConnectMesh(ctx context.Context, p peer.ID, ch feed.DiscoveryID) error {
	return r.open(ctx, sessKey{p, ch}, true)
}

func (r *Replicator) open(ctx context.Context, key sessKey, mesh bool) error {
	p := key.peer
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	if until, ok := r.bans[key]; ok && time.Now().Before(until) {
		r.mu.Unlock()
		return fmt.Errorf("connect %s: %w until %s", p.ShortString(), ErrBanned, until.Format(time.TimeOnly))
	}
	if s := r.sessions[key]; s != nil && s.alive() {
		r.mu.Unlock()
		return nil
	}
	if d := r.dialing[key]; d != nil {
		r.mu.Unlock()
		select {
		case <-d.done:
			return d.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// The hello's mesh field: 1 + the sessions of the channel this node
	// has or is already opening. Dials started together count the earlier
	// ones, so the first of a fresh node's dials says 1 (never declined)
	// and the others say more (a busy peer may decline them).
	var meshN uint64
	if mesh {
		meshN = 1
		for k, s := range r.sessions {
			if k.ch == key.ch && s.alive() {
				meshN++
			}
		}
		for k := range r.dialing {
			if k.ch == key.ch {
				meshN++
			}
		}
	}
	d := &dial{done: make(chan struct{})}
	r.dialing[key] = d
	r.mu.Unlock()

	d.err = r.connect(ctx, key, meshN)
	r.mu.Lock()
	delete(r.dialing, key)
	r.mu.Unlock()
	close(d.done)
	return d.err
}

func (r *Replicator) connect(ctx context.Context, key sessKey, meshN uint64) error {
	c, err := r.st.Channel(key.ch)
	if err != nil {
		return err
	}
	// A peer behind a NAT may be reachable only through a circuit relay: a
	// "limited" connection on which libp2p opens no stream unless asked.
	// Chat traffic is small, so sync deliberately runs over it; once hole
	// punching gives a direct connection, libp2p prefers that for new streams.
	s, err := r.h.NewStream(network.WithAllowLimitedConn(ctx, "kchat sync"), key.peer, r.protos...)
	if err != nil {
		return fmt.Errorf("open sync stream to %s: %w", key.peer.ShortString(), err)
	}
	sess, err := r.handshake(ctx, s, c, true, meshN)
	if err != nil {
		err = r.failed(key, s, err)
		if be := (*BusyError)(nil); errors.As(err, &be) {
			r.holdBusy(key, be.Retry)
			return err
		}
		var v *violation
		if !errors.As(err, &v) && r.waitLive(ctx, key) {
			return nil // the peer's own stream for this channel won the race
		}
		return err
	}
	if !r.track() {
		s.Reset()
		return ErrClosed
	}
	if !r.register(sess) {
		r.wg.Done()
		s.Close()
		return nil // the peer's own stream for this channel won; it is live
	}
	go func() {
		defer r.wg.Done()
		r.run(sess)
	}()
	return nil
}

// handle answers an inbound stream.
func (r *Replicator) handle(s network.Stream) {
	if !r.track() {
		s.Reset()
		return
	}
	if r.banned(sessKey{peer: s.Conn().RemotePeer()}) {
		r.wg.Done()
		s.Reset() // refused for every channel: not even read
		return
	}
	defer r.wg.Done()
	sess, err := r.handshake(r.ctx, s, feed.Channel{}, false, 0)
	if err != nil {
		r.failed(sessKey{peer: s.Conn().RemotePeer()}, s, err)
		return
	}
	ok := r.register(sess)
	r.pend(sess.key, -1)
	if !ok {
		s.Close() // not Reset: the initiator must still read our proof
		return
	}
	r.run(sess)
}

// failed bans the peer if it broke the protocol, then resets s after a
// failed handshake (in that order, so that a peer reconnecting at once finds
// the ban), and returns err.
func (r *Replicator) failed(key sessKey, s network.Stream, err error) error {
	if errors.Is(err, errDeclined) {
		s.Close() // not Reset: the initiator must read the busy frame
		return err
	}
	defer s.Reset()
	var v *violation
	switch {
	case errors.As(err, &v) && v.ch != (feed.DiscoveryID{}):
		key.ch = v.ch
		r.ban(key, err)
	case errors.As(err, &v):
		// Before any channel is named: refuse the peer for every channel,
		// so that a stream of bad hellos costs one log line, not one each.
		r.ban(key, err)
	default:
		r.log.Debug("sync handshake failed", "peer", key.peer.ShortString(), "err", err)
	}
	return err
}

// maxBans bounds the ban list; past it the bans closest to their end go.
const maxBans = 4096

func (r *Replicator) ban(key sessKey, why error) {
	r.cnt.violations.Add(1)
	now := time.Now()
	until := now.Add(r.lim.BanDuration)
	r.mu.Lock()
	if len(r.bans) >= maxBans {
		for k, t := range r.bans {
			if !now.Before(t) {
				delete(r.bans, k)
			}
		}
		for len(r.bans) >= maxBans {
			var first sessKey
			var firstT time.Time
			for k, t := range r.bans {
				if firstT.IsZero() || t.Before(firstT) {
					first, firstT = k, t
				}
			}
			delete(r.bans, first)
		}
	}
	r.bans[key] = until
	r.mu.Unlock()
	r.log.Warn("peer broke the sync protocol; dropped and banned", "peer", key.peer.String(),
		"channel", key.ch.Short(), "until", until.Format(time.TimeOnly), "why", why)
	r.notify()
}

// banned reports whether key, or its peer for every channel, is banned,
// forgetting expired bans.
func (r *Replicator) banned(key sessKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for _, k := range []sessKey{key, {peer: key.peer}} {
		until, ok := r.bans[k]
		if ok && !now.Before(until) {
			delete(r.bans, k)
			ok = false
		}
		if ok {
			return true
		}
	}
	return false
}

// strangerCount counts hellos for channels this node does not hold.
type strangerCount struct {
	n     int
	since time.Time
}

// strangerLimit is how many hellos for unknown channels one peer may send
// per minute before it is refused for every channel (silently: a stranger
// cannot fill the log).
const strangerLimit = 30

// strangerHello counts a hello for a channel this node does not hold.
func (r *Replicator) strangerHello(p peer.ID) {
	now := time.Now()
	r.mu.Lock()
	sc := r.strangers[p]
	if sc == nil || now.Sub(sc.since) > time.Minute {
		if len(r.strangers) >= maxBans {
			clear(r.strangers)
		}
		sc = &strangerCount{since: now}
		r.strangers[p] = sc
	}
	sc.n++
	over := sc.n == strangerLimit
	r.mu.Unlock()
	if over {
		r.ban(sessKey{peer: p}, fmt.Errorf("%d hellos for channels this node does not hold within a minute", strangerLimit))
	}
}

// blocked reports whether the user blocked author a in ch: such a feed is
// neither stored nor advertised nor forwarded.
func (r *Replicator) blocked(ch feed.DiscoveryID, a feed.AuthorID) bool { return r.st.IsBlocked(ch, a) }

// Banned reports whether p is refused for channel ch (it broke the protocol
// less than BanDuration ago).
func (r *Replicator) Banned(p peer.ID, ch feed.DiscoveryID) bool { return r.banned(sessKey{p, ch}) }

// pend counts inbound handshakes for key that are past the hello.
func (r *Replicator) pend(key sessKey, d int) {
	r.mu.Lock()
	if r.pending[key] += d; r.pending[key] <= 0 {
		delete(r.pending, key)
	}
	r.mu.Unlock()
	if d < 0 {
		r.notify()
	}
}

// waitLive waits for inbound handshakes of key in progress and reports
// whether a live session for key exists then.
func (r *Replicator) waitLive(ctx context.Context, key sessKey) bool {
	sub := r.SubscribeSessions()
	defer sub.Close()
	for {
		r.mu.Lock()
		s, n := r.sessions[key], r.pending[key]
		r.mu.Unlock()
		if s != nil && s.alive() {
			return true
		}
		if n == 0 {
			return false
		}
		select {
		case <-sub.C():
		case <-ctx.Done():
			return false
		case <-r.ctx.Done():
			return false
		}
	}
}

// holdBusy records that the peer of key declined or shed a mesh session.
func (r *Replicator) holdBusy(key sessKey, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for k, until := range r.busy {
		if !now.Before(until) {
			delete(r.busy, k)
		}
	}
	r.busy[key] = now.Add(d)
}

// Busy reports whether p declined or shed a mesh session of ch and asked
// not to be asked again yet.
func (r *Replicator) Busy(p peer.ID, ch feed.DiscoveryID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	until, ok := r.busy[sessKey{p, ch}]
	return ok && time.Now().Before(until)
}

// errShed ends a mesh session this node shed (it sent busy).
var errShed = errors.New("shed: more inbound mesh sessions than the bound")

// shedAgain: a peer whose session was shed and that came back anyway (it
// had no other peer) is not shed again for this long.
const shedAgain = 10 * time.Minute

// ShedMesh ends inbound mesh sessions of ch beyond the node's bound: those
// an initiator opened as its first (mesh = 1, which is never declined),
// live for at least minAge (by then it has usually found other peers), the
// oldest first, not the same peer twice in shedAgain. Each is told with a
// busy frame, so the initiator picks someone else (4.3a). It returns how
// many it shed. It does not wait for the busy frames to be written.
func (r *Replicator) ShedMesh(ch feed.DiscoveryID, minAge time.Duration) int {
	if r.meshIn < 0 {
		return 0
	}
	r.mu.Lock()
	now := time.Now()
	for k, at := range r.shed {
		if now.Sub(at) >= shedAgain {
			delete(r.shed, k)
		}
	}
	in := 0
	var firsts []*session
	for k, s := range r.sessions {
		if k.ch != ch || s.outbound || !s.mesh || !s.alive() || s.shedding.Load() {
			continue
		}
		in++
		if _, again := r.shed[k]; s.meshN == 1 && s.version >= 2 && now.Sub(s.since) >= minAge && !again {
			firsts = append(firsts, s)
		}
	}
	r.mu.Unlock()
	excess := in - r.meshIn
	if excess <= 0 || len(firsts) == 0 {
		return 0
	}
	slices.SortFunc(firsts, func(a, b *session) int { return a.since.Compare(b.since) })
	n := 0
	for _, s := range firsts[:min(excess, len(firsts))] {
		// The session's writer sends the busy frame and ends the session:
		// it may be blocked in a write to a slow peer (up to IdleTimeout),
		// and the mesh loop calling this must not wait for it.
		s.shed()
		s.log.Debug("mesh session shed", "inbound mesh sessions", in)
		r.mu.Lock()
		r.shed[s.key] = time.Now()
		r.mu.Unlock()
		n++
	}
	return n
}

// meshFull reports whether ch has as many inbound mesh sessions as the
// node accepts.
func (r *Replicator) meshFull(ch feed.DiscoveryID) bool {
	if r.meshIn < 0 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for k, s := range r.sessions {
		if k.ch == ch && !s.outbound && s.mesh && s.alive() {
			n++
		}
	}
	return n >= r.meshIn
}

// register makes sess the session of its key. When the two peers opened
// streams for one channel at the same time, both keep the stream opened by
// the peer with the smaller id; otherwise the newer session replaces the
// older one (a reconnect). It returns false if sess lost and must be closed.
func (r *Replicator) register(sess *session) bool {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return false
	}
	old := r.sessions[sess.key]
	if old != nil && old.alive() && old.outbound != sess.outbound {
		if old.initiator() < sess.initiator() {
			r.mu.Unlock()
			r.log.Debug("simultaneous open: keeping the other stream", "peer", sess.key.peer.ShortString())
			return false
		}
	}
	r.sessions[sess.key] = sess
	delete(r.ended, sess.key)
	r.mu.Unlock()
	if old != nil {
		old.cancel(errReplaced)
	}
	r.log.Info("sync session up", "peer", sess.key.peer.String(), "channel", sess.key.ch.Short(), "outbound", sess.outbound)
	r.notify()
	return true
}

var errReplaced = errors.New("replaced by a newer session")

func (r *Replicator) unregister(sess *session, why error) {
	r.mu.Lock()
	if r.sessions[sess.key] == sess {
		delete(r.sessions, sess.key)
		r.ended[sess.key] = why
	}
	r.mu.Unlock()
	r.notify()
}

// CloseChannel ends every session of channel ch (after the user parts it).
func (r *Replicator) CloseChannel(ch feed.DiscoveryID) {
	r.mu.Lock()
	var ss []*session
	for k, s := range r.sessions {
		if k.ch == ch {
			ss = append(ss, s)
		}
	}
	r.mu.Unlock()
	for _, s := range ss {
		s.cancel(errors.New("channel closed"))
	}
}

// Disconnect ends the session with p for channel ch, if any (a mesh
// rotating its members). The peer sees the stream reset, as when this node
// goes away, and both keep what they synced.
func (r *Replicator) Disconnect(p peer.ID, ch feed.DiscoveryID, why error) {
	r.mu.Lock()
	s := r.sessions[sessKey{p, ch}]
	r.mu.Unlock()
	if s != nil {
		s.cancel(why)
	}
}

// Sessions describes the live sessions of channel ch.
func (r *Replicator) Sessions(ch feed.DiscoveryID) []SessionInfo {
	r.mu.Lock()
	var ss []*session
	for k, s := range r.sessions {
		if k.ch == ch {
			ss = append(ss, s)
		}
	}
	r.mu.Unlock()
	out := make([]SessionInfo, 0, len(ss))
	for _, s := range ss {
		out = append(out, s.info())
	}
	return out
}

// HasSession reports whether a live session with p for ch runs (a map
// lookup: for loops that ask often, unlike Sessions).
func (r *Replicator) HasSession(p peer.ID, ch feed.DiscoveryID) bool {
	r.mu.Lock()
	s := r.sessions[sessKey{p, ch}]
	r.mu.Unlock()
	return s != nil && s.alive()
}

// Stats returns totals since New.
func (r *Replicator) Stats() Stats {
	r.mu.Lock()
	st := Stats{Sessions: len(r.sessions)}
	now := time.Now()
	for _, until := range r.bans {
		if now.Before(until) {
			st.Banned++
		}
	}
	r.mu.Unlock()
	st.EntriesSent = r.cnt.entriesSent.Load()
	st.EntriesReceived = r.cnt.entriesReceived.Load()
	st.EntriesStored = r.cnt.entriesStored.Load()
	st.FramesSent = r.cnt.framesSent.Load()
	st.FramesReceived = r.cnt.framesReceived.Load()
	st.BytesSent = r.cnt.bytesSent.Load()
	st.BytesReceived = r.cnt.bytesReceived.Load()
	st.Violations = r.cnt.violations.Load()
	return st
}

// WaitSynced returns once, at one moment, the session with every given peer
// on channel ch is synced: both sides hold the same heads, as exchanged in
// have frames. With no peers it waits for every live session of ch (and at
// least one). It fails if a given peer has no session (it ended, or none was
// opened), or when ctx ends.
func (r *Replicator) WaitSynced(ctx context.Context, ch feed.DiscoveryID, peers ...peer.ID) error {
	sub := r.Subscribe()
	defer sub.Close()
	for {
		ok, err := r.synced(ch, peers)
		if ok || err != nil {
			return err
		}
		select {
		case <-sub.C():
		case <-ctx.Done():
			return ctx.Err()
		case <-r.ctx.Done():
			return ErrClosed
		}
	}
}

func (r *Replicator) synced(ch feed.DiscoveryID, peers []peer.ID) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false, ErrClosed
	}
	if len(peers) == 0 {
		n := 0
		for k, s := range r.sessions {
			if k.ch == ch {
				n++
				if !s.isSynced() {
					return false, nil
				}
			}
		}
		return n > 0, nil
	}
	all := true
	for _, p := range peers {
		key := sessKey{p, ch}
		s := r.sessions[key]
		if s == nil {
			if r.dialing[key] != nil || r.pending[key] > 0 {
				all = false // a handshake is in progress
				continue
			}
			why := r.ended[key]
			if why == nil {
				why = errors.New("never connected")
			}
			return false, fmt.Errorf("%w with %s on %s: %w", ErrNoSession, p.ShortString(), ch.Short(), why)
		}
		if !s.isSynced() {
			all = false
		}
	}
	return all, nil
}

// Subscription signals status changes (sessions up or down, progress,
// synced, forks found). Signals coalesce: a busy reader gets one for many
// changes and reads the state with Sessions and Stats.
type Subscription = notify.Subscription

// Subscribe returns a subscription to status changes, progress included:
// it signals on every stored batch.
func (r *Replicator) Subscribe() *Subscription { return r.sig.Subscribe() }

// SubscribeSessions returns a subscription to sessions coming and going
// (and bans, forks, refusals), not to progress or to sessions turning
// synced or not. Loops that look after the mesh wait on it, so that a
// burst of messages does not wake them once per stored batch.
func (r *Replicator) SubscribeSessions() *Subscription { return r.sessSig.Subscribe() }

// notify signals a status change; progressed signals progress (stored
// entries, a session turning synced or not).
func (r *Replicator) notify()     { r.sig.Notify(); r.sessSig.Notify() }
func (r *Replicator) progressed() { r.sig.Notify() }
