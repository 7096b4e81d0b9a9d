package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kchat-p2p/kchat/discovery"
	"github.com/kchat-p2p/kchat/internal/logx"
	"github.com/kchat-p2p/kchat/node"
	"github.com/spf13/cobra"
	"gopkg.in/natefinch/lumberjack.v2"
)

// served is the running node a control-socket invocation uses.
type served struct{ node *node.Node }

// app holds one invocation's flags and the node it opened.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	served         *served
	rawArgs        []string

	dataDir string
	debug   bool
	net     node.NetOptions

	node    *node.Node
	logFile io.Closer

	notifyCmd string // --notify: desktop notification command (UI only)
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "kchat",
		Short: "kchat is a peer-to-peer terminal chat",
		Long: `kchat is a peer-to-peer terminal chat. Each user writes to a personal, signed,
append-only feed; everyone holding a channel's key replicates all its feeds, over
libp2p, finding peers by mDNS on a LAN and the Kademlia DHT across the internet.

Run without a command to open the chat UI.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE:          a.runUI,
	}
	root.Flags().StringVar(&a.notifyCmd, "notify", "", "desktop notifications: for each mention you are not looking at, run `COMMAND` -- TITLE TEXT (no shell; TITLE and TEXT, which hold peer text, come after \"--\" and are also in $KCHAT_NOTIFY_TITLE and $KCHAT_NOTIFY_TEXT), e.g. 'notify-send -a kchat'")
	pf := root.PersistentFlags()
	pf.StringVar(&a.dataDir, "data", node.DefaultDataDir(), "data dir (identity, store, logs)")
	pf.BoolVar(&a.debug, "debug", false, "debug logging (to kchat.log in the data dir)")
	pf.StringArrayVar(&a.net.Listen, "listen", nil, "multiaddr to listen on (repeatable; default all interfaces, TCP and QUIC, random ports)")
	pf.StringArrayVar(&a.net.Peers, "peer", nil, "multiaddr of a peer to dial (repeatable)")
	pf.StringArrayVar(&a.net.Bootstrap, "bootstrap", nil, "DHT bootstrap multiaddr (repeatable; replaces the public list; 'none' for a first node)")
	pf.BoolVar(&a.net.NoMDNS, "no-mdns", false, "do not look for peers on the LAN with mDNS")
	pf.BoolVar(&a.net.NoDHT, "no-dht", false, "do not use the DHT")
	pf.BoolVar(&a.net.NoNAT, "no-nat", false, "no NAT port mapping")
	root.AddCommand(readOnlyOK(a.idCmd()), readOnlyOK(a.nickCmd()), a.newCmd(), a.joinCmd(), a.partCmd(), readOnlyOK(a.channelsCmd()),
		a.sendCmd(), readOnlyOK(a.readCmd()), readOnlyOK(a.searchCmd()), a.syncCmd(), a.seedCmd(), a.peersCmd(),
		a.blockCmd(), a.unblockCmd(), readOnlyOK(a.membersCmd()), a.modCmd())
	root.AddCommand(a.msgCmd(), readOnlyOK(a.msgsCmd())) // private messages: msg.go
	return root
}

// The log file: kchat.log in the data dir, capped at logMaxMiB and rotated
// with logBackups old files kept (kchat-<time>.log), so all of them together
// stay under 10 MiB whatever floods it; and rate-limited per message
// (internal/logx) so that one repeated line cannot bury the others.
const (
	logName           = "kchat.log"
	logMaxMiB         = 3
	logBackups        = 2
	logLinesPerSecond = 20
)

// logger opens the log: a file in the data dir, never the terminal. It
// also routes the libraries' logs (libp2p, kad-dht, zeroconf) into it.
func (a *app) logger() (*slog.Logger, error) {
	if a.served != nil {
		return slog.New(slog.DiscardHandler), nil
	}
	if err := os.MkdirAll(a.dataDir, 0o700); err != nil {
		return slog.New(slog.DiscardHandler), nil // opening the store says why
	}
	w, err := openLog(a.dataDir)
	if errors.Is(err, errUnsafeLog) {
		return nil, err
	}
	if err != nil {
		// A log that cannot be written (a read-only or full file system)
		// must not stop reading the history: no log then.
		return slog.New(slog.DiscardHandler), nil
	}
	a.logFile = w
	level := slog.LevelInfo
	if a.debug {
		level = slog.LevelDebug
	}
	l := slog.New(logx.RateLimit(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}), logLinesPerSecond, nil))
	discovery.RouteLibraryLogs(l)
	return l, nil
}

// errUnsafeLog: kchat.log is not a plain file kchat may write.
var errUnsafeLog = errors.New("unsafe log file")

// openLog returns the size-capped, rotating writer of dir's kchat.log. It
// refuses a kchat.log that is a symbolic link (someone could point it at a
// file of the user's to be overwritten) or not a regular file: the file is
// first opened (created 0600 if need be) with O_NOFOLLOW here, and the
// rotating writer, which opens by name, is handed the path only once it is
// known to be that regular file.
func openLog(dir string) (*lumberjack.Logger, error) {
	path := filepath.Join(dir, logName)
	// O_NONBLOCK: a FIFO planted there fails at once (ENXIO) instead of
	// blocking kchat until someone reads it; it changes nothing for a file.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	switch {
	case errors.Is(err, syscall.ELOOP):
		return nil, fmt.Errorf("%w: %s is a symbolic link; refusing to write through it (remove it)", errUnsafeLog, path)
	case errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ENXIO):
		return nil, fmt.Errorf("%w: %s is not a regular file; refusing to write to it", errUnsafeLog, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open log file: %w", err)
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file (%s); refusing to write to it", errUnsafeLog, path, fi.Mode().Type())
	}
	if li, err := os.Lstat(path); err != nil || !os.SameFile(fi, li) {
		return nil, fmt.Errorf("%w: %s changed while it was opened; refusing to write to it", errUnsafeLog, path)
	}
	return &lumberjack.Logger{Filename: path, MaxSize: logMaxMiB, MaxBackups: logBackups}, nil
}

// withNode gives fn the node for this data dir: the one this invocation runs
// in, the one running elsewhere (the whole command is then forwarded to it
// over the control socket), or one opened here (networked if withNet).
func (a *app) withNode(cmd *cobra.Command, withNet bool, fn func(context.Context, *node.Node) error) error {
	ctx := cmd.Context()
	if a.served != nil {
		return fn(ctx, a.served.node)
	}
	if _, err := os.Lstat(node.ControlSocket(a.dataDir)); err == nil {
		code, err := node.RunRemote(ctx, a.dataDir, a.rawArgs, a.stdin, a.stdout, a.stderr)
		if err == nil {
			return exitError{code}
		}
		if !errors.Is(err, node.ErrNoNode) {
			return err
		}
	}
	log, err := a.logger()
	if err != nil {
		return err
	}
	o := node.Options{DataDir: a.dataDir, Logger: log}
	if withNet {
		netOpts := a.net
		o.Net = &netOpts
	}
	n, err := node.Open(ctx, o)
	if errors.Is(err, node.ErrDiskFull) && cmd.Annotations[annReadOnlyOK] != "" {
		// A full disk must not lock the user out of their history.
		o.ReadOnly = true
		if n, err = node.Open(ctx, o); err == nil {
			fmt.Fprintln(a.stderr, "kchat: warning: the disk is full; the store is open read-only (free some space to send or sync)")
		}
	}
	if err != nil {
		return err
	}
	a.node = n
	return fn(ctx, n)
}

// annReadOnlyOK marks a command (cobra.Command.Annotations) that still works
// on a store opened read-only.
const annReadOnlyOK = "kchat/read-only-ok"

// readOnlyOK marks cmd as able to run read-only and returns it.
func readOnlyOK(cmd *cobra.Command) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[annReadOnlyOK] = "yes"
	return cmd
}

// exitIndexWait bounds how long a command waits, before it closes the
// store, for the views to index what it stored.
const exitIndexWait = 10 * time.Second

// closeNode closes the node this invocation opened; false if closing it
// failed (the error is printed).
func (a *app) closeNode() bool {
	ok := true
	if a.node != nil {
		if !a.node.ReadOnly() {
			// What this process stored is indexed before it exits: the
			// next one may have to open the store read-only (a full disk)
			// and could not index it then. Bounded; on failure the next
			// writable open indexes it.
			ctx, cancel := context.WithTimeout(context.Background(), exitIndexWait)
			_ = a.node.WaitIndexed(ctx)
			cancel()
		}
		if err := a.node.Close(); err != nil {
			fmt.Fprintf(a.stderr, "kchat: error: closing store: %v\n", err)
			ok = false
		}
		a.node = nil
	}
	if a.logFile != nil {
		a.logFile.Close()
		a.logFile = nil
	}
	return ok
}

// serve runs the control socket of a long-running node (seed, UI), so that
// headless commands of other processes use this node.
func (a *app) serve(ctx context.Context, n *node.Node) (*node.ControlServer, error) {
	return n.ServeControl(ctx, func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		return run(ctx, args, stdin, stdout, stderr, &served{node: n})
	})
}
