package replicate

import (
	"time"

	"github.com/kchat-p2p/kchat/feed"
)

// ProtocolID is the libp2p protocol of kchat replication, version 2. One
// stream of it carries one channel between two peers. ProtocolV1 is the
// first version, still spoken with peers that know no other.
const (
	ProtocolID = "/kchat/sync/2"
	ProtocolV1 = "/kchat/sync/1"
)

// Protocol limits. A sender MUST stay within them; a receiver MUST accept
// anything within them (see docs/protocol.md section 4). Limits lower than these are
// for tests only: a peer configured so would drop honest peers.
const (
	// ProtoMaxFrame bounds one frame (type byte + CBOR body).
	ProtoMaxFrame = 1 << 20
	// ProtoMaxBatchEntries bounds the entries of one entries frame.
	ProtoMaxBatchEntries = 1024
	// ProtoMaxBatchBytes bounds the summed entry encodings of one entries
	// frame, except that a frame of one entry may hold any valid entry.
	ProtoMaxBatchBytes = 512 << 10
	// ProtoMaxFeedsV1 bounds the feeds one peer advertises for a channel
	// over a whole version 1 session.
	ProtoMaxFeedsV1 = 4096
	// ProtoMaxHaveFeeds bounds the heads of one have frame (version 2; a
	// listing takes as many frames as it needs).
	ProtoMaxHaveFeeds = 4096
	// ProtoMaxSessionFeeds bounds the distinct feeds a version 2 session
	// tracks: it bounds a session's memory (about 200 bytes a feed), and is
	// far above the authors any real channel has.
	ProtoMaxSessionFeeds = 1 << 18
)

// Limits bound what a session accepts and how long it waits.
type Limits struct {
	MaxFrame         int // bytes of one frame; larger is a protocol violation
	MaxBatchEntries  int // entries per entries frame, sent and accepted
	MaxBatchBytes    int // summed entry encodings per entries frame, sent
	MaxFeedsV1       int // feeds advertised per version 1 session
	MaxHaveFeeds     int // heads per have frame (version 2)
	MaxSessionFeeds  int // distinct feeds per version 2 session
	IdleTimeout      time.Duration
	StallTimeout     time.Duration // a peer ahead on a feed that sends none of it for this long is left out of "synced"
	NewFeedsBurst    int           // feeds new to the store one session may bring at once...
	NewFeedsRate     float64       // ...and then per second; more are refused for a while (not a violation)
	HandshakeTimeout time.Duration
	BanDuration      time.Duration // how long a peer that broke the protocol is refused, per channel
	// RelayDelay and RelayJitter: a session waits RelayDelay plus a random
	// part of RelayJitter before it pushes live entries this node stored
	// from a third peer, so that a peer that got them elsewhere can say so
	// in a have first (entries appended here go out at once). Negative
	// RelayDelay: push at once.
	RelayDelay, RelayJitter time.Duration
}

// DefaultLimits are the protocol limits with timeouts fit for chat: a quiet
// session sends a ping at least every IdleTimeout/3.
func DefaultLimits() Limits {
	return Limits{
		MaxFrame:         ProtoMaxFrame,
		MaxBatchEntries:  ProtoMaxBatchEntries,
		MaxBatchBytes:    ProtoMaxBatchBytes,
		MaxFeedsV1:       ProtoMaxFeedsV1,
		MaxHaveFeeds:     ProtoMaxHaveFeeds,
		MaxSessionFeeds:  ProtoMaxSessionFeeds,
		IdleTimeout:      60 * time.Second,
		StallTimeout:     30 * time.Second,
		NewFeedsBurst:    8192,
		NewFeedsRate:     1024,
		HandshakeTimeout: 10 * time.Second,
		BanDuration:      10 * time.Minute,
		RelayDelay:       20 * time.Millisecond,
		RelayJitter:      80 * time.Millisecond,
	}
}

// withDefaults fills zero fields from DefaultLimits and keeps the sending
// bounds inside what the frame size lets through.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxFrame <= 0 {
		l.MaxFrame = d.MaxFrame
	}
	if l.MaxBatchEntries <= 0 {
		l.MaxBatchEntries = d.MaxBatchEntries
	}
	if l.MaxBatchBytes <= 0 {
		l.MaxBatchBytes = d.MaxBatchBytes
	}
	if l.MaxFeedsV1 <= 0 {
		l.MaxFeedsV1 = d.MaxFeedsV1
	}
	if l.MaxHaveFeeds <= 0 {
		l.MaxHaveFeeds = d.MaxHaveFeeds
	}
	if l.MaxSessionFeeds <= 0 {
		l.MaxSessionFeeds = d.MaxSessionFeeds
	}
	if l.NewFeedsBurst <= 0 {
		l.NewFeedsBurst = d.NewFeedsBurst
	}
	if l.NewFeedsRate <= 0 {
		l.NewFeedsRate = d.NewFeedsRate
	}
	if l.StallTimeout <= 0 {
		l.StallTimeout = d.StallTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = d.IdleTimeout
	}
	if l.HandshakeTimeout <= 0 {
		l.HandshakeTimeout = d.HandshakeTimeout
	}
	if l.BanDuration <= 0 {
		l.BanDuration = d.BanDuration
	}
	if l.RelayDelay == 0 {
		l.RelayDelay, l.RelayJitter = d.RelayDelay, d.RelayJitter
	}
	l.RelayJitter = max(l.RelayJitter, 0)
	// A batch always carries at least one entry, so its byte bound is at
	// least one entry; a whole batch must fit in a frame.
	l.MaxBatchBytes = max(min(l.MaxBatchBytes, l.MaxFrame-entriesOverhead(l.MaxBatchEntries)), feed.MaxEntry)
	return l
}

// entriesOverhead bounds the CBOR bytes of an entries frame besides the
// entry encodings: type byte, map head, author, first seq, array head, and
// one byte-string head (at most 5 bytes for an entry) per entry.
func entriesOverhead(n int) int { return 1 + 1 + 1 + 2 + 32 + 1 + 9 + 1 + 5 + 5*n }
