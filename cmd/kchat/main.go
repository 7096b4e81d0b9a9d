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
	"syscall"

	"github.com/kchat-p2p/kchat/discovery"
)

// memoryLimit is the Go heap's soft limit unless GOMEMLIMIT says otherwise:
// a chat program should stay small; the GC works harder near the limit
// instead of letting a big sync double the heap.
const memoryLimit = 128 << 20

func main() {
	// Library logs go to kchat's log file once one is open (app.logger),
	// never to the terminal: until then they are dropped.
	discovery.RouteLibraryLogs(nil)
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	// KCHAT_CPUPROFILE=FILE writes a CPU profile of this run (for
	// developers: go tool pprof FILE).
	if p := os.Getenv("KCHAT_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil && pprof.StartCPUProfile(f) == nil {
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, nil)
	stop()
	if code != 0 {
		pprof.StopCPUProfile()
		os.Exit(code)
	}
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
	a.closeNode()
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	default:
		fmt.Fprintf(stderr, "kchat: %v\n", err)
		return 1
	}
}
