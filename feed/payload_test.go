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

// TestModPayload: moderation entries round-trip, carry exactly one target,
// and other kinds carry no moderation fields.
func TestModPayload(t *testing.T) {
	var a AuthorID
	a[0] = 0x11
	ok := []Payload{
		{Kind: KindMod, Action: ModHide, Ref: NewRef(a, 5), Reason: "off topic"},
		{Kind: KindMod, Action: ModUnhide, Target: a[:]},
		{Kind: KindMod, Action: ModBlock, Target: a[:], Reason: "spam"},
		{Kind: KindMod, Action: ModRemoveAdmin, Target: a[:]},
	}
	for _, p := range ok {
		b, err := p.Marshal()
		if err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		q, err := UnmarshalPayload(b)
		if err != nil || q.Action != p.Action || q.Reason != p.Reason || !bytes.Equal(q.Target, p.Target) || (q.Ref == nil) != (p.Ref == nil) {
			t.Fatalf("%+v -> %+v (%v)", p, q, err)
		}
	}
	bad := []Payload{
		{Kind: KindMod, Action: ModBlock, Ref: NewRef(a, 1)},              // block names an author
		{Kind: KindMod, Action: ModHide, Ref: NewRef(a, 1), Target: a[:]}, // two targets
		{Kind: KindMod, Action: ModHide},                                  // no target
		{Kind: KindMod, Action: 9, Target: a[:]},                          // unknown action
		{Kind: KindMod, Action: ModBlock, Target: a[:5]},                  // short id
		{Kind: KindMod, Action: ModBlock, Target: a[:], Text: "x"},        // text
		{Kind: KindMod, Action: ModBlock, Target: a[:], Reason: string(make([]byte, MaxModReason+1))},
		{Kind: KindText, Text: "hi", Action: ModBlock}, // mod field on text
		{Kind: KindText, Text: "hi", Reason: "why"},
	}
	for _, p := range bad {
		if _, err := p.Marshal(); !errors.Is(err, ErrBadPayload) {
			t.Fatalf("%+v: err %v, want ErrBadPayload", p, err)
		}
	}
	// Pinned bytes (protocol.md §3.1): block of author 11 00..00 with no reason.
	b, err := Payload{Kind: KindMod, Action: ModBlock, Target: a[:]}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := "a3010704030658201100000000000000000000000000000000000000000000000000000000000000"
	if hex.EncodeToString(b) != want {
		t.Fatalf("encoding %x, want %s", b, want)
	}
	for _, s := range []string{"hide", "unhide", "block", "unblock", "add-mod", "remove-mod", "add-admin", "remove-admin"} {
		act, err := ParseModAction(s)
		if err != nil || act.String() != s {
			t.Fatalf("%s: %v %v", s, act, err)
		}
	}
	if _, err := ParseModAction("ban"); err == nil {
		t.Fatal("ban is not an action")
	}
}

// TestParseLinkAdmins: admin= is parsed (repeatable) and printed back;
// keys without it parse as before.
func TestParseLinkAdmins(t *testing.T) {
	k, _ := NewChannelKey()
	var a, b AuthorID
	a[0], b[0] = 1, 2
	l := Link{Key: k, Name: "general", Admins: []AuthorID{a, b}}
	s := l.String()
	if s != k.String()+"?name=general&admin="+a.String()+"&admin="+b.String() {
		t.Fatalf("link %s", s)
	}
	got, err := ParseLink(s)
	if err != nil || got.Key != k || got.Name != "general" || len(got.Admins) != 2 || got.Admins[1] != b {
		t.Fatalf("%+v %v", got, err)
	}
	if kk, name, err := ParseChannelKey(s); err != nil || kk != k || name != "general" {
		t.Fatalf("ParseChannelKey: %v", err)
	}
	if got, err := ParseLink(k.String() + "?admin=" + a.String()); err != nil || got.Name != "" || len(got.Admins) != 1 {
		t.Fatalf("admin only: %+v %v", got, err)
	}
	if _, err := ParseLink(k.String() + "?admin=abcd"); !errors.Is(err, ErrBadKey) {
		t.Fatalf("short admin: %v", err)
	}
	if got, err := ParseLink(k.String()); err != nil || len(got.Admins) != 0 {
		t.Fatalf("plain key: %+v %v", got, err)
	}
	set := NewAdminSet([]AuthorID{a, b, a})
	if ids := set.IDs(); len(ids) != 2 || ids[0] != a || !set.Has(b) || set.Has(AuthorID{}) {
		t.Fatalf("admin set %q", set)
	}
}
