package reliability_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/kchat-p2p/kchat/internal/testutil"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/replicate"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio"
)

// A hostile peer speaks /kchat/sync/1 by hand, from the specification
// (docs/protocol.md §4), with its own encoder: go-msgio varint
// framing, a type byte, a deterministic CBOR body. The replicate package
// exports no frame encoder, and a second implementation written from the
// text is also a check of the text.

const (
	tHello   byte = 1
	tProof   byte = 2
	tHave    byte = 3
	tEntries byte = 4
	tPing    byte = 5
)

type wHello struct {
	Channel []byte `cbor:"1,keyasint"`
	Nonce   []byte `cbor:"2,keyasint"`
}

type wProof struct {
	MAC []byte `cbor:"1,keyasint"`
}

type wHave struct {
	Feeds []wHead `cbor:"1,keyasint"`
}

type wHead struct {
	_      struct{} `cbor:",toarray"`
	Author []byte
	Len    uint64
	Hash   []byte
	Forked bool
}

type wEntries struct {
	Author  []byte   `cbor:"1,keyasint"`
	First   uint64   `cbor:"2,keyasint"`
	Entries [][]byte `cbor:"3,keyasint"`
}

var wireEnc = func() cbor.EncMode {
	o := cbor.CoreDetEncOptions()
	o.NilContainers = cbor.NilContainerAsEmpty
	em, err := o.EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()

// frameBytes is the type byte and the CBOR body of a frame.
func frameBytes(typ byte, body any) []byte {
	b, err := wireEnc.Marshal(body)
	if err != nil {
		panic(err)
	}
	return append([]byte{typ}, b...)
}

// proofMAC is the key proof of section 4.3.
func proofMAC(k feed.ChannelKey, role byte, initiator, responder peer.ID, nonceI, nonceR []byte) []byte {
	m := hmac.New(sha256.New, k[:])
	m.Write([]byte("kchat/sync/v1 proof"))
	m.Write([]byte{role})
	m.Write([]byte(initiator))
	m.Write([]byte(responder))
	m.Write(nonceI)
	m.Write(nonceR)
	return m.Sum(nil)
}

// wframe is a received frame.
type wframe struct {
	typ  byte
	body []byte
}

func (f wframe) decode(v any) error { return cbor.Unmarshal(f.body, v) }

// wconn is one end of a sync stream driven by hand.
type wconn struct {
	s  network.Stream
	rd msgio.ReadCloser
	wr msgio.WriteCloser
}

func newWconn(s network.Stream) *wconn {
	return &wconn{s: s, rd: msgio.NewVarintReaderSize(s, replicate.ProtoMaxFrame), wr: msgio.NewVarintWriter(s)}
}

func (c *wconn) send(typ byte, body any) error { return c.wr.WriteMsg(frameBytes(typ, body)) }

// recv reads one frame, waiting at most d.
func (c *wconn) recv(d time.Duration) (wframe, error) {
	c.s.SetReadDeadline(time.Now().Add(d))
	b, err := c.rd.ReadMsg()
	if err != nil {
		return wframe{}, err
	}
	if len(b) == 0 {
		return wframe{}, errors.New("empty frame")
	}
	f := wframe{typ: b[0], body: append([]byte(nil), b[1:]...)}
	c.rd.ReleaseMsg(b)
	return f, nil
}

// expect reads one frame and requires its type.
func (c *wconn) expect(t testing.TB, typ byte, d time.Duration) wframe {
	t.Helper()
	f, err := c.recv(d)
	if err != nil {
		t.Fatalf("want frame type %d: %v", typ, err)
	}
	if f.typ != typ {
		t.Fatalf("got frame type %d, want %d", f.typ, typ)
	}
	return f
}

// isTimeout reports whether err is a read deadline passing.
func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// untilEnd reads until the stream fails, collecting the frame types seen;
// it fails if the stream is still open after d.
func (c *wconn) untilEnd(d time.Duration) ([]byte, error) {
	deadline := time.Now().Add(d)
	var types []byte
	for {
		f, err := c.recv(time.Until(deadline))
		if err != nil {
			if isTimeout(err) {
				return types, fmt.Errorf("the honest peer did not end the stream within %v (frames: %v)", d, types)
			}
			return types, nil
		}
		types = append(types, f.typ)
	}
}

// expectEnd is untilEnd for the test goroutine.
func (c *wconn) expectEnd(t testing.TB, d time.Duration) []byte {
	t.Helper()
	types, err := c.untilEnd(d)
	if err != nil {
		t.Fatal(err)
	}
	return types
}

func ab(a feed.AuthorID) []byte { return a[:] }

// newRawHost is a loopback-only libp2p host (testutil.LoopbackHost).
func newRawHost(t testing.TB) host.Host { return testutil.LoopbackHost(t) }

// dialStream connects h to the node at addr and opens a sync stream.
func dialStream(h host.Host, addr string) (*wconn, peer.ID, error) {
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.Connect(ctx, *ai); err != nil {
		return nil, "", fmt.Errorf("connect to %s: %w", addr, err)
	}
	s, err := h.NewStream(ctx, ai.ID, replicate.ProtocolID)
	if err != nil {
		return nil, "", fmt.Errorf("open sync stream: %w", err)
	}
	return newWconn(s), ai.ID, nil
}

// openStream is dialStream for the test goroutine.
func openStream(t testing.TB, h host.Host, addr string) (*wconn, peer.ID) {
	t.Helper()
	wc, id, err := dialStream(h, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wc.s.Reset() })
	return wc, id
}

