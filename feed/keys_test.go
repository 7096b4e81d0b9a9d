package feed_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kchat-p2p/kchat/feed"
)

func TestParseChannelKey(t *testing.T) {
	k, _ := feed.NewChannelKey()
	got, name, err := feed.ParseChannelKey("  " + k.WithName("dev-chat") + "\n")
	if err != nil || got != k || name != "dev-chat" {
		t.Fatalf("%v %q", err, name)
	}
	for _, bad := range []string{
		"", "general", "kchat://", "kchat://abc",
		"kchat://" + strings.Repeat("z", 64),
		"https://" + strings.Repeat("a", 64),
		k.String() + "00",
		k.String() + "?color=red",
	} {
		if _, _, err := feed.ParseChannelKey(bad); !errors.Is(err, feed.ErrBadKey) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if k.DiscoveryID() == ([32]byte(k)) {
		t.Fatal("discovery id equals the key")
	}
	k2, _ := feed.NewChannelKey()
	if k.DiscoveryID() == k2.DiscoveryID() {
		t.Fatal("two keys, one discovery id")
	}
}

func TestIdentityPersistsAndRejectsCorruption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "identity")
	a, err := feed.LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", fi.Mode(), err)
	}
	b, err := feed.LoadOrCreateIdentity(path)
	if err != nil || a.ID() != b.ID() {
		t.Fatalf("identity changed across loads: %v", err)
	}
	if err := os.WriteFile(path, []byte("kchat-identity-v1\nnothex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := feed.LoadOrCreateIdentity(path); !errors.Is(err, feed.ErrBadIdentity) {
		t.Fatalf("corrupt identity: %v", err)
	}
	// The corrupt file is left for the user to fix, never replaced.
	if data, _ := os.ReadFile(path); !strings.Contains(string(data), "nothex") {
		t.Fatal("corrupt identity was overwritten")
	}
	if err := os.Chmod(path, 0); err == nil && os.Geteuid() != 0 {
		if _, err := feed.LoadOrCreateIdentity(path); !errors.Is(err, feed.ErrBadIdentity) {
			t.Fatalf("unreadable identity: %v", err)
		}
	}
}
