// Package seal seals and opens kchat's private-message payloads (kind 8,
// "sealed"; docs/protocol.md section 3): a message readable only by its
// recipient and its sender, carried in the sender's feed of a channel both
// share, relayed by every peer of the channel without their learning what
// it says or to whom.
//
// Keys are X25519 keys derived from the Ed25519 identities: the private
// scalar is the clamped first half of SHA-512(seed), as Ed25519 itself uses
// it, and the public key is the Montgomery form of the Ed25519 public key
// (u = (1+y)/(1-y)). So anyone's box key follows from their author id, and
// no key has to be announced.
//
// A sealed payload (Version 1) is
//
//	version 1 | E 32 | N 24 | slot 0 48 | slot 1 48 | body (16 + len(inner))
//
// E is a fresh ephemeral X25519 public key per message; each slot is the
// 32-byte content key CK boxed (crypto_box: X25519, HSalsa20,
// XSalsa20-Poly1305) from the ephemeral key to one reader (the recipient
// and the sender, in random order), with nonce N whose last byte is XORed
// with 1 + the slot number; the body is secretbox(inner, N, BK) with
// BK = SHA-256("kchat/sealed/v1 body" | CK | the 153 bytes before the body),
// and inner is from 32 | to 32 | text (UTF-8).
package seal

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"filippo.io/edwards25519"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
	"golang.org/x/crypto/nacl/secretbox"
	//lint:ignore SA1019 HSalsa20 is crypto_box's key derivation (nacl/box calls it the same way); using it directly after crypto/ecdh saves box.Precompute's second scalar multiplication per trial open
	"golang.org/x/crypto/salsa20/salsa"
)

// Version is the first byte of a sealed payload.
const Version = 1

// Sizes of a sealed payload's parts.
const (
	KeySize   = 32
	NonceSize = 24
	SlotSize  = KeySize + box.Overhead // a boxed content key: 48
	Slots     = 2
	headSize  = 1 + KeySize + NonceSize + Slots*SlotSize // 153
	innerHead = 2 * KeySize                              // from, to
	// Overhead is the size of a sealed payload beyond its text.
	Overhead = headSize + secretbox.Overhead + innerHead // 233
)

// Errors.
var (
	// ErrMalformed: the bytes are not a sealed payload of a known version.
	ErrMalformed = errors.New("malformed sealed payload")
	// ErrNotForMe: no slot opens with this reader's key. Peers see this for
	// every private message between others: it is not an error to report.
	ErrNotForMe = errors.New("sealed payload is not for this key")
	// ErrTampered: a slot opened (the message is for this reader) but the
	// body does not, or what it says does not match who wrote it or to whom.
	ErrTampered = errors.New("sealed payload does not open: tampered or forged")
	// ErrBadKey: a public key that is not a usable curve point.
	ErrBadKey = errors.New("unusable public key")
)

// PrivateKey is an X25519 private key (a clamped scalar).
type PrivateKey [KeySize]byte

// PublicKey is an X25519 public key (a Montgomery u-coordinate).
type PublicKey [KeySize]byte

// PrivateFromEd25519 derives the X25519 private key of an Ed25519 private
// key: the clamped first 32 bytes of SHA-512(seed), the scalar Ed25519
// signs with.
func PrivateFromEd25519(priv ed25519.PrivateKey) PrivateKey {
	return PrivateFromSeed(priv.Seed())
}

// PrivateFromSeed is PrivateFromEd25519 for a 32-byte Ed25519 seed.
func PrivateFromSeed(seed []byte) PrivateKey {
	h := sha512.Sum512(seed)
	var k PrivateKey
	copy(k[:], h[:KeySize])
	k[0] &= 248
	k[31] &= 127
	k[31] |= 64
	return k
}

// Public is the X25519 public key of k.
func (k PrivateKey) Public() PublicKey {
	var p PublicKey
	u, err := curve25519.X25519(k[:], curve25519.Basepoint)
	if err != nil {
		panic(err) // a clamped scalar times the base point is never zero
	}
	copy(p[:], u)
	return p
}

