package feed

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kchat-p2p/kchat/seal"
)

// TestSealedPayload: kind 8 carries its sealed bytes under key 10 and
// nothing in the clear; other kinds carry no sealed bytes; the encoding is
// a2 01 08 0a <byte string>.
func TestSealedPayload(t *testing.T) {
	sealed := make([]byte, seal.Overhead+6)
	sealed[0] = seal.Version
	p := Payload{Kind: KindSealed, Sealed: sealed}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{0xa2, 0x01, 0x08, 0x0a, 0x58, byte(len(sealed))}, sealed...)
	if !bytes.Equal(b, want) {
		t.Fatalf("encoding % x, want % x", b[:8], want[:8])
	}
	q, err := UnmarshalPayload(b)
	if err != nil || q.Kind != KindSealed || !bytes.Equal(q.Sealed, sealed) {
		t.Fatalf("round trip: %+v %v", q, err)
	}
	if KindSealed.String() != "sealed" {
		t.Fatal(KindSealed.String())
	}
	for _, bad := range []Payload{
		{Kind: KindSealed},
		{Kind: KindSealed, Sealed: sealed[:seal.Overhead-1]},
		{Kind: KindSealed, Sealed: append([]byte{2}, sealed[1:]...)},
		{Kind: KindSealed, Sealed: sealed, Text: "in the clear"},
		{Kind: KindSealed, Sealed: sealed, Ref: NewRef(AuthorID{1}, 0)},
		{Kind: KindText, Text: "hi", Sealed: sealed},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrBadPayload) {
			t.Errorf("%+v accepted: %v", bad, err)
		}
	}
}

// TestIdentityBoxKey: the box key's public half is the one anyone derives
// from the author id.
func TestIdentityBoxKey(t *testing.T) {
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	a := id.ID()
	pub, err := seal.PublicFromEd25519(a[:])
	if err != nil || pub != id.BoxKey().Public() {
		t.Fatalf("box key mismatch: %v", err)
	}
}
