package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kchat-p2p/kchat/internal/testutil"
)

// TestTmuxUI runs scripts/tmux-e2e.sh: two real kchat UIs on loopback,
// driven through tmux like a new user, must each show both users' lines.
func TestTmuxUI(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the tmux end-to-end run")
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		testutil.MissingPrereq(t, "tmux is not installed (CI installs it): the UI end-to-end run needs it")
	}
	out := filepath.Join(t.TempDir(), "session.txt")
	cmd := exec.Command("bash", "../../scripts/tmux-e2e.sh")
	cmd.Env = append(os.Environ(), "OUT="+out)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tmux e2e failed: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "PASS") {
		t.Fatalf("no PASS line:\n%s", b)
	}
}
