package feed

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kchat-p2p/kchat/internal/perm"
)

// A planted identity (mode 0666: anyone could have written it) is refused,
// not loaded.
func TestIdentityRefusedWhenOthersCanWriteIt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "identity")
	if _, err := LoadOrCreateIdentity(p); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o666)
	if _, err := LoadOrCreateIdentity(p); !errors.Is(err, perm.ErrUnsafe) || !errors.Is(err, ErrBadIdentity) {
		t.Fatalf("0666 identity: %v", err)
	}
}
