package feed

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// Hash is the SHA-256 of an entry's full encoding.
type Hash [32]byte

// String is the lowercase hex form.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Limits from the protocol.
const (
	MaxPayload = 16 << 10 // bytes of payload per entry
	MaxEntry   = 64 << 10 // bytes of encoded entry
	headerSize = 1 + 32 + 32 + 8 + 32 + 8 + 4
	sigSize    = ed25519.SignatureSize
	// EntryVersion is the first byte of every encoded entry.
	EntryVersion = 1
)

// signContext is prefixed to the signed bytes so an entry signature can never
// be mistaken for a signature over anything else.
var signContext = []byte("kchat/entry/v1")

// Errors of decoding and verification. Each is wrapped with details.
var (
	ErrMalformed    = errors.New("malformed entry")
	ErrTooLarge     = errors.New("entry too large")
	ErrBadSignature = errors.New("bad signature")
)

// Entry is one signed record of a feed: the seq-th entry of author's feed in
// channel. Prev chains it to the entry before, so the signature on the last
// entry of a run commits to the whole run.
type Entry struct {
	Author  AuthorID
	Channel DiscoveryID
	Seq     uint64
	Prev    Hash  // zero at seq 0
	Time    int64 // unix milliseconds, as the author claims
	Payload []byte
	Sig     [64]byte

	raw []byte // the canonical encoding, kept after Decode/Sign
}

// NewEntry builds and signs the entry following head (Len, Hash) of id's feed.
func NewEntry(id *Identity, ch DiscoveryID, head Head, timeMs int64, payload []byte) (Entry, error) {
	if len(payload) > MaxPayload {
		return Entry{}, fmt.Errorf("%w: payload is %d bytes, at most %d", ErrTooLarge, len(payload), MaxPayload)
	}
	e := Entry{Author: id.ID(), Channel: ch, Seq: head.Len, Prev: head.Hash, Time: timeMs, Payload: payload}
	buf := e.appendUnsigned(make([]byte, 0, headerSize+len(payload)+sigSize))
	copy(e.Sig[:], id.Sign(signedBytes(buf)))
	e.raw = append(buf, e.Sig[:]...)
	return e, nil
}

func signedBytes(unsigned []byte) []byte {
	m := make([]byte, 0, len(signContext)+len(unsigned))
	return append(append(m, signContext...), unsigned...)
}

func (e *Entry) appendUnsigned(b []byte) []byte {
	b = append(b, EntryVersion)
	b = append(b, e.Author[:]...)
	b = append(b, e.Channel[:]...)
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = append(b, e.Prev[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time))
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Payload)))
	return append(b, e.Payload...)
}

// Encode returns the canonical encoding. The returned slice must not be modified.
func (e *Entry) Encode() []byte {
	if e.raw == nil {
		b := e.appendUnsigned(make([]byte, 0, headerSize+len(e.Payload)+sigSize))
		e.raw = append(b, e.Sig[:]...)
	}
	return e.raw
}

// Hash is the SHA-256 of the full encoding (signature included).
func (e *Entry) Hash() Hash { return sha256.Sum256(e.Encode()) }

// VerifySignature checks the author's signature over the entry.
func (e *Entry) VerifySignature() error {
	raw := e.Encode()
	if !ed25519.Verify(ed25519.PublicKey(e.Author[:]), signedBytes(raw[:len(raw)-sigSize]), e.Sig[:]) {
		return fmt.Errorf("%w: entry %s/%d", ErrBadSignature, e.Author.Short(), e.Seq)
	}
	return nil
}

// DecodeEntry parses one canonical encoding. It checks structure and sizes,
// not the signature (see VerifySignature and Store.Apply). The entry keeps
// its own copy of b.
func DecodeEntry(b []byte) (Entry, error) {
	var e Entry
	if len(b) > MaxEntry {
		return e, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(b), MaxEntry)
	}
	if len(b) < headerSize+sigSize {
		return e, fmt.Errorf("%w: %d bytes, shorter than the %d-byte minimum", ErrMalformed, len(b), headerSize+sigSize)
	}
	if b[0] != EntryVersion {
		return e, fmt.Errorf("%w: unknown version %d", ErrMalformed, b[0])
	}
	n := binary.BigEndian.Uint32(b[headerSize-4 : headerSize])
	if n > MaxPayload {
		return e, fmt.Errorf("%w: payload is %d bytes, at most %d", ErrTooLarge, n, MaxPayload)
	}
	if len(b) != headerSize+int(n)+sigSize {
		return e, fmt.Errorf("%w: length %d does not match payload length %d", ErrMalformed, len(b), n)
	}
	raw := append([]byte(nil), b...)
	copy(e.Author[:], raw[1:33])
	copy(e.Channel[:], raw[33:65])
	e.Seq = binary.BigEndian.Uint64(raw[65:73])
	copy(e.Prev[:], raw[73:105])
	e.Time = int64(binary.BigEndian.Uint64(raw[105:113]))
	e.Payload = raw[headerSize : headerSize+int(n)]
	copy(e.Sig[:], raw[headerSize+int(n):])
	e.raw = raw
	if e.Seq == 0 && e.Prev != (Hash{}) {
		return e, fmt.Errorf("%w: seq 0 with a non-zero prev", ErrMalformed)
	}
	if err := checkPayloadWellFormed(e.Payload); err != nil {
		return e, err
	}
	return e, nil
}
