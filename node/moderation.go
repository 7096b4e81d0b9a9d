package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/views"
)

// Moderation (docs/protocol.md §3.1): moderation entries are written to the
// moderator's own feed; the views compute, per channel, what they do for the
// local user (views.Moderation). A block by a followed moderator acts as a
// local block: the node hands the blocked authors to the store
// (feed.Store.SetModBlocked), which then neither stores nor forwards their
// feeds. The node keeps that set current from the views (watchModeration).

// ErrModSelf is returned for a moderation action against oneself.
var ErrModSelf = errors.New("you cannot moderate yourself")

// Moderation returns what moderation does for the local user in channel ch.
func (n *Node) Moderation(ch feed.DiscoveryID) (*views.ModState, error) {
	c, err := n.store.Channel(ch)
	if err != nil {
		return nil, err
	}
	return n.views.Moderation(ch, c.Admins.IDs())
}

// Mod appends a moderation entry to the local user's feed in ch: action
// about author target, or, for hide and unhide with msg set, about
// target's message seq.
func (n *Node) Mod(ctx context.Context, ch feed.DiscoveryID, action feed.ModAction, target feed.AuthorID, msg bool, seq uint64, reason string) (feed.Entry, error) {
	if n.readOnly {
		return feed.Entry{}, fmt.Errorf("mod: %w", ErrReadOnly)
	}
	if target == n.Self() && !msg {
		return feed.Entry{}, ErrModSelf
	}
	if _, err := n.store.Channel(ch); err != nil {
		return feed.Entry{}, err
	}
	p := feed.Payload{Kind: feed.KindMod, Action: action, Reason: reason}
	if msg {
		p.Ref = feed.NewRef(target, seq)
	} else {
		p.Target = append([]byte(nil), target[:]...)
	}
	es, err := n.Send(ctx, ch, p)
	if err != nil {
		return feed.Entry{}, fmt.Errorf("mod: %w", err)
	}
	return es[0], nil
}

// Follow sets whether the local user follows author a's moderation in ch
// (a local setting, not an entry).
func (n *Node) Follow(ch feed.DiscoveryID, a feed.AuthorID, follow bool) error {
	if n.readOnly {
		return fmt.Errorf("follow: %w", ErrReadOnly)
	}
	if _, err := n.store.Channel(ch); err != nil {
		return err
	}
	if err := n.views.SetFollow(ch, a, follow); err != nil {
		return err
	}
	n.moderationChanged()
	return nil
}

// settleModeration applies the moderation blocks if moderation may have
// changed since they were last applied.
func (n *Node) settleModeration() {
	if n.readOnly {
		return
	}
	n.modMu.Lock()
	defer n.modMu.Unlock()
	if g := n.views.ModGeneration(); g != n.modApplied || !n.modInit {
		n.modApplied, n.modInit = g, true
		n.applyModeration()
	}
}

// moderationChanged applies the moderation blocks now.
func (n *Node) moderationChanged() {
	if n.readOnly {
		return
	}
	n.modMu.Lock()
	defer n.modMu.Unlock()
	n.modApplied, n.modInit = n.views.ModGeneration(), true
	n.applyModeration()
}

// applyModeration hands the store the authors moderation blocks in every
// joined channel. Called with modMu held.
func (n *Node) applyModeration() {
	chans, err := n.store.Channels()
	if err != nil {
		n.log.Warn("moderation", "err", err)
		return
	}
	for _, c := range chans {
		s, err := n.views.Moderation(c.ID(), c.Admins.IDs())
		if err != nil {
			n.log.Warn("moderation", "channel", c.Name, "err", err)
			continue
		}
		set := make(map[feed.AuthorID]bool, len(s.Blocked))
		for a := range s.Blocked {
			set[a] = true
		}
		n.store.SetModBlocked(c.ID(), set)
	}
}

// watchModeration keeps the store's moderation blocks current: after every
// change of the views that may change moderation.
func (n *Node) watchModeration(ctx context.Context) {
	sub := n.views.Subscribe()
	defer sub.Close()
	for {
		n.settleModeration()
		select {
		case <-ctx.Done():
			return
		case <-sub.C():
		}
	}
}

// ModEvents lists the moderation entries of ch indexed after arrival number
// after (views.ModEvents).
func (n *Node) ModEvents(ch feed.DiscoveryID, after uint64, limit int) ([]views.ModEntry, error) {
	return n.views.ModEvents(ch, after, limit)
}

// ModGeneration changes whenever moderation may have changed.
func (n *Node) ModGeneration() uint64 { return n.views.ModGeneration() }
