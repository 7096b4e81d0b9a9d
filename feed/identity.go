package feed

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kchat-p2p/kchat/internal/perm"
	"github.com/kchat-p2p/kchat/seal"
)

// AuthorID is an author's Ed25519 public key: the id of their feeds.
type AuthorID [32]byte

// String is the full lowercase hex form.
func (a AuthorID) String() string { return hex.EncodeToString(a[:]) }

// Short is a stable 8-hex-digit form for display when no nickname is known
// or when two authors claim the same nickname.
func (a AuthorID) Short() string { return hex.EncodeToString(a[:4]) }

// ParseAuthorID parses the 64-hex-digit form of an author id.
func ParseAuthorID(s string) (AuthorID, error) {
	var a AuthorID
	if len(s) != 64 {
		return a, fmt.Errorf("author id must be 64 hex digits, got %d characters", len(s))
	}
	if _, err := hex.Decode(a[:], []byte(s)); err != nil {
		return a, fmt.Errorf("author id is not hex: %w", err)
	}
	return a, nil
}

// Identity is the user's signing key pair. The public half is the AuthorID.
type Identity struct {
	priv ed25519.PrivateKey
	id   AuthorID
}

// NewIdentity makes a fresh random identity (not persisted).
func NewIdentity() (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate identity: %w", err)
	}
	return identityFromPriv(priv), nil
}

func identityFromPriv(priv ed25519.PrivateKey) *Identity {
	id := &Identity{priv: priv}
	copy(id.id[:], priv.Public().(ed25519.PublicKey))
	return id
}

// ID is the author id (public key).
func (i *Identity) ID() AuthorID { return i.id }

// BoxKey is the identity's X25519 private key, for opening private
// messages (package seal): derived from the Ed25519 key, so it needs no
// file of its own and its public half follows from the author id.
func (i *Identity) BoxKey() seal.PrivateKey { return seal.PrivateFromEd25519(i.priv) }

// Sign signs msg with the identity's private key.
func (i *Identity) Sign(msg []byte) []byte { return ed25519.Sign(i.priv, msg) }

const identityHeader = "kchat-identity-v1"

// ErrBadIdentity means the identity file exists but cannot be used. kchat
// never replaces it silently: that would orphan the user's feeds.
var ErrBadIdentity = errors.New("identity file is unusable")

// LoadOrCreateIdentity reads the identity at path, creating it (mode 0600)
// if the file does not exist. An unreadable or corrupt file is an error, and
// so is one that another user owns or that group or others can read or
// write (perm.ErrUnsafe): someone else could have planted it, or sign as
// its owner.
func LoadOrCreateIdentity(path string) (*Identity, error) {
	b, err := perm.ReadPrivate("identity file", path)
	switch {
	case err == nil:
		return parseIdentity(path, b)
	case errors.Is(err, perm.ErrUnsafe):
		return nil, fmt.Errorf("%w: %w", ErrBadIdentity, err)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: %s: %w", ErrBadIdentity, path, err)
	}
	id, err := NewIdentity()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create identity dir: %w", err)
	}
	text := identityHeader + "\n" + hex.EncodeToString(id.priv.Seed()) + "\n"
	// Written whole to a temporary file, synced, then linked into place:
	// a crash at any moment leaves either no identity or a complete one,
	// never an empty file. Link (not rename) fails if the name exists, so
	// if two processes race to create it, one wins and the other reads it.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".identity-*")
	if err != nil {
		return nil, fmt.Errorf("create identity: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("create identity: %w", err)
	}
	if _, err := tmp.WriteString(text); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write identity: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("sync identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("close identity: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateIdentity(path)
		}
		return nil, fmt.Errorf("create identity: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return id, nil
}

func parseIdentity(path string, b []byte) (*Identity, error) {
	lines := strings.Fields(string(b))
	if len(lines) != 2 || lines[0] != identityHeader {
		return nil, fmt.Errorf("%w: %s: not a kchat identity file (expected %q header)", ErrBadIdentity, path, identityHeader)
	}
	seed, err := hex.DecodeString(lines[1])
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: %s: key is not %d hex bytes", ErrBadIdentity, path, ed25519.SeedSize)
	}
	return identityFromPriv(ed25519.NewKeyFromSeed(seed)), nil
}
