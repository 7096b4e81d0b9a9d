package node

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/views"
)

// The block list is per channel and kept by the feed store (feed/block.go):
// a blocked author's feed is no longer stored, so it is not forwarded
// either, and with purge what was stored of it is deleted. The UI hides
// blocked authors' messages and does not count or ring for them.
//
// Before, the list was one file in the data dir ("blocked", one author id a
// line) that only hid messages; Open migrates it (see migrateBlocked).

// ErrBlockSelf is returned for an attempt to block the local user.
var ErrBlockSelf = errors.New("you cannot block yourself")

func (n *Node) oldBlockPath() string { return filepath.Join(n.dir, "blocked") }

// migrateBlocked moves the old global block file onto the store's
// per-channel lists: each author in it becomes blocked in every joined
// channel; the file is then renamed to blocked.migrated. A file that cannot
// be read is left in place (and logged): the migration is tried again at the
// next open.
func (n *Node) migrateBlocked() error {
	path := n.oldBlockPath()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("migrate block list: %w", err)
	}
	var authors []feed.AuthorID
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		a, err := feed.ParseAuthorID(line)
		if err != nil {
			return fmt.Errorf("migrate block list %s: %w", path, err)
		}
		authors = append(authors, a)
	}
	chans, err := n.store.Channels()
	if err != nil {
		return fmt.Errorf("migrate block list: %w", err)
	}
	for _, c := range chans {
		for _, a := range authors {
			if a == n.Self() {
				continue
			}
			if err := n.store.Block(c.ID(), a); err != nil {
				return fmt.Errorf("migrate block list: %w", err)
			}
		}
	}
	if err := os.Rename(path, path+".migrated"); err != nil {
		return fmt.Errorf("migrate block list: %w", err)
	}
	n.log.Info("block list migrated to per-channel lists", "authors", len(authors), "channels", len(chans))
	return nil
}

// Blocked returns the authors blocked in any joined channel (what the UI
// hides).
func (n *Node) Blocked() map[feed.AuthorID]bool {
	out := map[feed.AuthorID]bool{}
	chans, err := n.store.Channels()
	if err != nil {
		n.log.Warn("read block list", "err", err)
		return out
	}
	for _, c := range chans {
		for a := range n.BlockedIn(c.ID()) {
			out[a] = true
		}
	}
	return out
}

// BlockedIn returns the authors blocked in channel ch.
func (n *Node) BlockedIn(ch feed.DiscoveryID) map[feed.AuthorID]bool {
	out := map[feed.AuthorID]bool{}
	as, err := n.store.BlockedAuthors(ch)
	if err != nil {
		n.log.Warn("read block list", "channel", ch.Short(), "err", err)
	}
	for _, a := range as {
		out[a] = true
	}
	return out
}

// Block blocks author a in channel ch: their feed is no longer stored or
// forwarded and the UI hides them. With purge, everything stored of their
// feed in ch is deleted too, and their rows leave the views.
func (n *Node) Block(ctx context.Context, ch feed.DiscoveryID, a feed.AuthorID, purge bool) error {
	if n.readOnly {
		return fmt.Errorf("block: %w", ErrReadOnly)
	}
	if a == n.Self() {
		return ErrBlockSelf
	}
	if _, err := n.store.Channel(ch); err != nil {
		return err
	}
	if err := n.store.Block(ch, a); err != nil {
		return err
	}
	defer n.changed.Notify()
	if !purge {
		return nil
	}
	if err := n.store.Purge(ctx, ch, a); err != nil {
		return err
	}
	return n.dropFromViews(ctx, func(ctx context.Context) error { return n.views.DropAuthor(ctx, ch, a) })
}

// Unblock lifts a block of author a in channel ch: their feed is accepted
// again (from seq 0 if it was purged).
func (n *Node) Unblock(ch feed.DiscoveryID, a feed.AuthorID) error {
	if n.readOnly {
		return fmt.Errorf("unblock: %w", ErrReadOnly)
	}
	if _, err := n.store.Channel(ch); err != nil {
		return err
	}
	if err := n.store.Unblock(ch, a); err != nil {
		return err
	}
	n.changed.Notify()
	return nil
}

