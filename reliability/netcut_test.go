package reliability_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Cutting links between in-process nodes, the way a network failure does.
//
// Every node listens on its own loopback TCP port, and libp2p's TCP
// transport dials from its listen port (SO_REUSEPORT), so a connection
// between nodes i and j is a socket pair with ports {P_i, P_j} at both ends;
// both sockets belong to this process. A cut shuts both down
// (shutdown(2), SHUT_RDWR): reads see EOF, writes fail, libp2p drops the
// connection and every sync session on it. Nothing in kchat is told: the
// link just dies, and nothing reconnects it until the test does.

// sock is one established TCP socket of this process.
type sock struct {
	fd            int
	inode         uint64
	local, remote int // ports
}

// establishedSockets lists the established loopback IPv4 TCP sockets held
// by this process.
func establishedSockets() ([]sock, error) {
	fds := map[uint64]int{}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || !strings.HasPrefix(l, "socket:[") {
			continue
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]"), 10, 64)
		if err != nil {
			continue
		}
		fd, _ := strconv.Atoi(e.Name())
		fds[ino] = fd
	}
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []sock
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 || fs[3] != "01" { // 01: ESTABLISHED
			continue
		}
		ino, err := strconv.ParseUint(fs[9], 10, 64)
		if err != nil {
			continue
		}
		fd, ok := fds[ino]
		if !ok {
			continue
		}
		lp, err1 := hexPort(fs[1])
		rp, err2 := hexPort(fs[2])
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, sock{fd: fd, inode: ino, local: lp, remote: rp})
	}
	return out, sc.Err()
}

func hexPort(addr string) (int, error) {
	i := strings.IndexByte(addr, ':')
	if i < 0 {
		return 0, fmt.Errorf("address %q", addr)
	}
	p, err := strconv.ParseUint(addr[i+1:], 16, 16)
	return int(p), err
}

// links maps the established connections between the nodes listening on
// ports to node-index pairs (i < j).
func links(ports []int) (map[[2]int]bool, error) {
	idx := map[int]int{}
	for i, p := range ports {
		idx[p] = i
	}
	ss, err := establishedSockets()
	if err != nil {
		return nil, err
	}
	out := map[[2]int]bool{}
	for _, s := range ss {
		i, ok1 := idx[s.local]
		j, ok2 := idx[s.remote]
		if ok1 && ok2 && i != j {
			out[[2]int{min(i, j), max(i, j)}] = true
		}
	}
	return out, nil
}

// cut shuts down every connection between nodes i and j (by their listen
// ports) for which pred(i, j) holds, and returns how many sockets it shut.
func cut(ports []int, pred func(i, j int) bool) (int, error) {
	idx := map[int]int{}
	for i, p := range ports {
		idx[p] = i
	}
	ss, err := establishedSockets()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range ss {
		i, ok1 := idx[s.local]
		j, ok2 := idx[s.remote]
		if !ok1 || !ok2 || i == j || !pred(i, j) {
			continue
		}
		// The fd may have been closed and reused since the scan: shut it
		// only if it is still the same socket.
		var st syscall.Stat_t
		if err := syscall.Fstat(s.fd, &st); err != nil || st.Ino != s.inode {
			continue
		}
		if err := syscall.Shutdown(s.fd, syscall.SHUT_RDWR); err == nil {
			n++
		}
	}
	return n, nil
}
