package feed_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kchat-p2p/kchat/feed"
)

func FuzzDecodeEntry(f *testing.F) {
	id, _ := feed.NewIdentity()
	k, _ := feed.NewChannelKey()
	for i, p := range []feed.Payload{{Kind: feed.KindText, Text: "hello"}, {Kind: feed.KindNick, Text: "ana"}, {Kind: feed.KindEmote, Text: "waves 👋"}} {
		raw, _ := p.Marshal()
		e, err := feed.NewEntry(id, k.DiscoveryID(), feed.Head{Len: uint64(i)}, 1700000000000, raw)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(e.Encode())
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := feed.DecodeEntry(b)
		if err != nil {
			if !errors.Is(err, feed.ErrMalformed) && !errors.Is(err, feed.ErrTooLarge) {
				t.Fatalf("decode error not classified: %v", err)
			}
			return
		}
		// What decodes re-encodes to the same bytes: the encoding is canonical.
		if !bytes.Equal(e.Encode(), b) {
			t.Fatal("decode/encode is not the identity")
		}
		fresh := feed.Entry{Author: e.Author, Channel: e.Channel, Seq: e.Seq, Prev: e.Prev, Time: e.Time, Payload: e.Payload, Sig: e.Sig}
		if !bytes.Equal(fresh.Encode(), b) {
			t.Fatal("fields do not determine the encoding")
		}
		_ = e.VerifySignature() // must not panic
		if p, err := feed.UnmarshalPayload(e.Payload); err == nil {
			_ = p.Kind.String()
		}
	})
}

func FuzzParseChannelKey(f *testing.F) {
	k, _ := feed.NewChannelKey()
	f.Add(k.String())
	f.Add(k.WithName("general"))
	f.Add("kchat://")
	f.Add("kchat://" + string(bytes.Repeat([]byte("g"), 64)))
	f.Add("http://example.com")
	f.Fuzz(func(t *testing.T, s string) {
		key, name, err := feed.ParseChannelKey(s)
		if err != nil {
			if !errors.Is(err, feed.ErrBadKey) {
				t.Fatalf("error not classified: %v", err)
			}
			return
		}
		// A parsed key prints to a form that parses to the same key and name.
		k2, n2, err := feed.ParseChannelKey(key.WithName(name))
		if err != nil || k2 != key || n2 != name {
			t.Fatalf("round trip of %q: %v %v %q", s, err, k2 == key, n2)
		}
	})
}

// FuzzParseLink: a parsed link prints to a form that parses to the same
// key, name and admins.
func FuzzParseLink(f *testing.F) {
	k, _ := feed.NewChannelKey()
	var a feed.AuthorID
	a[3] = 9
	f.Add(feed.Link{Key: k, Name: "general", Admins: []feed.AuthorID{a}}.String())
	f.Add(feed.Link{Key: k, Admins: []feed.AuthorID{a, {}}}.String())
	f.Add(k.String() + "?admin=zz")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := feed.ParseLink(s)
		if err != nil {
			if !errors.Is(err, feed.ErrBadKey) {
				t.Fatalf("error not classified: %v", err)
			}
			return
		}
		l2, err := feed.ParseLink(l.String())
		if err != nil || l2.Key != l.Key || l2.Name != l.Name || len(l2.Admins) != len(l.Admins) {
			t.Fatalf("round trip of %q: %v %+v %+v", s, err, l, l2)
		}
		for i := range l.Admins {
			if l.Admins[i] != l2.Admins[i] {
				t.Fatalf("admin %d changed", i)
			}
		}
	})
}

// FuzzUnmarshalPayload: payloads come from the network (inside signed
// entries anyone in a channel can write) and are decoded by the indexer.
// Decoding never panics; a payload that decodes and validates re-encodes to
// a payload that decodes to the same thing (refs included).
func FuzzUnmarshalPayload(f *testing.F) {
	var a feed.AuthorID
	a[0] = 7
	for _, p := range []feed.Payload{
		{Kind: feed.KindText, Text: "hello"},
		{Kind: feed.KindText, Text: "re", Ref: feed.NewRef(a, 3)},
		{Kind: feed.KindEdit, Text: "fixed", Ref: feed.NewRef(a, 0)},
		{Kind: feed.KindDelete, Ref: feed.NewRef(a, 1<<40)},
		{Kind: feed.KindTopic},
		{Kind: feed.KindMod, Action: feed.ModHide, Ref: feed.NewRef(a, 2), Reason: "spam"},
		{Kind: feed.KindMod, Action: feed.ModBlock, Target: a[:]},
		{Kind: feed.KindMod, Action: feed.ModAddAdmin, Target: a[:], Reason: "trusted"},
	} {
		raw, err := p.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte{0xa1, 0x03, 0xa0})
	f.Add([]byte{0xa2, 0x01, 0x01, 0x03, 0xa2, 0x01, 0x41, 0x00, 0x02, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := feed.UnmarshalPayload(b)
		if err != nil {
			if !errors.Is(err, feed.ErrBadPayload) {
				t.Fatalf("error not classified: %v", err)
			}
			return
		}
		_, _ = p.Ref.AuthorID() // must not panic, even on a nil or short ref
		_, _ = p.TargetID()
		_ = p.Action.String()
		raw, err := p.Marshal()
		if err != nil {
			return // decodes but is not something a writer may send
		}
		if p.Kind == feed.KindMod {
			// A valid moderation entry names exactly one target.
			_, isAuthor := p.TargetID()
			if isAuthor == (p.Ref != nil) || !p.Action.Known() || p.Text != "" {
				t.Fatalf("invalid moderation payload validated: %+v", p)
			}
		} else if p.Action != 0 || p.Target != nil || p.Reason != "" {
			t.Fatalf("a %s with moderation fields validated", p.Kind)
		}
		q, err := feed.UnmarshalPayload(raw)
		if err != nil {
			t.Fatalf("re-encoded payload does not decode: %v", err)
		}
		raw2, err := q.Marshal()
		if err != nil || !bytes.Equal(raw, raw2) {
			t.Fatalf("encoding is not stable: %x vs %x (%v)", raw, raw2, err)
		}
	})
}
