package feed

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func TestPayloadRoundTrip(t *testing.T) {
	var a AuthorID
	a[0], a[31] = 0xaa, 0x55
	for _, p := range []Payload{
		{Kind: KindText, Text: "hi"},
		{Kind: KindText, Text: "yes!", Ref: NewRef(a, 0)},
		{Kind: KindEmote, Text: "waves", Ref: NewRef(a, 7)},
		{Kind: KindEdit, Text: "fixed typo", Ref: NewRef(a, 3)},
		{Kind: KindDelete, Ref: NewRef(a, 3)},
		{Kind: KindTopic},
		{Kind: KindNick, Text: "ann"},
	} {
		b, err := p.Marshal()
		if err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		q, err := UnmarshalPayload(b)
		if err != nil {
			t.Fatal(err)
		}
		b2, err := q.Marshal()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("%+v: re-encoding differs: %x vs %x (%v)", p, b, b2, err)
		}
		if (p.Ref == nil) != (q.Ref == nil) || p.Ref != nil && (q.Ref.Seq != p.Ref.Seq || !bytes.Equal(q.Ref.Author, p.Ref.Author)) {
			t.Fatalf("ref lost: %+v -> %+v", p.Ref, q.Ref)
		}
	}
}

// TestPayloadEncodingExample pins the bytes of protocol.md's examples.
func TestPayloadEncodingExample(t *testing.T) {
	b, err := Payload{Kind: KindText, Text: "hi"}.Marshal()
	if err != nil || hex.EncodeToString(b) != "a2010102626869" {
		t.Fatalf("text: %x %v", b, err)
	}
	var a AuthorID
	for i := range a {
		a[i] = 0x11
	}
	b, err = Payload{Kind: KindDelete, Ref: NewRef(a, 5)}.Marshal()
	want := "a2" + "0106" + "03" + "a2" + "01" + "5820" + hex.EncodeToString(a[:]) + "0205"
	if err != nil || hex.EncodeToString(b) != want {
		t.Fatalf("delete: %x %v, want %s", b, err, want)
	}
}

func TestPayloadValidate(t *testing.T) {
	var a AuthorID
	for _, p := range []Payload{
		{Kind: KindEdit, Text: "x"},                      // no ref
		{Kind: KindEdit, Ref: NewRef(a, 1)},              // no text
		{Kind: KindDelete, Text: "x", Ref: NewRef(a, 1)}, // text on a delete
		{Kind: KindDelete},                               // no ref
		{Kind: KindNick, Text: "ann", Ref: NewRef(a, 1)},
		{Kind: KindTopic, Text: "t", Ref: NewRef(a, 1)},
		{Kind: KindText, Text: "x", Ref: &Ref{Author: []byte{1, 2}, Seq: 1}},
		{Kind: 9, Text: "x"},
	} {
		if _, err := p.Marshal(); !errors.Is(err, ErrBadPayload) {
			t.Errorf("%+v: %v, want ErrBadPayload", p, err)
		}
	}
}
