package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kchat-p2p/kchat/internal/perm"
	"golang.org/x/sys/unix"
)

// The control socket lets headless commands (send, read, sync, channels...)
// run against a node that holds the data dir (Badger allows one process per
// dir). It is a unix socket in the data dir; the dir is mode 0700 and the
// socket 0600, so only the owner can use it.
//
// Wire: the client sends one JSON line {"args":[...]} then streams its stdin
// and half-closes. The server answers with JSON lines {"out":"<base64>"},
// {"err":"<base64>"} and finally {"exit":N}.

// ControlSocket is the path of the control socket of a data dir.
func ControlSocket(dataDir string) string { return filepath.Join(dataDir, "control.sock") }

// Command runs one CLI invocation inside the running node.
type Command func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int

type controlRequest struct {
	Args []string `json:"args"`
}

// Out and Err carry raw bytes (base64 in JSON): a Write may end inside a
// UTF-8 sequence, and a JSON string would replace its halves with U+FFFD.
type controlReply struct {
	Out  []byte `json:"out,omitempty"`
	Err  []byte `json:"err,omitempty"`
	Exit *int   `json:"exit,omitempty"`
}

// ControlServer serves the control socket until ctx ends or Close.
type ControlServer struct {
	ln     net.Listener
	path   string
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// ServeControl starts the control socket of the node's data dir. A stale
// socket left by a crashed node is replaced: holding the store lock proves
// no other node runs here.
func (n *Node) ServeControl(ctx context.Context, run Command) (*ControlServer, error) {
	path := ControlSocket(n.dir)
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &ControlServer{ln: ln, path: path, cancel: cancel}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		<-ctx.Done()
		ln.Close()
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				serveConn(ctx, c, run, n.log)
			}()
		}
	}()
	return s, nil
}

// Close stops the server, waits for running commands, removes the socket.
func (s *ControlServer) Close() error {
	s.cancel()
	s.wg.Wait()
	os.Remove(s.path)
	return nil
}

// lockedWriter serialises replies from stdout and stderr writers.
type lockedWriter struct {
	mu  *sync.Mutex
	enc *json.Encoder
	err bool
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := controlReply{Out: p}
	if w.err {
		r = controlReply{Err: p}
	}
	if err := w.enc.Encode(r); err != nil {
		return 0, err
	}
	return len(p), nil
}

func serveConn(ctx context.Context, c net.Conn, run Command, log *slog.Logger) {
	br := bufio.NewReader(c)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return
	}
	var req controlRequest
	if err := json.Unmarshal(line, &req); err != nil {
		log.Warn("control: bad request", "err", err)
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	enc := json.NewEncoder(c)
	stdout := lockedWriter{mu: &mu, enc: enc}
	stderr := lockedWriter{mu: &mu, enc: enc, err: true}
	code := run(ctx, req.Args, br, stdout, stderr)
	mu.Lock()
	enc.Encode(controlReply{Exit: &code})
	mu.Unlock()
}

// ErrNoNode means no node is serving the data dir.
var ErrNoNode = errors.New("no running node")

// peerUID returns the uid of the process at the other end of c (the
// kernel's SO_PEERCRED). A variable so that tests, which run as root, can
// play a server run by another user.
var peerUID = socketPeerUID

// RunRemote runs args in the node serving dataDir, copying stdin to it and
// its output to stdout/stderr. It returns ErrNoNode when none is running.
//
// Nothing is sent before the socket is known to be the current user's: the
// data dir must pass perm.CheckDir, the socket file must be a socket (not a
// symlink) owned by the current user, and the process serving it must run
// as the current user (SO_PEERCRED). Otherwise the error wraps
// perm.ErrUnsafe: a socket planted by another user would receive the
// command line (a channel key, for `join`) and stdin.
func RunRemote(ctx context.Context, dataDir string, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	path := ControlSocket(dataDir)
	if _, err := os.Lstat(path); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoNode, err)
	}
	if err := perm.CheckDir("data dir", dataDir); err != nil {
		return 0, err
	}
	if err := perm.CheckSocket("control socket", path); err != nil {
		return 0, err
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	c, err := d.DialContext(dctx, "unix", path)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoNode, err)
	}
	defer c.Close()
	uc := c.(*net.UnixConn)
	if u, err := peerUID(uc); err != nil {
		return 0, fmt.Errorf("control socket %s: checking who serves it: %w", path, err)
	} else if int(u) != perm.UID() {
		return 0, fmt.Errorf("%w: control socket %s is served by a process of uid %d, not yours (uid %d): stop it, remove the socket, and keep the data dir private",
			perm.ErrUnsafe, path, u, perm.UID())
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	b, _ := json.Marshal(controlRequest{Args: args})
	if _, err := c.Write(append(b, '\n')); err != nil {
		return 0, fmt.Errorf("control socket: %w", err)
	}
	go func() {
		if stdin != nil {
			io.Copy(c, stdin)
		}
		uc.CloseWrite()
	}()
	dec := json.NewDecoder(c)
	for {
		var r controlReply
		if err := dec.Decode(&r); err != nil {
			return 1, fmt.Errorf("control socket closed before the command finished: %w", err)
		}
		if len(r.Out) > 0 {
			if _, err := stdout.Write(r.Out); err != nil {
				return 1, fmt.Errorf("control socket: writing output: %w", err)
			}
		}
		if len(r.Err) > 0 {
			stderr.Write(r.Err)
		}
		if r.Exit != nil {
			return *r.Exit, nil
		}
	}
}

// socketPeerUID is the uid of the peer process of a unix socket connection.
func socketPeerUID(c *net.UnixConn) (uint32, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("SO_PEERCRED: %w", serr)
	}
	return cred.Uid, nil
}
