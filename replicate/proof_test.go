package replicate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/libp2p/go-libp2p/core/network"
)

// TestProofMACBindsRole: the two roles' proofs over one handshake differ,
// so neither side can answer with the other's proof.
func TestProofMACBindsRole(t *testing.T) {
	k, err := feed.NewChannelKey()
	if err != nil {
		t.Fatal(err)
	}
	a, b := newHost(t).ID(), newHost(t).ID()
	nI, nR := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	i := proofMAC(k, roleInitiator, a, b, nI, nR)
	r := proofMAC(k, roleResponder, a, b, nI, nR)
	if bytes.Equal(i, r) {
		t.Fatal("the initiator's and the responder's proofs are equal: a proof can be reflected")
	}
	if !bytes.Equal(i, proofMAC(k, roleInitiator, a, b, nI, nR)) {
		t.Fatal("proofMAC is not deterministic")
	}
}

// TestReflectedProofRefused: a responder that knows only D answers the honest
// initiator's proof with that same proof. The initiator must see a violation
// and send nothing more (not its have, which would list its feeds).
func TestReflectedProofRefused(t *testing.T) {
	c := newChannel(t, "general")
	ch := c.ID()
	a := newNode(t, Limits{}, c)
	a.append(ch, 3, "secret")
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
		if err := rc.write(frameHello, helloBody{Channel: ch[:], Nonce: bytes.Repeat([]byte{7}, 32)}); err != nil {
			got <- err
			return
		}
		if f, err = rc.read(ch); err != nil || f.typ != frameProof {
			got <- fmt.Errorf("no proof: %v", err)
			return
		}
		// Reflect the initiator's own proof.
		if err := rc.write(frameProof, proofBody{MAC: f.proof.MAC}); err != nil {
			got <- err
			return
		}
		if f, err := rc.read(ch); err == nil {
			got <- fmt.Errorf("the initiator accepted a reflected proof and sent %s", f.typ)
			return
		}
		got <- nil
	})
	a.h.Peerstore().AddAddrs(m.ID(), m.Addrs(), time.Hour)
	err := a.r.Connect(context.Background(), m.ID(), ch)
	var v *violation
	if !errors.As(err, &v) {
		t.Fatalf("connect to a reflecting responder: got %v, want a violation", err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("reflecting responder saw no end")
	}
	if !a.r.Banned(m.ID(), ch) || a.st.Last() != last {
		t.Fatal("reflecting responder not banned, or a's store changed")
	}
}
