package node

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kchat-p2p/kchat/feed"
)

// The block list hides authors locally (their entries are still stored and
// replicated: blocking is a view choice, not a protocol one). It is a text
// file in the data dir, one author id per line.

func (n *Node) blockPath() string { return filepath.Join(n.dir, "blocked") }

// Blocked returns the set of blocked authors.
func (n *Node) Blocked() map[feed.AuthorID]bool {
	n.nickMu.Lock()
	defer n.nickMu.Unlock()
	out, err := n.readBlocked()
	if err != nil {
		n.log.Warn("read block list", "err", err)
	}
	return out
}

func (n *Node) readBlocked() (map[feed.AuthorID]bool, error) {
	out := map[feed.AuthorID]bool{}
	b, err := os.ReadFile(n.blockPath())
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		a, err := feed.ParseAuthorID(line)
		if err != nil {
			return out, fmt.Errorf("block list: %w", err)
		}
		out[a] = true
	}
	return out, nil
}

func (n *Node) writeBlocked(set map[feed.AuthorID]bool) error {
	var lines []string
	for a := range set {
		lines = append(lines, a.String())
	}
	sort.Strings(lines)
	tmp := n.blockPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("save block list: %w", err)
	}
	return os.Rename(tmp, n.blockPath())
}

// Block hides author a locally.
func (n *Node) Block(a feed.AuthorID) error { return n.setBlocked(a, true) }

// Unblock shows author a again.
func (n *Node) Unblock(a feed.AuthorID) error { return n.setBlocked(a, false) }

func (n *Node) setBlocked(a feed.AuthorID, on bool) error {
	if on && a == n.Self() {
		return errors.New("you cannot block yourself")
	}
	n.nickMu.Lock()
	defer n.nickMu.Unlock()
	set, err := n.readBlocked()
	if err != nil {
		return err
	}
	if on {
		set[a] = true
	} else {
		delete(set, a)
	}
	return n.writeBlocked(set)
}
