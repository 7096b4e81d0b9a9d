package replicate

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

// rawConn is a hand-driven end of the wire protocol, for hostile peers.
type rawConn struct {
	t *testing.T
	*conn
	ch feed.DiscoveryID
}

func newRawConn(t *testing.T, s network.Stream, ch feed.DiscoveryID) *rawConn {
	var cnt counters
	return &rawConn{t: t, conn: newConn(s, newCodec(DefaultLimits()), &cnt), ch: ch}
}

func (rc *rawConn) send(typ frameType, body any) {
	rc.t.Helper()
	if err := rc.write(typ, body); err != nil {
		rc.t.Fatalf("raw send %s: %v", typ, err)
	}
}

// writeRaw writes msg as one frame, whatever it holds.
func (rc *rawConn) writeRaw(msg []byte) {
	rc.t.Helper()
	if err := rc.wr.WriteMsg(msg); err != nil {
		rc.t.Fatalf("raw write: %v", err)
	}
	if err := rc.flush(); err != nil {
		rc.t.Fatalf("raw write: %v", err)
	}
}

func (rc *rawConn) expect(typ frameType) frame {
	rc.t.Helper()
	rc.s.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := rc.read(rc.ch)
	if err != nil {
		rc.t.Fatalf("raw read, want %s: %v", typ, err)
	}
	if f.typ != typ {
		rc.t.Fatalf("raw read %s, want %s", f.typ, typ)
	}
	return f
}

// expectDropped reads until the stream fails. A peer that proved the key
// may get entries before; one that did not may get nothing but a hello.
func (rc *rawConn) expectDropped(proved bool) {
	rc.t.Helper()
	rc.s.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := rc.read(rc.ch)
		if err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				rc.t.Fatal("the honest peer did not drop the hostile stream")
			}
			return
		}
		if !proved {
			rc.t.Fatalf("the honest peer sent %s to a peer it should drop", f.typ)
		}
	}
}

// rawDial opens a stream from h to target and runs the initiator's side of
// the handshake with key k (which may be wrong) up to sending the proof.
// It returns the responder's hello.
func rawDial(t *testing.T, h host.Host, target *node, ch feed.DiscoveryID, k feed.ChannelKey) (*rawConn, frame, []byte) {
	t.Helper()
	h.Peerstore().AddAddrs(target.h.ID(), target.h.Addrs(), peerstore.PermanentAddrTTL)
	s, err := h.NewStream(context.Background(), target.h.ID(), ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Reset() })
	rc := newRawConn(t, s, ch)
	nonce := make([]byte, 32)
	rand.Read(nonce)
	rc.send(frameHello, helloBody{Channel: ch[:], Nonce: nonce})
	hello := rc.expect(frameHello)
	rc.send(frameProof, proofBody{MAC: proofMAC(k, roleInitiator, h.ID(), target.h.ID(), nonce, hello.hello.Nonce)})
	return rc, hello, nonce
}

// rawSession completes a valid handshake and exchanges empty haves.
func rawSession(t *testing.T, h host.Host, target *node, c feed.Channel) *rawConn {
	t.Helper()
	rc, hello, nonce := rawDial(t, h, target, c.ID(), c.Key)
	f := rc.expect(frameProof)
	if want := proofMAC(c.Key, roleResponder, h.ID(), target.h.ID(), nonce, hello.hello.Nonce); string(f.proof.MAC) != string(want) {
		t.Fatal("honest responder's proof does not check")
	}
	rc.expect(frameHave)
	return rc
}

