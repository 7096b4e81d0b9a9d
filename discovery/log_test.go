package discovery

import (
	"github.com/kchat-p2p/kchat/internal/testutil"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
)

// TestLibraryLogsRouted: go-libp2p (gologshim/slog), go-log (zap, kad-dht) and the
// standard library logger (zeroconf) all end up in Config.Logger, filtered at Warn.
func TestLibraryLogsRouted(t *testing.T) {
	buf := &testutil.SyncBuffer{}
	cfg := localConfig(t)
	cfg.NoDHT = true
	cfg.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	RouteLibraryLogs(cfg.Logger)
	t.Cleanup(func() { libTarget.Store(nil) })
	startNode(t, cfg)

	gologshim.Logger("kchat-test-shim").Warn("shim warning", "k", "v")
	gologshim.Logger("kchat-test-shim").Debug("shim debug")
	golog.Logger("kchat-test-zap").Warnw("zap warning", "k", 42)
	golog.Logger("kchat-test-zap").Info("zap info")
	log.Printf("[ERR] zeroconf: stdlog error")

	out := buf.String()
	for _, want := range []string{
		`msg="shim warning" logger=kchat-test-shim k=v`,
		`msg="zap warning" logger=kchat-test-zap k=42`,
		`level=ERROR msg="[ERR] zeroconf: stdlog error" logger=stdlog`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log output lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"shim debug", "zap info"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("below-Warn library log %q was routed", unwanted)
		}
	}
}

// TestImportChangesNothing: importing discovery (and starting a node) leaves
// the process's standard logger alone; only RouteLibraryLogs takes it over.
// Run in a fresh process, where no other test has routed anything yet.
func TestImportChangesNothing(t *testing.T) {
	if os.Getenv("KCHAT_DISCOVERY_IMPORT_CHILD") != "" {
		cfg := localConfig(t)
		cfg.NoDHT = true
		startNode(t, cfg)
		if log.Writer() != os.Stderr || log.Flags() != log.LstdFlags {
			t.Fatal("the standard logger was changed without RouteLibraryLogs")
		}
		RouteLibraryLogs(nil)
		if log.Writer() == os.Stderr {
			t.Fatal("RouteLibraryLogs did not take the standard logger over")
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestImportChangesNothing$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "KCHAT_DISCOVERY_IMPORT_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestImportChangesNothing") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