// PublicFromEd25519 converts an Ed25519 public key (an author id) to its
// X25519 public key: the Montgomery u = (1+y)/(1-y) of the Edwards point.
// Keys that are not valid points, or of small order, are refused.
func PublicFromEd25519(pub []byte) (PublicKey, error) {
	var p PublicKey
	pt, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return p, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	if new(edwards25519.Point).MultByCofactor(pt).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return p, fmt.Errorf("%w: small order point", ErrBadKey)
	}
	copy(p[:], pt.BytesMontgomery())
	return p, nil
}

// Message is what a sealed payload says.
type Message struct {
	From, To [32]byte // author ids: the feed's author and the recipient
	Text     string
}

// Seal seals m so that only the holders of toKey and fromKey (the
// recipient's and the sender's X25519 public keys) can open it. rnd is the
// randomness (crypto/rand.Reader if nil).
func Seal(rnd io.Reader, m Message, toKey, fromKey PublicKey) ([]byte, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	if !utf8.ValidString(m.Text) {
		return nil, fmt.Errorf("%w: text is not valid UTF-8", ErrMalformed)
	}
	// Random bytes, in this order: ephemeral private key 32, nonce 24,
	// content key 32, slot order 1.
	var r [KeySize + NonceSize + KeySize + 1]byte
	if _, err := io.ReadFull(rnd, r[:]); err != nil {
		return nil, fmt.Errorf("seal: randomness: %w", err)
	}
	var ePriv, ck [KeySize]byte
	var nonce [NonceSize]byte
	copy(ePriv[:], r[:32])
	copy(nonce[:], r[32:56])
	copy(ck[:], r[56:88])
	// crypto/ecdh: NewPrivateKey computes E once; each ECDH is then one
	// scalar multiplication (curve25519.X25519 would redo E every time).
	eKey, err := ecdh.X25519().NewPrivateKey(ePriv[:])
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	ePub := eKey.PublicKey().Bytes()
	readers := [Slots]PublicKey{toKey, fromKey}
	if r[88]&1 == 1 {
		readers[0], readers[1] = readers[1], readers[0]
	}
	out := make([]byte, 0, Overhead+len(m.Text))
	out = append(out, Version)
	out = append(out, ePub...)
	out = append(out, nonce[:]...)
	for i, pub := range readers {
		rk, err := ecdh.X25519().NewPublicKey(pub[:])
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
		}
		shared, err := eKey.ECDH(rk)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
		}
		k := boxKey(shared)
		sn := slotNonce(nonce, i)
		out = secretbox.Seal(out, ck[:], &sn, &k)
	}
	inner := make([]byte, 0, innerHead+len(m.Text))
	inner = append(append(append(inner, m.From[:]...), m.To[:]...), m.Text...)
	bk := bodyKey(ck, out)
	return secretbox.Seal(out, inner, &nonce, &bk), nil
}

// bodyKey is the key of the body: SHA-256(bodyKeyLabel | CK | head), head
// being the 153 bytes before the body. Any change to the head (another
// reader's slot included) changes it, so every reader who can open the
// message also sees that nothing of it was changed.
func bodyKey(ck [KeySize]byte, head []byte) [KeySize]byte {
	h := sha256.New()
	h.Write([]byte(bodyKeyLabel))
	h.Write(ck[:])
	h.Write(head)
	var k [KeySize]byte
	h.Sum(k[:0])
	return k
}

// bodyKeyLabel separates the body key from any other use of SHA-256.
const bodyKeyLabel = "kchat/sealed/v1 body"

// boxKey is crypto_box's shared key of an X25519 shared secret:
// HSalsa20(secret, 16 zero bytes), what box.Precompute computes.
func boxKey(shared []byte) [KeySize]byte {
	var k, s [KeySize]byte
	copy(s[:], shared)
	var zero [16]byte
	salsa.HSalsa20(&k, &zero, &s, &salsa.Sigma)
	return k
}

