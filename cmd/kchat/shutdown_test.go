package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/internal/testutil"
)

// buildKchat builds the kchat binary into a temporary dir.
func buildKchat(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kchat")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestSeedStopsWhenItsStoreIsGone: a seed whose data dir was deleted cannot
// flush its store (Badger retries forever), yet SIGTERM ends it within 10 s,
// with an error saying so and a non-zero exit code; nothing of Badger's
// reaches the terminal (it logs to kchat.log).
func TestSeedStopsWhenItsStoreIsGone(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the binary")
	}
	bin := buildKchat(t)
	dir := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command(bin, "seed", "--no-dht", "--no-mdns", "--no-nat", "--listen", "/ip4/127.0.0.1/tcp/0", "--data", dir)
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() { cmd.Process.Kill() })

	// Wait for the seed to print its address: it is up.
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "/ip4/127.0.0.1/") {
				addr <- sc.Text()
			}
		}
		exited <- cmd.Wait()
	}()
	select {
	case <-addr:
	case <-time.After(60 * time.Second):
		t.Fatalf("the seed printed no address; stderr:\n%s", stderr.String())
	}

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		took := time.Since(start)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("exit after %v: %v (want a non-zero exit code); stderr:\n%s", took, err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "kchat: error: the store could not be flushed") {
			t.Fatalf("no error message on stderr:\n%s", stderr.String())
		}
		if strings.Contains(stderr.String(), "badger ") {
			t.Errorf("Badger wrote to the terminal:\n%s", stderr.String())
		}
		t.Logf("exited %d after %v", ee.ExitCode(), took.Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("still running 10 s after SIGTERM; stderr:\n%s", lastLines(stderr.String(), 10))
	}
}

func lastLines(s string, n int) string {
	ls := bytes.Split([]byte(strings.TrimSpace(s)), []byte("\n"))
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return string(bytes.Join(ls, []byte("\n")))
}
