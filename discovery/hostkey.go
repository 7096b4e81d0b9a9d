package discovery

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kchat-p2p/kchat/internal/perm"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// ErrCorruptHostKey is wrapped by Start's error when Config.HostKeyPath exists but
// does not hold a valid key. The file is never replaced silently: the peer id is
// what other peers (and bootstrap lists) know this node by.
var ErrCorruptHostKey = errors.New("corrupt libp2p host key")

// LoadOrCreateHostKey reads the libp2p host key at path, or creates it (Ed25519,
// libp2p protobuf encoding, mode 0600, parent directory 0700) if the file does not
// exist. A file that exists but cannot be decoded is an error wrapping
// ErrCorruptHostKey; one that another user owns or that group or others can
// read or write is refused (perm.ErrUnsafe). Creation is atomic: a concurrent creator's key wins and both
// return the same key.
func LoadOrCreateHostKey(path string) (crypto.PrivKey, error) {
	data, err := perm.ReadPrivate("host key", path)
	switch {
	case err == nil:
		return decodeHostKey(path, data)
	case errors.Is(err, perm.ErrUnsafe):
		return nil, err
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read host key: %w", err)
	}

	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	enc, err := crypto.MarshalPrivateKey(sk)
	if err != nil {
		return nil, fmt.Errorf("encode host key: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create host key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".hostkey-*")
	if err != nil {
		return nil, fmt.Errorf("create host key: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("create host key: %w", err)
	}
	if _, err := tmp.Write(enc); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write host key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write host key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write host key: %w", err)
	}
	// Link fails if path appeared meanwhile: never overwrite an existing key.
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			data, rerr := perm.ReadPrivate("host key", path)
			if rerr != nil {
				return nil, fmt.Errorf("read host key: %w", rerr)
			}
			return decodeHostKey(path, data)
		}
		return nil, fmt.Errorf("install host key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return sk, nil
}

func decodeHostKey(path string, data []byte) (crypto.PrivKey, error) {
	sk, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%w in %s: %v (move the file away to create a new peer identity)", ErrCorruptHostKey, path, err)
	}
	return sk, nil
}
