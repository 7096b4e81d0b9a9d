package node_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/internal/perm"
	"github.com/kchat-p2p/kchat/node"
)

func TestOpenRefusesUnsafeDataDir(t *testing.T) {
	ctx := context.Background()
	// A missing data dir is created 0700.
	dir := filepath.Join(t.TempDir(), "new", "data")
	n, err := node.Open(ctx, node.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir created with mode %04o", fi.Mode().Perm())
	}

	// A data dir others can write is refused, saying what to do.
	os.Chmod(dir, 0o777)
	_, err = node.Open(ctx, node.Options{DataDir: dir})
	if !errors.Is(err, perm.ErrUnsafe) || !strings.Contains(err.Error(), "run chmod 700 "+dir) {
		t.Fatalf("0777 data dir: %v", err)
	}
	os.Chmod(dir, 0o700)

	// A planted identity (mode 0666) is refused, not loaded.
	id := filepath.Join(dir, "identity")
	os.Chmod(id, 0o666)
	_, err = node.Open(ctx, node.Options{DataDir: dir})
	if !errors.Is(err, perm.ErrUnsafe) || !strings.Contains(err.Error(), "run chmod 600 "+id) {
		t.Fatalf("0666 identity: %v", err)
	}
	os.Chmod(id, 0o600)

	// A data dir, or an identity, of another user is refused.
	restore := perm.SetUIDForTest(4242)
	_, err = node.Open(ctx, node.Options{DataDir: dir})
	restore()
	if !errors.Is(err, perm.ErrUnsafe) || !strings.Contains(err.Error(), "data dir") {
		t.Fatalf("data dir of another user: %v", err)
	}
	if os.Getuid() == 0 {
		os.Chown(id, 4242, 4242)
		_, err = node.Open(ctx, node.Options{DataDir: dir})
		if !errors.Is(err, perm.ErrUnsafe) || !strings.Contains(err.Error(), "identity file") {
			t.Fatalf("identity of another user: %v", err)
		}
		os.Chown(id, 0, 0)
	}

	n, err = node.Open(ctx, node.Options{DataDir: dir})
	if err != nil {
		t.Fatalf("fixed data dir: %v", err)
	}
	n.Close()
}

// fakeControl listens on a unix socket at path, as a stranger's planted
// control.sock would, and reports every byte any client sends it.
func fakeControl(t *testing.T, path string) (conns func() int, got func() []byte) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	type res struct{ b []byte }
	ch := make(chan res, 16)
	n := 0
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				b, _ := io.ReadAll(c)
				ch <- res{b}
			}()
		}
	}()
	var all []byte
	drain := func() {
		for {
			select {
			case r := <-ch:
				n++
				all = append(all, r.b...)
			default:
				return
			}
		}
	}
	return func() int { drain(); return n }, func() []byte {
		// The client closes its end before RunRemote returns: a reader
		// that got a connection gets EOF at once. Wait for it.
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case r := <-ch:
				n++
				all = append(all, r.b...)
				return all
			case <-time.After(50 * time.Millisecond):
			}
		}
		return all
	}
}

func TestControlClientRefusesStrangersSocket(t *testing.T) {
	ctx := context.Background()
	secret := []string{"join", "kchat://" + strings.Repeat("ab", 32)}

	t.Run("socket of another user", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("needs root to give the socket to another user")
		}
		dir := t.TempDir()
		conns, _ := fakeControl(t, node.ControlSocket(dir))
		if err := os.Chown(node.ControlSocket(dir), 4242, 4242); err != nil {
			t.Fatal(err)
		}
		_, err := node.RunRemote(ctx, dir, secret, strings.NewReader("stdin"), io.Discard, io.Discard)
		if !errors.Is(err, perm.ErrUnsafe) || !strings.Contains(err.Error(), "control socket") || !strings.Contains(err.Error(), "owned by uid 4242") {
			t.Fatalf("RunRemote: %v", err)
		}
		if conns() != 0 {
			t.Fatal("the client connected to a socket of another user")
		}
	})

	t.Run("symlink", func(t *testing.T) {
		dir, elsewhere := t.TempDir(), t.TempDir()
		real := filepath.Join(elsewhere, "s")
		conns, _ := fakeControl(t, real)
		if err := os.Symlink(real, node.ControlSocket(dir)); err != nil {
			t.Fatal(err)
		}
		_, err := node.RunRemote(ctx, dir, secret, strings.NewReader("stdin"), io.Discard, io.Discard)
		if !errors.Is(err, perm.ErrUnsafe) || !strings.Contains(err.Error(), "symbolic link") {
			t.Fatalf("RunRemote: %v", err)
		}
		if conns() != 0 {
			t.Fatal("the client followed a symlinked control socket")
		}
	})

	t.Run("served by another uid", func(t *testing.T) {
		dir := t.TempDir()
		_, got := fakeControl(t, node.ControlSocket(dir))
		restore := node.SetPeerUIDForTest(4242)
		_, err := node.RunRemote(ctx, dir, secret, strings.NewReader("stdin"), io.Discard, io.Discard)
		restore()
		if !errors.Is(err, perm.ErrUnsafe) || !strings.Contains(err.Error(), "uid 4242") {
			t.Fatalf("RunRemote: %v", err)
		}
		if b := got(); len(b) != 0 {
			t.Fatalf("the client sent %q to a server of another user", b)
		}
	})

	t.Run("own node still works", func(t *testing.T) {
		dir := t.TempDir()
		n, err := node.Open(ctx, node.Options{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		srv, err := n.ServeControl(ctx, func(_ context.Context, args []string, _ io.Reader, stdout, _ io.Writer) int {
			io.WriteString(stdout, strings.Join(args, " "))
			return 3
		})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		var out bytes.Buffer
		code, err := node.RunRemote(ctx, dir, []string{"id"}, nil, &out, io.Discard)
		if err != nil || code != 3 || out.String() != "id" {
			t.Fatalf("own node: %d %q %v", code, out.String(), err)
		}
	})
}

func TestInvisibleCharactersRefusedInNames(t *testing.T) {
	ctx := context.Background()
	n, err := node.Open(ctx, node.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, bad := range []string{"alice\u200b", "al\u2060ice", "\ufeffalice", "alice\u202e"} {
		if err := n.SetNick(ctx, bad); !errors.Is(err, node.ErrInvisible) || !strings.Contains(err.Error(), "remove it") {
			t.Errorf("nick %q: %v", bad, err)
		}
		if _, err := n.Create(ctx, "gen"+bad); err == nil || !strings.Contains(err.Error(), "invisible character") {
			t.Errorf("channel name %q: %v", "gen"+bad, err)
		}
	}
	if n.Nick() != "" {
		t.Fatalf("a refused nick was saved: %q", n.Nick())
	}
	if err := n.SetNick(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Create(ctx, "general"); err != nil {
		t.Fatal(err)
	}
}
