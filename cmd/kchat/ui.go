package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/node"
	"github.com/kchat-p2p/kchat/ui"
	"github.com/spf13/cobra"
)

func (a *app) runUI(cmd *cobra.Command, _ []string) error {
	if a.served != nil {
		return errors.New("a node is already running on this data dir")
	}
	if _, err := os.Stat(node.ControlSocket(a.dataDir)); err == nil {
		if code, err := node.RunRemote(cmd.Context(), a.dataDir, []string{"id"}, nil, discard{}, discard{}); err == nil && code == 0 {
			return fmt.Errorf("kchat is already running on %s (a UI, a seed or a read --follow: one per data dir; stop it or use another --data)", a.dataDir)
		}
	}
	kb, err := loadKeys(filepath.Join(a.dataDir, "keys"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	log, err := a.logger()
	if err != nil {
		return err
	}
	a.net.Redial = true // peers seen before are redialled, wherever discovery is off
	n, err := node.Open(ctx, node.Options{DataDir: a.dataDir, Logger: log, Net: &a.net})
	if err != nil {
		return err
	}
	a.node = n
	srv, err := a.serve(ctx, n)
	if err != nil {
		return err
	}
	defer srv.Close()
	opts := []ui.Option{ui.WithLogger(log), ui.WithKeyBindings(kb),
		ui.WithStateFile(filepath.Join(a.dataDir, "ui-state.json"))}
	if a.notifyCmd != "" {
		notify, err := notifier(a.notifyCmd)
		if err != nil {
			return err
		}
		opts = append(opts, ui.WithNotify(notify))
	}
	return ui.Run(ctx, newUIBackend(ctx, n), opts...)
}

// loadKeys reads the UI's key bindings from path (none if it does not exist).
func loadKeys(path string) (ui.KeyBindings, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("key bindings: %w", err)
	}
	defer f.Close()
	kb, err := ui.ParseKeyBindings(f)
	if err != nil {
		return nil, fmt.Errorf("key bindings in %s: %w", path, err)
	}
	return kb, nil
}

// notifier runs command (split at spaces, no shell) with "--" and then a
// mention's title and body appended as two arguments, for desktop
// notifications: e.g. "notify-send -a kchat" on Linux. The "--" ends the
// command's options: the title and body hold peer text, which may start
// with "-" ("--icon=..."). They are also in the environment, as
// KCHAT_NOTIFY_TITLE and KCHAT_NOTIFY_TEXT, for commands that do not
// understand "--". It returns once the command started; a command still
// running after 10 s is killed.
func notifier(command string) (func(ctx context.Context, title, body string) error, error) {
	argv := strings.Fields(command)
	if len(argv) == 0 {
		return nil, errors.New("--notify: empty command")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("--notify: %w", err)
	}
	return func(ctx context.Context, title, body string) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		args := append(slices.Clone(argv[1:]), "--", title, body)
		cmd := exec.CommandContext(ctx, path, args...)
		cmd.Env = append(os.Environ(), "KCHAT_NOTIFY_TITLE="+title, "KCHAT_NOTIFY_TEXT="+body)
		if err := cmd.Start(); err != nil {
			cancel()
			return fmt.Errorf("notify: %w", err)
		}
		go func() { // reaps the process; ends with it or at the timeout
			defer cancel()
			cmd.Wait()
		}()
		return nil
	}, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// uiBackend adapts the node to the UI's Backend interface.
type uiBackend struct {
	*node.Node
	netc   chan struct{}
	statec <-chan struct{}
}

// newUIBackend starts the goroutine (stopped by ctx) that turns the node's
// network changes and a slow tick (for "last seen" and discovery state)
// into the UI's coalescing NetChanged signal.
func newUIBackend(ctx context.Context, n *node.Node) *uiBackend {
	b := &uiBackend{Node: n, netc: make(chan struct{}, 1)}
	state := n.Changed()
	context.AfterFunc(ctx, state.Close)
	b.statec = state.C()
	var changed <-chan struct{}
	if sub := n.NetChanged(); sub != nil {
		changed = sub.C()
		context.AfterFunc(ctx, sub.Close)
	}
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			case <-t.C:
			}
			select {
			case b.netc <- struct{}{}:
			default:
			}
		}
	}()
	return b
}

func (b *uiBackend) Views() ui.Reader { return b.Node.Views() }

func (b *uiBackend) Send(ctx context.Context, ch feed.DiscoveryID, p feed.Payload) error {
	_, err := b.Node.Send(ctx, ch, p)
	return err
}

func (b *uiBackend) Status(ch feed.DiscoveryID) ui.NetStatus {
	var s ui.NetStatus
	var want uint64
	for _, p := range b.Node.Peers(ch) {
		if p.Connected || p.Syncing {
			s.Peers++
		} else {
			s.Known++
		}
		want += p.Want
	}
	if want > 0 {
		have, _ := b.Node.Views().Count(ch)
		s.Have, s.Want = uint64(have), uint64(have)+want
	}
	s.Searching = len(b.Node.Addrs()) > 0 && s.Peers == 0
	if forks, err := b.Node.Store().Forks(ch); err == nil {
		for _, f := range forks {
			s.Forked = append(s.Forked, ui.Forked{Author: f.Author, Display: b.Node.Views().Display(ch, f.Author), Seq: f.Seq})
		}
	}
	return s
}

func (b *uiBackend) Peers(ch feed.DiscoveryID) []ui.PeerInfo {
	var out []ui.PeerInfo
	for _, p := range b.Node.Peers(ch) {
		out = append(out, ui.PeerInfo{ID: p.ID, Source: p.Source, Connected: p.Connected || p.Syncing, LastSeen: p.LastSeen})
	}
	return out
}

func (b *uiBackend) NetChanged() <-chan struct{} { return b.netc }

// Connect dials a peer and syncs every channel shared with it.
func (b *uiBackend) Connect(ctx context.Context, addr string) ([]string, error) {
	res, err := b.Node.Connect(ctx, addr)
	return res.Channels, err
}

// StateChanged is the node's Changed signal: joins, parts, nick changes
// and blocks, also those made by `kchat join` etc. through the control
// socket while the UI runs.
func (b *uiBackend) StateChanged() <-chan struct{} { return b.statec }

// Members adapts the node's members to the UI's.
func (b *uiBackend) Members(ch feed.DiscoveryID) ([]ui.Member, error) {
	ms, err := b.Node.Members(ch)
	if err != nil {
		return nil, err
	}
	out := make([]ui.Member, len(ms))
	for i, m := range ms {
		out[i] = ui.Member{Author: m.Author, Nick: m.Nick, Display: m.Display, Messages: m.Messages, Blocked: m.Blocked, Hidden: m.Hidden, Forked: m.Forked,
			Role: m.Role, LastArrival: m.LastArrival}
	}
	return out, nil
}
