package replicate

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kchat-p2p/kchat/feed"
)

// sampleFrames are valid frames of every type.
func sampleFrames(t testing.TB) map[string][]byte {
	t.Helper()
	c := newChannel(t, "general")
	ch := c.ID()
	x := newIdentity(t)
	es := makeEntries(t, x, ch, feed.Head{}, 3, "x")
	enc := func(typ frameType, body any) []byte {
		b, err := encodeFrame(typ, body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	nonce := bytes.Repeat([]byte{7}, 32)
	h1 := feed.Head{Author: x.ID(), Len: 3, Hash: es[2].Hash()}
	h2 := feed.Head{Author: feed.AuthorID{0xff}, Len: 1 << 40, Forked: true}
	return map[string][]byte{
		"hello":        enc(frameHello, helloBody{Channel: ch[:], Nonce: nonce}),
		"proof":        enc(frameProof, proofBody{MAC: proofMAC(c.Key, roleInitiator, "a", "b", nonce, nonce)}),
		"have-empty":   enc(frameHave, haveBody{}),
		"have":         enc(frameHave, haveBody{Feeds: []wireHead{fromHead(h1), fromHead(h2)}}),
		"entries":      enc(frameEntries, entriesBody{Author: ab(x.ID()), First: 0, Entries: entryBytes(es)}),
		"entries-tail": enc(frameEntries, entriesBody{Author: ab(x.ID()), First: 2, Entries: entryBytes(es[2:])}),
		"ping":         enc(framePing, pingBody{}),
		"have-more":    enc(frameHave, haveBody{Feeds: []wireHead{fromHead(h1)}, More: true}),
		"fork":         enc(frameFork, forkBody{A: es[0].Encode(), B: es[1].Encode()}),
		"refuse":       enc(frameRefuse, refuseBody{Author: ab(x.ID()), Len: 3, Reason: refuseThrottled, Retry: 1500}),
		"hello-mesh":   enc(frameHello, helloBody{Channel: ch[:], Nonce: nonce, Mesh: 3}),
		"busy":         enc(frameBusy, busyBody{Retry: 60000}),
	}
}

func TestFrameRoundTrip(t *testing.T) {
	c := newCodec(DefaultLimits())
	for name, b := range sampleFrames(t) {
		f, err := c.decode(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if again := reencode(t, f); !bytes.Equal(again, b) {
			t.Fatalf("%s: re-encoded\n% x\nwant\n% x", name, again, b)
		}
	}
}

// TestFrameBytes pins the encoding byte for byte, as docs/protocol.md section 4 shows it.
func TestFrameBytes(t *testing.T) {
	d := bytes.Repeat([]byte{0xdd}, 32)
	n := bytes.Repeat([]byte{0x11}, 32)
	cases := []struct {
		typ  frameType
		body any
		want string
	}{
		{frameHello, helloBody{Channel: d, Nonce: n}, "01 a2 01 5820" + strings.Repeat("dd", 32) + " 02 5820" + strings.Repeat("11", 32)},
		{frameProof, proofBody{MAC: n}, "02 a1 01 5820" + strings.Repeat("11", 32)},
		{frameHave, haveBody{}, "03 a1 01 80"},
		{frameHave, haveBody{Feeds: []wireHead{{Author: d, Len: 500, Hash: n}}}, "03 a1 01 81 84 5820" + strings.Repeat("dd", 32) + " 1901f4 5820" + strings.Repeat("11", 32) + " f4"},
		{frameEntries, entriesBody{Author: d, First: 24, Entries: [][]byte{{0xab}}}, "04 a3 01 5820" + strings.Repeat("dd", 32) + " 02 1818 03 81 41ab"},
		{framePing, pingBody{}, "05 a0"},
	}
	for _, tc := range cases {
		b, err := encodeFrame(tc.typ, tc.body)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := hex.DecodeString(strings.ReplaceAll(tc.want, " ", ""))
		if !bytes.Equal(b, want) {
			t.Errorf("%s:\n got % x\nwant % x", tc.typ, b, want)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	c := newCodec(DefaultLimits())
	frames := sampleFrames(t)
	zero32 := make([]byte, 32)
	mk := func(typ frameType, body any) []byte { b, _ := encodeFrame(typ, body); return b }
	bad := map[string][]byte{
		"empty":              nil,
		"unknown type":       {0x09, 0xa0},
		"type only":          {byte(framePing)},
		"trailing bytes":     append(append([]byte{}, frames["ping"]...), 0x00),
		"indefinite array":   {byte(frameHave), 0xa1, 0x01, 0x9f, 0xff},
		"tag":                {byte(framePing), 0xc0, 0xa0},
		"null for an array":  {byte(frameHave), 0xa1, 0x01, 0xf6},
		"duplicate key":      {byte(framePing), 0xa2, 0x01, 0x01, 0x01, 0x01},
		"short channel":      mk(frameHello, helloBody{Channel: zero32[:31], Nonce: zero32}),
		"long nonce":         mk(frameHello, helloBody{Channel: zero32, Nonce: append(zero32, 0)}),
		"missing field":      {byte(frameProof), 0xa0},
		"short mac":          mk(frameProof, proofBody{MAC: zero32[:16]}),
		"empty feed":         mk(frameHave, haveBody{Feeds: []wireHead{{Author: zero32, Len: 0, Hash: zero32}}}),
		"duplicate feed":     mk(frameHave, haveBody{Feeds: []wireHead{{Author: zero32, Len: 1, Hash: zero32}, {Author: zero32, Len: 2, Hash: zero32}}}),
		"no entries":         mk(frameEntries, entriesBody{Author: zero32}),
		"short author":       mk(frameEntries, entriesBody{Author: zero32[:4], Entries: [][]byte{{1}}}),
		"seq overflow":       mk(frameEntries, entriesBody{Author: zero32, First: ^uint64(0), Entries: [][]byte{{1}, {2}}}),
		"entry too large":    mk(frameEntries, entriesBody{Author: zero32, Entries: [][]byte{make([]byte, feed.MaxEntry+1)}}),
		"text for bytes":     {byte(frameProof), 0xa1, 0x01, 0x61, 0x41},
		"array for map":      {byte(framePing), 0x80},
		"non-shortest int":   {byte(frameEntries), 0xa3, 0x01, 0x58, 0x20},
		"map keys unordered": {byte(frameHello), 0xa2, 0x02, 0x40, 0x01, 0x40},
	}
	many := haveBody{}
	for i := range ProtoMaxHaveFeeds + 1 {
		a := make([]byte, 32)
		a[0], a[1] = byte(i>>8), byte(i)
		many.Feeds = append(many.Feeds, wireHead{Author: a, Len: 1, Hash: zero32})
	}
	bad["too many feeds"] = mk(frameHave, many)
	for name, b := range bad {
		if f, err := c.decode(b); err == nil {
			t.Errorf("%s: decoded as %s", name, f.typ)
		}
	}
}

func reencode(t testing.TB, f frame) []byte {
	var body any
	switch f.typ {
	case frameHello:
		body = f.hello
	case frameProof:
		body = f.proof
	case frameHave:
		body = f.have
	case frameEntries:
		body = f.entries
	case framePing:
		body = pingBody{}
	case frameFork:
		body = f.fork
	case frameRefuse:
		body = f.refuse
	case frameBusy:
		body = f.busy
	}
	b, err := encodeFrame(f.typ, body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzDecodeFrame: the decoder never panics, and whatever it accepts is the
// one deterministic encoding of what it decoded, within the limits.
func FuzzDecodeFrame(f *testing.F) {
	for _, b := range sampleFrames(f) {
		f.Add(b)
	}
	lim := DefaultLimits()
	c := newCodec(lim)
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := c.decode(b)
		if err != nil {
			return
		}
		if again := reencode(t, fr); !bytes.Equal(again, b) {
			t.Fatalf("accepted a non-canonical frame:\n% x\nre-encodes as\n% x", b, again)
		}
		if fr.entries != nil {
			for _, raw := range fr.entries.Entries {
				feed.DecodeEntry(raw) // must not panic either
			}
		}
		if fr.fork != nil {
			feed.DecodeEntry(fr.fork.A)
			feed.DecodeEntry(fr.fork.B)
		}
	})
}

// TestWriteFuzzSeeds writes the sample frames as the committed seed corpus
// (testdata/fuzz/FuzzDecodeFrame) when KCHAT_WRITE_SEEDS is set.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("KCHAT_WRITE_SEEDS") == "" {
		t.Skip("set KCHAT_WRITE_SEEDS=1 to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeFrame")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seeds := sampleFrames(t)
	seeds["garbage"] = []byte{0x04, 0xff, 0x00, 0x13}
	seeds["have-indefinite"] = []byte{byte(frameHave), 0xa1, 0x01, 0x9f, 0xff}
	for name, b := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
