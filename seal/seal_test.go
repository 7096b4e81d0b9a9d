package seal

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
)

type who struct {
	id   [32]byte
	priv PrivateKey
	pub  PublicKey
}

func person(t testing.TB, seedByte byte) who {
	t.Helper()
	seed := bytes.Repeat([]byte{seedByte}, ed25519.SeedSize)
	edPriv := ed25519.NewKeyFromSeed(seed)
	var w who
	copy(w.id[:], edPriv.Public().(ed25519.PublicKey))
	w.priv = PrivateFromEd25519(edPriv)
	pub, err := PublicFromEd25519(w.id[:])
	if err != nil {
		t.Fatal(err)
	}
	w.pub = pub
	return w
}

// TestKeyConversion: the X25519 public key computed from the Ed25519 public
// key (what a sender knows of the recipient) is the one of the private key
// derived from the seed (what the recipient holds).
func TestKeyConversion(t *testing.T) {
	for b := range 20 {
		w := person(t, byte(b))
		if w.pub != w.priv.Public() {
			t.Fatalf("seed %d: converted public key %x != derived %x", b, w.pub, w.priv.Public())
		}
	}
	if _, err := PublicFromEd25519(make([]byte, 32)); err == nil {
		// y = 0 is a point of order 4.
		t.Fatal("a small-order key was accepted")
	}
	if _, err := PublicFromEd25519([]byte{1, 2, 3}); !errors.Is(err, ErrBadKey) {
		t.Fatalf("short key: %v", err)
	}
}

func TestSealOpen(t *testing.T) {
	alice, bob, carol := person(t, 1), person(t, 2), person(t, 3)
	m := Message{From: alice.id, To: bob.id, Text: "meet at noon"}
	b, err := Seal(nil, m, bob.pub, alice.pub)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != Overhead+len(m.Text) {
		t.Fatalf("%d bytes, want %d", len(b), Overhead+len(m.Text))
	}
	if bytes.Contains(b, []byte("noon")) || bytes.Contains(b, bob.id[:8]) || bytes.Contains(b, bob.pub[:8]) {
		t.Fatal("the sealed bytes show the text or the recipient")
	}
	for _, r := range []who{bob, alice} {
		got, err := NewOpener(r.priv).Open(b, alice.id, r.id)
		if err != nil || got != m {
			t.Fatalf("open as %x: %+v, %v", r.id[:4], got, err)
		}
	}
	if _, err := NewOpener(carol.priv).Open(b, alice.id, carol.id); !errors.Is(err, ErrNotForMe) {
		t.Fatalf("carol opened it: %v", err)
	}
	// Replayed in carol's feed: bob's slot opens, but it is not carol's.
	if _, err := NewOpener(bob.priv).Open(b, carol.id, bob.id); !errors.Is(err, ErrTampered) {
		t.Fatalf("replay under another author: %v", err)
	}
	// Every single-byte change is refused: never opened as text.
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x20
		got, err := NewOpener(bob.priv).Open(c, alice.id, bob.id)
		if err == nil {
			t.Fatalf("byte %d flipped: opened as %q", i, got.Text)
		}
	}
	// Two seals of one message differ (fresh ephemeral key, nonce, key).
	b2, _ := Seal(nil, m, bob.pub, alice.pub)
	if bytes.Equal(b[:57], b2[:57]) {
		t.Fatal("two seals share their ephemeral key and nonce")
	}
	// A message to oneself opens too.
	self, err := Seal(nil, Message{From: alice.id, To: alice.id, Text: "note"}, alice.pub, alice.pub)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := NewOpener(alice.priv).Open(self, alice.id, alice.id); err != nil || got.Text != "note" {
		t.Fatalf("note to self: %v %v", got, err)
	}
}

// TestSlotIsCryptoBox: each slot is exactly nacl/box's Seal of the content
// key from the ephemeral key to the reader, so a second implementation can
// use any crypto_box.
func TestSlotIsCryptoBox(t *testing.T) {
	alice, bob := person(t, 1), person(t, 2)
	rnd := bytes.Repeat([]byte{7}, 89)
	rnd[88] = 0 // slot 0: the recipient
	b, err := Seal(bytes.NewReader(rnd), Message{From: alice.id, To: bob.id, Text: "x"}, bob.pub, alice.pub)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	var ePriv, ck [32]byte
	copy(ePriv[:], rnd[:32])
	copy(ck[:], rnd[56:88])
	for i, pub := range []PublicKey{bob.pub, alice.pub} {
		n := slotNonce(p.Nonce, i)
		pk := [32]byte(pub)
		if want := box.Seal(nil, ck[:], &n, &pk, &ePriv); !bytes.Equal(want, p.Slots[i]) {
			t.Fatalf("slot %d is not crypto_box", i)
		}
	}
}

// The test vector of docs/protocol.md section 3.
const (
	vectorRandom = "" +
		"1111111111111111111111111111111111111111111111111111111111111111" + // ephemeral private key
		"222222222222222222222222222222222222222222222222" + // N
		"3333333333333333333333333333333333333333333333333333333333333333" + // content key
		"00" // slot order: recipient first
	vectorText = "hi bob"
)