// PurgeChannel leaves channel ch and deletes everything stored of it: its
// feeds, and its rows in the views. Its block list stays (joining again
// keeps blocked authors out).
func (n *Node) PurgeChannel(ctx context.Context, ch feed.DiscoveryID) error {
	if n.readOnly {
		return fmt.Errorf("part: %w", ErrReadOnly)
	}
	if _, err := n.store.Channel(ch); err != nil {
		return err
	}
	if n.net != nil {
		n.net.leave(ch)
	}
	defer n.changed.Notify()
	if err := n.store.PurgeChannel(ctx, ch); err != nil {
		return err
	}
	return n.dropFromViews(ctx, func(ctx context.Context) error { return n.views.DropChannel(ctx, ch) })
}

// dropFromViews runs a views drop (which first waits for the indexer) with
// a bound on the wait.
func (n *Node) dropFromViews(ctx context.Context, drop func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return drop(ctx)
}

// Member is one author of a channel as `kchat members` shows them.
type Member struct {
	views.Member
	Forked  bool // the author signed two entries at one seq (Store.Forks)
	Blocked bool
	// Throttled: the author went over their storage budget within the last
	// minute (feed.Budget): further entries arrive slowly.
	Throttled bool
	// Role is the author's moderation role for the local user
	// (views.RoleAdmin, views.RoleMod or ""); Hidden: moderation hides the
	// author. Blocked includes a block by moderation.
	Role   string
	Hidden bool
}

// Members lists the authors of channel ch: everyone the views indexed an
// entry of, and blocked authors (whose rows a purge may have removed).
func (n *Node) Members(ch feed.DiscoveryID) ([]Member, error) {
	vms, err := n.views.Members(ch)
	if err != nil {
		return nil, err
	}
	forks, err := n.store.Forks(ch)
	if err != nil {
		return nil, err
	}
	forked := map[feed.AuthorID]bool{}
	for _, f := range forks {
		forked[f.Author] = true
	}
	blocked := n.BlockedIn(ch)
	mod, err := n.Moderation(ch)
	if err != nil {
		return nil, err
	}
	for a := range mod.Blocked {
		blocked[a] = true
	}
	seen := map[feed.AuthorID]bool{}
	out := make([]Member, 0, len(vms))
	for _, m := range vms {
		seen[m.Author] = true
		_, hidden := mod.HiddenAuthors[m.Author]
		out = append(out, Member{Member: m, Forked: forked[m.Author], Blocked: blocked[m.Author],
			Throttled: n.store.Throttled(ch, m.Author), Role: mod.Role(m.Author), Hidden: hidden})
	}
	extra := make([]feed.AuthorID, 0, len(blocked))
	for a := range blocked {
		if !seen[a] {
			extra = append(extra, a)
		}
	}
	slices.SortFunc(extra, func(x, y feed.AuthorID) int { return bytes.Compare(x[:], y[:]) })
	for _, a := range extra {
		{
			_, hidden := mod.HiddenAuthors[a]
			out = append(out, Member{Member: views.Member{Author: a, Display: a.Short()}, Forked: forked[a], Blocked: true, Hidden: hidden})
		}
	}
	return out, nil
}

// ResolveAuthor finds the author WHO means in channel ch (see
// views.FindMember): a 64-hex id, a nickname as displayed, or a unique id
// prefix of at least 8 hex digits.
func (n *Node) ResolveAuthor(ch feed.DiscoveryID, who string) (feed.AuthorID, error) {
	ms, err := n.Members(ch)
	if err != nil {
		return feed.AuthorID{}, err
	}
	vms := make([]views.Member, len(ms))
	for i := range ms {
		vms[i] = ms[i].Member
	}
	return views.FindMember(vms, who)
}