// slotNonce is the nonce of slot i: N with its last byte XORed with i+1.
func slotNonce(n [NonceSize]byte, i int) [NonceSize]byte {
	n[NonceSize-1] ^= byte(i + 1)
	return n
}

// Parsed is a sealed payload split into its parts (no key needed).
type Parsed struct {
	Ephemeral PublicKey
	Nonce     [NonceSize]byte
	Slots     [Slots][]byte
	Body      []byte
}

// Parse checks a sealed payload's layout and splits it. It never opens
// anything.
func Parse(b []byte) (Parsed, error) {
	var p Parsed
	if len(b) < 1 {
		return p, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if b[0] != Version {
		return p, fmt.Errorf("%w: version %d, want %d", ErrMalformed, b[0], Version)
	}
	if len(b) < Overhead {
		return p, fmt.Errorf("%w: %d bytes, at least %d", ErrMalformed, len(b), Overhead)
	}
	copy(p.Ephemeral[:], b[1:33])
	copy(p.Nonce[:], b[33:57])
	for i := range p.Slots {
		p.Slots[i] = b[57+i*SlotSize : 57+(i+1)*SlotSize]
	}
	p.Body = b[headSize:]
	return p, nil
}

// Opener opens sealed payloads with one reader's private key. It is safe
// for concurrent use.
type Opener struct {
	key *ecdh.PrivateKey
}

// NewOpener returns an opener for the reader with private key priv.
func NewOpener(priv PrivateKey) *Opener {
	k, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil {
		panic(err) // only for a key of the wrong size, which the type excludes
	}
	return &Opener{key: k}
}

// Open opens sealed payload b written by author (the entry's author id) as
// the reader self (the reader's author id). It returns ErrNotForMe when no
// slot opens (someone else's message: the common case), ErrMalformed when b
// is not a sealed payload, and ErrTampered when a slot opens but the body
// does not, or says it is from someone other than author, or is to someone
// other than self when author is not self. Trial decryption costs one X25519
// scalar multiplication and two 32-byte secretbox opens.
func (o *Opener) Open(b []byte, author, self [32]byte) (Message, error) {
	var m Message
	p, err := Parse(b)
	if err != nil {
		return m, err
	}
	e, err := ecdh.X25519().NewPublicKey(p.Ephemeral[:])
	if err != nil {
		return m, ErrNotForMe
	}
	shared, err := o.key.ECDH(e)
	if err != nil {
		// A small-order ephemeral key: nobody's slot opens honestly.
		return m, ErrNotForMe
	}
	k := boxKey(shared)
	var ck []byte
	for i, slot := range p.Slots {
		sn := slotNonce(p.Nonce, i)
		if c, ok := secretbox.Open(nil, slot, &sn, &k); ok {
			ck = c
			break
		}
	}
	if ck == nil {
		return m, ErrNotForMe
	}
	var ckey [KeySize]byte
	copy(ckey[:], ck)
	bk := bodyKey(ckey, b[:headSize])
	inner, ok := secretbox.Open(nil, p.Body, &p.Nonce, &bk)
	if !ok || len(inner) < innerHead {
		return m, ErrTampered
	}
	copy(m.From[:], inner[:32])
	copy(m.To[:], inner[32:64])
	text := inner[64:]
	if !utf8.Valid(text) {
		return m, fmt.Errorf("%w: text is not UTF-8", ErrTampered)
	}
	m.Text = string(text)
	// The sender is the feed's author: sealed bytes copied into another
	// feed (a replay under someone else's name) do not open as theirs.
	if subtle.ConstantTimeCompare(m.From[:], author[:]) != 1 {
		return Message{}, fmt.Errorf("%w: sealed by %x, carried in the feed of %x", ErrTampered, m.From[:4], author[:4])
	}
	if m.From != self && m.To != self {
		return Message{}, fmt.Errorf("%w: addressed to someone else", ErrTampered)
	}
	return m, nil
}