func TestForgedDiscoveryIDGetsNothing(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	a := newNode(t, Limits{}, c)
	a.append(ch, 5, "secret")
	last := a.st.Last()
	m := newHost(t)

	// m read D somewhere (the DHT) and guesses at K.
	wrong, _ := feed.NewChannelKey()
	rc, _, _ := rawDial(t, m, a, ch, wrong)
	rc.expectDropped(false)
	eventually(t, 5*time.Second, "a to ban m", func() bool { return a.r.Banned(m.ID(), ch) })
	if a.st.Last() != last || len(a.r.Sessions(ch)) != 0 {
		t.Fatal("a's store or sessions changed")
	}
	// Banned: the next attempt is reset right after the hello, even with
	// the right key.
	s, err := m.NewStream(context.Background(), a.h.ID(), ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	rc = newRawConn(t, s, ch)
	rc.send(frameHello, helloBody{Channel: ch[:], Nonce: make([]byte, 32)})
	rc.s.SetReadDeadline(time.Now().Add(10 * time.Second))
	if f, err := rc.read(ch); err == nil {
		t.Fatalf("banned peer got %s", f.typ)
	}
}

// TestForgedResponderGetsNothing: a responds for D without K; the honest
// initiator's proof is all it gets (bound to both peer ids and nonces), and
// the honest side hangs up.
func TestForgedResponderGetsNothing(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	a := newNode(t, Limits{}, c)
	a.append(ch, 5, "secret")
	last := a.st.Last()
	m := newHost(t)
	got := make(chan error, 1)
	m.SetStreamHandler(ProtocolID, func(s network.Stream) {
		defer s.Reset()
		rc := &rawConn{t: t, conn: newConn(s, newCodec(DefaultLimits()), &counters{}), ch: ch}
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		f, err := rc.read(ch)
		if err != nil || f.typ != frameHello {
			got <- fmt.Errorf("no hello: %v", err)
			return
		}
		if err := rc.write(frameHello, helloBody{Channel: ch[:], Nonce: make([]byte, 32)}); err != nil {
			got <- err
			return
		}
		if f, err = rc.read(ch); err != nil || f.typ != frameProof {
			got <- fmt.Errorf("no proof: %v", err)
			return
		}
		if err := rc.write(frameProof, proofBody{MAC: make([]byte, 32)}); err != nil {
			got <- err
			return
		}
		if f, err := rc.read(ch); err == nil {
			got <- fmt.Errorf("got %s after a forged proof", f.typ)
			return
		}
		got <- nil
	})
	a.h.Peerstore().AddAddrs(m.ID(), m.Addrs(), time.Hour)
	err := a.r.Connect(context.Background(), m.ID(), ch)
	var v *violation
	if !errors.As(err, &v) {
		t.Fatalf("connect to a forged responder: %v", err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("forged responder saw no end")
	}
	if !a.r.Banned(m.ID(), ch) || a.st.Last() != last {
		t.Fatal("forged responder not banned, or a's store changed")
	}
	if err := a.r.Connect(context.Background(), m.ID(), ch); !errors.Is(err, ErrBanned) {
		t.Fatalf("connect to a banned peer: %v", err)
	}
}

func ab(a feed.AuthorID) []byte { return a[:] }

// entryBytes returns the encodings of es.
func entryBytes(es []feed.Entry) [][]byte {
	out := make([][]byte, len(es))
	for i := range es {
		out[i] = append([]byte(nil), es[i].Encode()...)
	}
	return out
}

func TestHostileFramesDropped(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	x := newIdentity(t)
	valid := makeEntries(t, x, ch, feed.Head{}, 10, "x")
	otherCh := newChannel(t, "other").ID()
	elsewhere := makeEntries(t, x, otherCh, feed.Head{}, 3, "x")
	emptyHave := func(rc *rawConn) { rc.send(frameHave, haveBody{}) }

	cases := []struct {
		name string
		lim  Limits
		do   func(rc *rawConn)
	}{
		{"unknown frame type", Limits{}, func(rc *rawConn) {
			emptyHave(rc)
			rc.writeRaw([]byte{0x77, 0xa0})
		}},
		{"garbage bytes", Limits{}, func(rc *rawConn) {
			emptyHave(rc)
			junk := make([]byte, 300)
			rand.Read(junk)
			junk[0] = byte(frameEntries)
			rc.writeRaw(junk)
		}},
		{"empty frame", Limits{}, func(rc *rawConn) {
			emptyHave(rc)
			rc.writeRaw(nil)
		}},
		{"bad cbor", Limits{}, func(rc *rawConn) {
			emptyHave(rc)
			rc.writeRaw([]byte{byte(frameHave), 0xa1, 0x01, 0x9f, 0xff})
		}},
		{"non-deterministic cbor", Limits{}, func(rc *rawConn) {
			emptyHave(rc)
			b, _ := encodeFrame(frameEntries, entriesBody{Author: make([]byte, 32), First: 1, Entries: [][]byte{{1}}})
			// b is 04 a3 01 58 20 <32 zero bytes> 02 01 03 81 41 01; write
			// first (1) as 18 01, a valid but not shortest integer.
			i := 1 + 1 + 1 + 2 + 32
			if b[i] != 0x02 || b[i+1] != 0x01 {
				t.Fatalf("unexpected encoding % x", b)
			}
			b = append(b[:i+1:i+1], append([]byte{0x18, 0x01}, b[i+2:]...)...)
			rc.writeRaw(b)
		}},
		{"unknown field", Limits{}, func(rc *rawConn) {
			emptyHave(rc)
			rc.writeRaw([]byte{byte(framePing), 0xa1, 0x01, 0x01})
		}},
		{"oversized frame", Limits{}, func(rc *rawConn) {
			emptyHave(rc)
			hdr := binary.AppendUvarint(nil, uint64(ProtoMaxFrame)+1)
			rc.s.Write(append(hdr, byte(frameEntries)))
		}},
		{"oversized under a test limit", Limits{MaxFrame: 2048}, func(rc *rawConn) {
			emptyHave(rc)
			rc.send(frameEntries, entriesBody{Author: ab(x.ID()), First: 0, Entries: entryBytes(valid)})
		}},
		{"forged signature", Limits{}, func(rc *rawConn) {
			emptyHave(rc)
			raws := entryBytes(valid)
			last := raws[len(raws)-1]
			last[110] ^= 1 // the time field: signature no longer verifies
			rc.send(frameEntries, entriesBody{Author: ab(x.ID()), First: 0, Entries: raws})
		}},
		{"forged author", Limits{}, func(rc *rawConn) {
			emptyHave(rc)
			y := newIdentity(t)
			mine := entryBytes(makeEntries(t, y, ch, feed.Head{}, 3, "y"))
			for _, raw := range mine {
				copy(raw[1:33], ab(x.ID())) // claims to be x
			}
			rc.send(frameEntries, entriesBody{Author: ab(x.ID()), First: 0, Entries: mine})
		}},
		{"reordered entries", Limits{}, func(rc *rawConn) {
			emptyHave(rc)
			raws := entryBytes(valid[:4])
			raws[1], raws[2] = raws[2], raws[1]
			rc.send(frameEntries, entriesBody{Author: ab(x.ID()), First: 0, Entries: raws})
		}},
		{"gap", Limits{}, func(rc *rawConn) {
			emptyHave(rc)
			rc.send(frameEntries, entriesBody{Author: ab(x.ID()), First: 5, Entries: entryBytes(valid[5:])})
		}},
		{"first seq lies", Limits{}, func(rc *rawConn) {
			emptyHave(rc)
			rc.send(frameEntries, entriesBody{Author: ab(x.ID()), First: 1, Entries: entryBytes(valid[:3])})
		}},
		{"entries of another channel", Limits{}, func(rc *rawConn) {
			emptyHave(rc)
			rc.send(frameEntries, entriesBody{Author: ab(x.ID()), First: 0, Entries: entryBytes(elsewhere)})
		}},
		{"malformed entry", Limits{}, func(rc *rawConn) {
			emptyHave(rc)
			raws := entryBytes(valid[:2])
			raws[1] = raws[1][:len(raws[1])-1]
			rc.send(frameEntries, entriesBody{Author: ab(x.ID()), First: 0, Entries: raws})
		}},
		{"entries before have", Limits{}, func(rc *rawConn) {
			rc.send(frameEntries, entriesBody{Author: ab(x.ID()), First: 0, Entries: entryBytes(valid)})
		}},
		{"hello after the handshake", Limits{}, func(rc *rawConn) {
			emptyHave(rc)
			rc.send(frameHello, helloBody{Channel: ch[:], Nonce: make([]byte, 32)})
		}},
		{"have going backwards", Limits{}, func(rc *rawConn) {
			h := feed.Head{Author: x.ID(), Len: 5, Hash: valid[4].Hash()}
			rc.send(frameHave, haveBody{Feeds: []wireHead{fromHead(h)}})
			h.Len, h.Hash = 3, valid[2].Hash()
			rc.send(frameHave, haveBody{Feeds: []wireHead{fromHead(h)}})
		}},
		{"have out of order", Limits{}, func(rc *rawConn) {
			h1 := feed.Head{Author: feed.AuthorID{2}, Len: 1}
			h2 := feed.Head{Author: feed.AuthorID{1}, Len: 1}
			rc.send(frameHave, haveBody{Feeds: []wireHead{fromHead(h1), fromHead(h2)}})
		}},
		{"too many feeds", Limits{MaxSessionFeeds: 3}, func(rc *rawConn) {
			var ws []wireHead
			for i := range 4 {
				ws = append(ws, fromHead(feed.Head{Author: feed.AuthorID{byte(i)}, Len: 1}))
			}
			rc.send(frameHave, haveBody{Feeds: ws})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newNode(t, tc.lim, c)
			a.append(ch, 2, "honest")
			last := a.st.Last()
			m := newHost(t)
			rc := rawSession(t, m, a, c)
			tc.do(rc)
			rc.expectDropped(true)
			eventually(t, 5*time.Second, "a to ban m", func() bool { return a.r.Banned(m.ID(), ch) })
			if a.st.Last() != last {
				t.Fatal("a stored something from a hostile peer")
			}
			if s := a.r.Stats(); s.Violations != 1 || s.EntriesStored != 0 {
				t.Fatalf("stats: %+v", s)
			}
			// m stays refused on this channel, and a does not dial it.
			if err := a.r.Connect(context.Background(), m.ID(), ch); !errors.Is(err, ErrBanned) {
				t.Fatalf("connect to a banned peer: %v", err)
			}
		})
	}
}

// TestRawPeerValidEntries: a raw peer may send valid entries (it holds
// the key); they are stored, and it is not banned for it.
func TestRawPeerValidEntries(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	a := newNode(t, Limits{}, c)
	x := newIdentity(t)
	valid := makeEntries(t, x, ch, feed.Head{}, 10, "x")
	m := newHost(t)
	rc := rawSession(t, m, a, c)
	rc.send(frameHave, haveBody{})
	rc.send(frameEntries, entriesBody{Author: ab(x.ID()), First: 0, Entries: entryBytes(valid[:6])})
	// An overlap with what a already holds is harmless.
	rc.send(frameEntries, entriesBody{Author: ab(x.ID()), First: 4, Entries: entryBytes(valid[4:])})
	rc.send(framePing, pingBody{})
	eventually(t, 5*time.Second, "a to store x's feed", func() bool { return heads(t, a.st, ch)[x.ID()].Len == 10 }, a)
	// a tells m what it now holds.
	want := valid[9].Hash()
	for {
		f := rc.expect(frameHave)
		if len(f.have.Feeds) == 1 && f.have.Feeds[0].Len == 10 && string(f.have.Feeds[0].Hash) == string(want[:]) {
			break
		}
	}
	if a.r.Banned(m.ID(), ch) || len(a.r.Sessions(ch)) != 1 {
		t.Fatal("valid entries got the peer dropped")
	}
}

// TestIdleTimeout: a quiet but live session is kept up by pings; a peer that
// goes silent is dropped after IdleTimeout, without a ban.
func TestIdleTimeout(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	lim := Limits{IdleTimeout: time.Second}
	a, b := newNode(t, lim, c), newNode(t, lim, c)
	a.connect(b, ch)
	a.waitSynced(ch, b)
	since := a.r.Sessions(ch)[0].Since
	frames := a.r.Stats().FramesReceived
	// Five more frames with nothing to say: pings, well past the idle time.
	eventually(t, 20*time.Second, "pings", func() bool { return a.r.Stats().FramesReceived >= frames+5 })
	if s := a.r.Sessions(ch); len(s) != 1 || s[0].Since != since {
		t.Fatal("a quiet session was dropped")
	}

	m := newHost(t)
	rc := rawSession(t, m, a, c)
	rc.send(frameHave, haveBody{})
	start := time.Now()
	rc.expectDropped(true)
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Fatalf("dropped after %v, before the idle timeout", el)
	}
	if a.r.Banned(m.ID(), ch) {
		t.Fatal("silence is not a protocol violation")
	}
}
