package replicate

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// TestRefuseGolden: the refuse frame of protocol.md 4.11, byte for byte.
func TestRefuseGolden(t *testing.T) {
	author := bytes.Repeat([]byte{0xaa}, 32)
	b, err := encodeFrame(frameRefuse, refuseBody{Author: author, Len: 500, Reason: refuseThrottled, Retry: 1000})
	if err != nil {
		t.Fatal(err)
	}
	want := "07a4015820" + hex.EncodeToString(author) + "021901f403010419" + "03e8"
	if got := hex.EncodeToString(b); got != want || len(b) != 0x2f {
		t.Fatalf("refuse frame\n got %s (%d bytes)\nwant %s", got, len(b), want)
	}
	f, err := newCodec(DefaultLimits()).decode(b)
	if err != nil || f.refuse.Len != 500 || f.refuse.Retry != 1000 {
		t.Fatalf("decode: %+v %v", f.refuse, err)
	}
	if _, err := newCodecVersion(DefaultLimits(), 1).decode(b); err == nil {
		t.Fatal("a version 1 codec decoded a refuse frame")
	}
}

// TestHaveMoreOnlyInVersion2: a have with more=true is version 2 only, and
// a have without it encodes exactly as in version 1.
func TestHaveMoreOnlyInVersion2(t *testing.T) {
	h := []wireHead{{Author: make([]byte, 32), Len: 1, Hash: make([]byte, 32)}}
	plain, _ := encodeFrame(frameHave, haveBody{Feeds: h})
	more, _ := encodeFrame(frameHave, haveBody{Feeds: h, More: true})
	if !bytes.HasSuffix(more, []byte{0x02, 0xf5}) || plain[1] != 0xa1 || more[1] != 0xa2 {
		t.Fatalf("encodings: %x / %x", plain, more)
	}
	v1, v2 := newCodecVersion(DefaultLimits(), 1), newCodec(DefaultLimits())
	if _, err := v1.decode(plain); err != nil {
		t.Fatal(err)
	}
	if _, err := v1.decode(more); err == nil {
		t.Fatal("version 1 accepted more")
	}
	if f, err := v2.decode(more); err != nil || !f.have.More {
		t.Fatalf("version 2: %+v %v", f.have, err)
	}
}

// TestMeshHelloAndBusyGolden: the mesh hello and busy frames of protocol.md
// 4.11, byte for byte; a hello with mesh 0 is a version 1 hello, and version
// 1 refuses the mesh key and the busy frame.
func TestMeshHelloAndBusyGolden(t *testing.T) {
	d, nonce := bytes.Repeat([]byte{0xdd}, 32), bytes.Repeat([]byte{0x11}, 32)
	b, err := encodeFrame(frameHello, helloBody{Channel: d, Nonce: nonce, Mesh: 7})
	if err != nil {
		t.Fatal(err)
	}
	want := "01a3015820" + hex.EncodeToString(d) + "025820" + hex.EncodeToString(nonce) + "0307"
	if got := hex.EncodeToString(b); got != want || len(b) != 0x4a {
		t.Fatalf("mesh hello\n got %s (%d bytes)\nwant %s", got, len(b), want)
	}
	plain, _ := encodeFrame(frameHello, helloBody{Channel: d, Nonce: nonce})
	if plain[1] != 0xa2 || len(plain) != 0x48 {
		t.Fatalf("a hello with mesh 0 is not the version 1 hello: %x", plain)
	}
	v1, v2 := newCodecVersion(DefaultLimits(), 1), newCodec(DefaultLimits())
	if f, err := v2.decode(b); err != nil || f.hello.Mesh != 7 {
		t.Fatalf("version 2 mesh hello: %+v %v", f.hello, err)
	}
	if _, err := v1.decode(b); err == nil {
		t.Fatal("version 1 accepted the mesh key")
	}
	if _, err := v1.decode(plain); err != nil {
		t.Fatal(err)
	}

	busy, err := encodeFrame(frameBusy, busyBody{Retry: 60000})
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(busy); got != "08a10119ea60" {
		t.Fatalf("busy frame %s", got)
	}
	if f, err := v2.decode(busy); err != nil || f.busy.Retry != 60000 {
		t.Fatalf("decode busy: %+v %v", f.busy, err)
	}
	if _, err := v1.decode(busy); err == nil {
		t.Fatal("version 1 accepted a busy frame")
	}
}