func nonce() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// dialSession runs the initiator's handshake with key k against the node at
// addr and reads the responder's proof and first have: a session that the
// honest peer accepts.
func dialSession(t testing.TB, h host.Host, addr string, c feed.Channel) *wconn {
	t.Helper()
	wc, remote := openStream(t, h, addr)
	d := c.ID()
	nI := nonce()
	if err := wc.send(tHello, wHello{Channel: d[:], Nonce: nI}); err != nil {
		t.Fatal(err)
	}
	var hello wHello
	if err := wc.expect(t, tHello, 10*time.Second).decode(&hello); err != nil || !bytes.Equal(hello.Channel, d[:]) {
		t.Fatalf("responder hello: %v", err)
	}
	if err := wc.send(tProof, wProof{MAC: proofMAC(c.Key, 1, h.ID(), remote, nI, hello.Nonce)}); err != nil {
		t.Fatal(err)
	}
	var pr wProof
	if err := wc.expect(t, tProof, 10*time.Second).decode(&pr); err != nil {
		t.Fatal(err)
	}
	if !hmac.Equal(pr.MAC, proofMAC(c.Key, 2, h.ID(), remote, nI, hello.Nonce)) {
		t.Fatal("the honest responder's proof does not check: the test's encoder disagrees with the protocol")
	}
	wc.expect(t, tHave, 10*time.Second)
	return wc
}

// refusedAfterHello checks that the node at addr now resets a stream from h
// for channel d right after the hello, without answering: h is banned.
func refusedAfterHello(t testing.TB, h host.Host, addr string, d feed.DiscoveryID) error {
	t.Helper()
	wc, _ := openStream(t, h, addr)
	if err := wc.send(tHello, wHello{Channel: d[:], Nonce: nonce()}); err != nil {
		return nil // reset before we could even write: refused
	}
	f, err := wc.recv(10 * time.Second)
	if err == nil {
		return fmt.Errorf("got frame type %d instead of a reset", f.typ)
	}
	if isTimeout(err) {
		return errors.New("no reset within 10s")
	}
	return nil
}

// waitRefused checks that the node at addr refuses h on channel d at once:
// the ban is recorded before the offending stream is reset, so a peer that
// reconnects as soon as it sees the reset must already be refused.
func waitRefused(t testing.TB, h host.Host, addr string, d feed.DiscoveryID) error {
	t.Helper()
	return refusedAfterHello(t, h, addr, d)
}

// signedEntries builds count valid entries of id's feed in ch after head.
func signedEntries(t testing.TB, id *feed.Identity, ch feed.DiscoveryID, head feed.Head, count int, text string) []feed.Entry {
	t.Helper()
	out := make([]feed.Entry, count)
	for i := range out {
		raw, err := feed.Payload{Kind: feed.KindText, Text: fmt.Sprintf("%s %d", text, head.Len)}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if out[i], err = feed.NewEntry(id, ch, head, time.Now().UnixMilli(), raw); err != nil {
			t.Fatal(err)
		}
		head = feed.Head{Author: id.ID(), Len: out[i].Seq + 1, Hash: out[i].Hash()}
	}
	return out
}

func encodings(es []feed.Entry) [][]byte {
	out := make([][]byte, len(es))
	for i := range es {
		out[i] = append([]byte(nil), es[i].Encode()...)
	}
	return out
}
