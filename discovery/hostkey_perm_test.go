package discovery

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kchat-p2p/kchat/internal/perm"
)

// A host key that group or others can read or write is refused, as ssh
// refuses such private keys.
func TestHostKeyRefusedWhenOthersCanAccessIt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hostkey")
	if _, err := LoadOrCreateHostKey(p); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o666)
	_, err := LoadOrCreateHostKey(p)
	if !errors.Is(err, perm.ErrUnsafe) || !strings.Contains(err.Error(), "run chmod 600 "+p) {
		t.Fatalf("0666 host key: %v", err)
	}
	os.Chmod(p, 0o600)
	if _, err := LoadOrCreateHostKey(p); err != nil {
		t.Fatalf("0600 host key: %v", err)
	}
}