func TestVector(t *testing.T) {
	alice, bob := person(t, 0xaa), person(t, 0xbb)
	rnd, _ := hex.DecodeString(vectorRandom)
	b, err := Seal(bytes.NewReader(rnd), Message{From: alice.id, To: bob.id, Text: vectorText}, bob.pub, alice.pub)
	if err != nil {
		t.Fatal(err)
	}
	got := hex.EncodeToString(b)
	want := strings.Join(strings.Fields(vectorSealed), "")
	if got != want {
		t.Fatalf("sealed vector:\n got %s\nwant %s", got, want)
	}
	vb, _ := hex.DecodeString(want)
	m, err := NewOpener(bob.priv).Open(vb, alice.id, bob.id)
	if err != nil || m.Text != vectorText || m.From != alice.id || m.To != bob.id {
		t.Fatalf("vector does not open: %+v %v", m, err)
	}
	for _, c := range []struct {
		name string
		got  []byte
		want string
	}{
		{"alice id", alice.id[:], vectorAliceID},
		{"bob id", bob.id[:], vectorBobID},
		{"bob x25519 public", bob.pub[:], vectorBobX},
		{"alice x25519 public", alice.pub[:], vectorAliceX},
	} {
		if hex.EncodeToString(c.got) != c.want {
			t.Errorf("%s: %x, want %s", c.name, c.got, c.want)
		}
	}
	if _, err := curve25519.X25519(bob.priv[:], curve25519.Basepoint); err != nil {
		t.Fatal(err)
	}
}

func TestParseRejects(t *testing.T) {
	for _, b := range [][]byte{nil, {2}, {1}, make([]byte, Overhead-1)} {
		if len(b) > 0 && b[0] == 0 {
			b[0] = 1
		}
		if _, err := Parse(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d bytes: %v", len(b), err)
		}
	}
}

// FuzzOpen: any bytes given as a sealed payload are refused or opened
// without panicking; what opens is a message from the author to the reader
// (or from the reader).
func FuzzOpen(f *testing.F) {
	alice, bob := person(f, 1), person(f, 2)
	good, err := Seal(nil, Message{From: alice.id, To: bob.id, Text: "seed"}, bob.pub, alice.pub)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{1})
	f.Add(make([]byte, Overhead))
	f.Add(append([]byte{2}, good[1:]...))
	op := NewOpener(bob.priv)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, perr := Parse(b)
		m, err := op.Open(b, alice.id, bob.id)
		if perr != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse refused (%v) but Open says %v", perr, err)
			}
			return
		}
		if len(p.Body) != len(b)-headSize {
			t.Fatal("body length")
		}
		if err == nil && (m.From != alice.id || m.To != bob.id) {
			t.Fatalf("opened a message not from alice to bob: %+v", m)
		}
	})
}

// BenchmarkTrialOpen is the cost a reader pays per sealed entry that is not
// for them (the common case): one X25519 multiplication and two failed
// 48-byte secretbox opens.
func BenchmarkTrialOpen(b *testing.B) {
	alice, bob, carol := person(b, 1), person(b, 2), person(b, 3)
	s, err := Seal(nil, Message{From: alice.id, To: bob.id, Text: strings.Repeat("x", 100)}, bob.pub, alice.pub)
	if err != nil {
		b.Fatal(err)
	}
	op := NewOpener(carol.priv)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := op.Open(s, alice.id, carol.id); !errors.Is(err, ErrNotForMe) {
			b.Fatal(err)
		}
	}
	// CPU time per open: on a shared machine, wall time also counts the
	// time other processes took the core.
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkOpen is the cost for the recipient (a successful open).
func BenchmarkOpen(b *testing.B) {
	alice, bob := person(b, 1), person(b, 2)
	s, err := Seal(nil, Message{From: alice.id, To: bob.id, Text: strings.Repeat("x", 100)}, bob.pub, alice.pub)
	if err != nil {
		b.Fatal(err)
	}
	op := NewOpener(bob.priv)
	for b.Loop() {
		if _, err := op.Open(s, alice.id, bob.id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSeal is the cost of sealing one message.
func BenchmarkSeal(b *testing.B) {
	alice, bob := person(b, 1), person(b, 2)
	m := Message{From: alice.id, To: bob.id, Text: strings.Repeat("x", 100)}
	for b.Loop() {
		if _, err := Seal(nil, m, bob.pub, alice.pub); err != nil {
			b.Fatal(err)
		}
	}
}

// TestVectorInProtocolDoc: the vector printed in docs/protocol.md section
// 3.2 is the one TestVector checks.
func TestVectorInProtocolDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "S (239 bytes")
	if !ok {
		t.Fatal("protocol.md has no sealed test vector")
	}
	_, rest, _ = strings.Cut(rest, "```\n")
	block, _, _ := strings.Cut(rest, "```")
	var got strings.Builder
	for line := range strings.Lines(block) {
		if f := strings.Fields(line); len(f) > 0 {
			got.WriteString(f[0])
		}
	}
	if want := strings.Join(strings.Fields(vectorSealed), ""); got.String() != want {
		t.Fatalf("protocol.md's vector:\n%s\nwant\n%s", got.String(), want)
	}
	for _, id := range []string{vectorAliceID, vectorBobID, vectorAliceX, vectorBobX} {
		if !strings.Contains(string(doc), id) {
			t.Errorf("protocol.md lacks %s", id)
		}
	}
}
