// Command kchat is a peer-to-peer terminal chat. This file only wires: it
// parses flags, opens a node on the data dir (or reaches the node already
// running there through its control socket), and runs one command.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kchat-p2p/kchat/discovery"
	"github.com/kchat-p2p/kchat/internal/storage"
)

func main() {
	// Library logs go to kchat's log file once one is open (app.logger),
	// never to the terminal: until then they are dropped.
	discovery.RouteLibraryLogs(nil)
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(storage.MemoryLimit)
	}
	// KCHAT_CPUPROFILE=FILE writes a CPU profile of this run (for
	// developers: go tool pprof FILE).
	if p := os.Getenv("KCHAT_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil && pprof.StartCPUProfile(f) == nil {
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	} else if p := os.Getenv("KCHAT_CPUPROFILE_USR1"); p != "" {
		defer profileOnSignal(p)()
	}
	ctx, stop := shutdownOnSignal(os.Stderr, shutdownGrace, storage.FlushFailures, func() {
		pprof.StopCPUProfile()
		os.Exit(exitUnclean)
	})
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, nil)
	stop()
	if code != 0 {
		pprof.StopCPUProfile()
		os.Exit(code)
	}
}

// profileOnSignal: each SIGUSR1 starts a CPU profile into file (the same
// file each time), the next one stops it; for profiling one span of a long
// run (scripts/scale-bench.sh PROFILE=burst). The returned func stops it.
func profileOnSignal(file string) (stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var f *os.File
		for {
			select {
			case <-done:
				if f != nil {
					pprof.StopCPUProfile()
					f.Close()
				}
				return
			case <-sig:
			}
			if f != nil {
				pprof.StopCPUProfile()
				f.Close()
				f = nil
				continue
			}
			var err error
			if f, err = os.Create(file); err == nil && pprof.StartCPUProfile(f) != nil {
				f.Close()
				f = nil
			}
		}
	}()
	return func() { signal.Stop(sig); close(done); wg.Wait() }
}

// shutdownGrace bounds the shutdown that SIGINT or SIGTERM starts: a store
// that cannot be flushed (its directory was deleted, its disk is gone) makes
// Badger retry its memtable flush forever, and a seed must still stop. Such
// a store is noticed at once (storage.FlushFailures, about 0.1 s); this
// bound is for anything else that hangs. It is not shorter because a clean
// close on a loaded machine takes seconds (more than 9 s was seen on the
// 2-core CI machine during go test -race ./...: a FreeOSMemory of the
// memory trimmer in flight, then Badger's last flush), and cutting a clean
// close short turns it into a crash.
const shutdownGrace = 25 * time.Second

// exitUnclean is the exit code when the shutdown did not finish.
const exitUnclean = 3

// shutdownOnSignal returns a context cancelled by the first SIGINT or
// SIGTERM. From then on, a second signal, a memtable flush failing
// (flushFailed reports a count that grew, and the error), or the shutdown
// still running after grace, prints why to stderr and calls exit (which
// must not return). stop releases the signals.
func shutdownOnSignal(stderr io.Writer, grace time.Duration, flushFailed func() (int64, string), exit func()) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigc := make(chan os.Signal, 2)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigc:
		case <-done:
			return
		}
		cancel()
		failed0, _ := flushFailed()
		t := time.NewTimer(grace)
		defer t.Stop()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
	wait:
		for {
			select {
			case <-done:
				return
			case s := <-sigc:
				fmt.Fprintf(stderr, "kchat: %v again: exiting without finishing the shutdown (the store may not be flushed)\n", s)
				break wait
			case <-t.C:
				fmt.Fprintf(stderr, "kchat: error: the shutdown did not finish within %v; exiting without it (what was written is in the store's log and is kept)\n", grace)
				break wait
			case <-tick.C:
				if n, msg := flushFailed(); n > failed0 {
					fmt.Fprintf(stderr, "kchat: error: the store could not be flushed (is its directory or disk gone?): %s; exiting without it\n", firstLine(msg))
					break wait
				}
			}
		}
		select {
		case <-done: // finished meanwhile after all
		default:
			exit()
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(sigc)
			close(done)
			cancel()
		})
	}
}

// firstLine is s up to its first newline.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// exitError carries an exit code without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// run executes one kchat invocation. served is non-nil when it runs inside a
// node on behalf of a control-socket client.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, served *served) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, served: served, rawArgs: args}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	closed := a.closeNode()
	var ee exitError
	switch {
	case err == nil && !closed:
		return 1 // closing the store failed (printed): what was written may be lost
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	default:
		fmt.Fprintf(stderr, "kchat: %v\n", err)
		return 1
	}
}
