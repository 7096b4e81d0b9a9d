package replicate

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/kchat-p2p/kchat/feed"
)

// frameType is the first byte of every frame.
type frameType byte

const (
	frameHello   frameType = 1
	frameProof   frameType = 2
	frameHave    frameType = 3
	frameEntries frameType = 4
	framePing    frameType = 5
	frameFork    frameType = 6 // version 2
	frameRefuse  frameType = 7 // version 2
	frameBusy    frameType = 8 // version 2
)

func (t frameType) String() string {
	switch t {
	case frameHello:
		return "hello"
	case frameProof:
		return "proof"
	case frameHave:
		return "have"
	case frameEntries:
		return "entries"
	case framePing:
		return "ping"
	case frameFork:
		return "fork"
	case frameRefuse:
		return "refuse"
	case frameBusy:
		return "busy"
	}
	return fmt.Sprintf("frame type %d", byte(t))
}

// Frame bodies. Every body is a CBOR map with unsigned-integer keys,
// encoded deterministically; fixed-size fields are byte strings whose
// length the decoder checks.

type helloBody struct {
	Channel []byte `cbor:"1,keyasint"` // discovery id D, 32 bytes
	Nonce   []byte `cbor:"2,keyasint"` // 32 fresh random bytes
	// Mesh (version 2, initiator only): 0 (absent) for a session the user
	// asked for; 1 + the initiator's live sessions of D for one its mesh
	// opened, which a busy responder may decline (4.3a).
	Mesh uint64 `cbor:"3,keyasint,omitempty"`
}

// busyBody declines a mesh session (version 2): sent by a responder in
// place of its proof.
type busyBody struct {
	Retry uint64 `cbor:"1,keyasint"` // milliseconds before the initiator should ask again
}

type proofBody struct {
	MAC []byte `cbor:"1,keyasint"` // HMAC-SHA256, 32 bytes
}

type haveBody struct {
	Feeds []wireHead `cbor:"1,keyasint"`           // strictly ascending by author
	More  bool       `cbor:"2,keyasint,omitempty"` // version 2: more have frames of this listing follow
}

// wireHead is one feed's head: a CBOR array [author, len, hash, forked].
type wireHead struct {
	_      struct{} `cbor:",toarray"`
	Author []byte   // 32 bytes
	Len    uint64   // >= 1
	Hash   []byte   // 32 bytes: hash of entry Len-1
	Forked bool
}

type entriesBody struct {
	Author  []byte   `cbor:"1,keyasint"` // 32 bytes
	First   uint64   `cbor:"2,keyasint"` // seq of Entries[0]
	Entries [][]byte `cbor:"3,keyasint"` // canonical entry encodings, seq First, First+1, ...
}

type pingBody struct{}

// forkBody is fork evidence (version 2): two entries of one author at one
// seq, each with a valid signature of its own.
type forkBody struct {
	A []byte `cbor:"1,keyasint"`
	B []byte `cbor:"2,keyasint"`
}

// refuseBody says that the sender did not store entries of a feed
// (version 2).
type refuseBody struct {
	Author []byte `cbor:"1,keyasint"` // 32 bytes
	Len    uint64 `cbor:"2,keyasint"` // entries of the feed the sender holds
	Reason uint64 `cbor:"3,keyasint"` // refuseThrottled, refuseBlocked, ...
	Retry  uint64 `cbor:"4,keyasint"` // milliseconds until the sender takes more; 0: not in this session
}

// Refusal reasons.
const (
	refuseThrottled uint64 = 1 // the author is over the receiver's storage budget
	refuseBlocked   uint64 = 2 // the receiver's user blocked the author
)

// frame is one decoded frame: its type and the matching body.
type frame struct {
	typ     frameType
	hello   *helloBody
	proof   *proofBody
	have    *haveBody
	entries *entriesBody
	fork    *forkBody
	refuse  *refuseBody
	busy    *busyBody
}

// errFrame wraps every decoding failure: the peer sent something invalid.
var errFrame = errors.New("invalid frame")

var frameEnc cbor.EncMode

func init() {
	opts := cbor.CoreDetEncOptions()
	opts.NilContainers = cbor.NilContainerAsEmpty
	var err error
	if frameEnc, err = opts.EncMode(); err != nil {
		panic(err)
	}
}

// codec decodes frames of one protocol version within a set of limits.
type codec struct {
	lim     Limits
	version int
	dec     cbor.DecMode
}

// newCodec is a codec of the newest version.
func newCodec(lim Limits) *codec { return newCodecVersion(lim, 2) }

func newCodecVersion(lim Limits, version int) *codec {
	dec, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		UTF8:              cbor.UTF8RejectInvalid,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxNestedLevels:   4,
		MaxMapPairs:       16,
		MaxArrayElements:  max(16, lim.MaxBatchEntries, lim.MaxHaveFeeds, lim.MaxFeedsV1),
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return &codec{lim: lim, version: version, dec: dec}
}

// encodeFrame returns the type byte followed by body in deterministic CBOR.
func encodeFrame(t frameType, body any) ([]byte, error) {
	size := 128
	var raws [][]byte
	switch e := body.(type) {
	case entriesBody:
		raws = e.Entries
	case *entriesBody:
		raws = e.Entries
	}
	if raws != nil {
		size = entriesOverhead(len(raws))
		for _, raw := range raws {
			size += len(raw)
		}
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	buf.WriteByte(byte(t))
	if err := frameEnc.NewEncoder(buf).Encode(body); err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return buf.Bytes(), nil
}

// decode parses one frame and checks everything that can be checked without
// session state: type, strict and canonical CBOR, field sizes, counts,
// ordering inside a have. Every error wraps errFrame.
func (c *codec) decode(b []byte) (frame, error) {
	if len(b) == 0 {
		return frame{}, fmt.Errorf("%w: empty frame", errFrame)
	}
	if len(b) > c.lim.MaxFrame {
		return frame{}, fmt.Errorf("%w: %d bytes, at most %d", errFrame, len(b), c.lim.MaxFrame)
	}
	f := frame{typ: frameType(b[0])}
	var body any
	switch f.typ {
	case frameHello:
		f.hello = new(helloBody)
		body = f.hello
	case frameProof:
		f.proof = new(proofBody)
		body = f.proof
	case frameHave:
		f.have = new(haveBody)
		body = f.have
	case frameEntries:
		f.entries = new(entriesBody)
		body = f.entries
	case framePing:
		body = new(pingBody)
	case frameFork:
		if c.version < 2 {
			return frame{}, fmt.Errorf("%w: unknown type %d", errFrame, b[0])
		}
		f.fork = new(forkBody)
		body = f.fork
	case frameRefuse:
		if c.version < 2 {
			return frame{}, fmt.Errorf("%w: unknown type %d", errFrame, b[0])
		}
		f.refuse = new(refuseBody)
		body = f.refuse
	case frameBusy:
		if c.version < 2 {
			return frame{}, fmt.Errorf("%w: unknown type %d", errFrame, b[0])
		}
		f.busy = new(busyBody)
		body = f.busy
	default:
		return frame{}, fmt.Errorf("%w: unknown type %d", errFrame, b[0])
	}
	raw := b[1:]
	if err := c.dec.Unmarshal(raw, body); err != nil {
		return frame{}, fmt.Errorf("%w: %s: %w", errFrame, f.typ, err)
	}
	// The deterministic encoding is unique: anything that does not encode
	// back to the same bytes (a missing field, a non-shortest integer, a
	// null for an array) is refused, so no two encodings mean one frame.
	again, err := encodeFrame(f.typ, body)
	if err != nil || !bytes.Equal(again[1:], raw) {
		return frame{}, fmt.Errorf("%w: %s is not in deterministic CBOR", errFrame, f.typ)
	}
	if err := c.check(f); err != nil {
		return frame{}, fmt.Errorf("%w: %s: %w", errFrame, f.typ, err)
	}
	return f, nil
}

func (c *codec) check(f frame) error {
	switch f.typ {
	case frameHello:
		if len(f.hello.Channel) != 32 || len(f.hello.Nonce) != 32 {
			return errors.New("channel and nonce must be 32 bytes")
		}
		if c.version < 2 && f.hello.Mesh != 0 {
			return errors.New("unknown map key 3")
		}
	case frameProof:
		if len(f.proof.MAC) != 32 {
			return errors.New("mac must be 32 bytes")
		}
	case frameHave:
		if c.version < 2 && f.have.More {
			return errors.New("unknown map key 2")
		}
		if limit := c.maxHave(); len(f.have.Feeds) > limit {
			return fmt.Errorf("%d feeds, at most %d", len(f.have.Feeds), limit)
		}
		for i, h := range f.have.Feeds {
			if len(h.Author) != 32 || len(h.Hash) != 32 {
				return fmt.Errorf("feed %d: author and hash must be 32 bytes", i)
			}
			if h.Len == 0 {
				return fmt.Errorf("feed %d: empty feeds are not listed", i)
			}
			if i > 0 && bytes.Compare(f.have.Feeds[i-1].Author, h.Author) >= 0 {
				return fmt.Errorf("feed %d: authors not in strictly ascending order", i)
			}
		}
	case frameEntries:
		e := f.entries
		if len(e.Author) != 32 {
			return errors.New("author must be 32 bytes")
		}
		if len(e.Entries) == 0 || len(e.Entries) > c.lim.MaxBatchEntries {
			return fmt.Errorf("%d entries, want 1 to %d", len(e.Entries), c.lim.MaxBatchEntries)
		}
		if e.First+uint64(len(e.Entries)) < e.First {
			return errors.New("seq overflows")
		}
		for i, raw := range e.Entries {
			if len(raw) > feed.MaxEntry {
				return fmt.Errorf("entry %d is %d bytes, at most %d", i, len(raw), feed.MaxEntry)
			}
		}
	case frameFork:
		if len(f.fork.A) > feed.MaxEntry || len(f.fork.B) > feed.MaxEntry {
			return fmt.Errorf("an entry is over %d bytes", feed.MaxEntry)
		}
	case frameRefuse:
		if len(f.refuse.Author) != 32 {
			return errors.New("author must be 32 bytes")
		}
	}
	return nil
}

// maxHave is how many heads one have frame may list.
func (c *codec) maxHave() int {
	if c.version < 2 {
		return c.lim.MaxFeedsV1
	}
	return c.lim.MaxHaveFeeds
}

func toHead(w wireHead) feed.Head {
	h := feed.Head{Len: w.Len, Forked: w.Forked}
	copy(h.Author[:], w.Author)
	copy(h.Hash[:], w.Hash)
	return h
}

func fromHead(h feed.Head) wireHead {
	return wireHead{Author: h.Author[:], Len: h.Len, Hash: h.Hash[:], Forked: h.Forked}
}
