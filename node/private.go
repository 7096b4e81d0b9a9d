package node

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/seal"
	"github.com/kchat-p2p/kchat/views"
)

// Private messages (issue 16) are sealed entries (kind 8, package seal) in
// the sender's feed of a channel both people are in: replicated and relayed
// like any entry, readable only by the recipient and the sender.

// ErrNoSharedChannel: no joined channel has the recipient among its authors.
var ErrNoSharedChannel = errors.New("no channel you share")

// FindRecipient resolves WHO (a nick as displayed, an author id, or a
// unique id prefix of at least 8 hex digits) for a private message, and the
// channel to carry it: via if not "", else the joined channel where WHO's
// newest entry arrived most recently. WHO must have written in that
// channel (that is how its peers know them).
func (n *Node) FindRecipient(who, via string) (feed.Channel, feed.AuthorID, error) {
	if via != "" {
		c, err := n.Resolve(via)
		if err != nil {
			return c, feed.AuthorID{}, err
		}
		a, err := n.memberOf(c, who)
		return c, a, err
	}
	chans, err := n.Channels()
	if err != nil {
		return feed.Channel{}, feed.AuthorID{}, err
	}
	type hit struct {
		c    feed.Channel
		last int64
	}
	found := map[feed.AuthorID]hit{}
	var ambiguous, notFound error
	for _, c := range chans {
		a, err := n.memberOf(c, who)
		switch {
		case errors.Is(err, views.ErrAmbiguousAuthor):
			ambiguous = fmt.Errorf("in %s: %w", c.Name, err)
			continue
		case errors.Is(err, views.ErrNoSuchAuthor):
			notFound = err
			continue
		case err != nil:
			return c, a, err
		}
		last := int64(-1)
		if ms, err := n.views.Members(c.ID()); err == nil {
			for _, m := range ms {
				if m.Author == a && !m.LastArrival.IsZero() {
					last = m.LastArrival.UnixMilli()
				}
			}
		}
		if h, ok := found[a]; !ok || last > h.last {
			found[a] = hit{c, last}
		}
	}
	switch {
	case len(found) == 1:
		for a, h := range found {
			return h.c, a, nil
		}
	case len(found) > 1:
		var ids []string
		for a, h := range found {
			ids = append(ids, fmt.Sprintf("%s in %s", a.Short(), h.c.Name))
		}
		return feed.Channel{}, feed.AuthorID{}, fmt.Errorf("%w: %q is more than one author (%s): give more of the id",
			views.ErrAmbiguousAuthor, who, strings.Join(ids, ", "))
	case ambiguous != nil:
		return feed.Channel{}, feed.AuthorID{}, ambiguous
	case notFound != nil && len(who) < views.MinIDPrefix && strings.Trim(strings.ToLower(who), "0123456789abcdef") == "":
		return feed.Channel{}, feed.AuthorID{}, notFound // says how many hex digits to give
	}
	return feed.Channel{}, feed.AuthorID{}, fmt.Errorf("%w with %q: they must have written in a channel you joined", ErrNoSharedChannel, who)
}

// memberOf resolves who among the authors of c; a full id must be one.
func (n *Node) memberOf(c feed.Channel, who string) (feed.AuthorID, error) {
	a, err := n.ResolveAuthor(c.ID(), who)
	if err != nil {
		return a, err
	}
	ms, err := n.views.Members(c.ID())
	if err != nil {
		return a, err
	}
	for _, m := range ms {
		if m.Author == a {
			return a, nil
		}
	}
	return a, fmt.Errorf("%w: %s has written nothing in %s", views.ErrNoSuchAuthor, a.Short(), c.Name)
}

// SendPrivate seals text to author to and appends it to the local user's
// feed of channel ch: only to and the local user can read it; every peer of
// ch carries it.
func (n *Node) SendPrivate(ctx context.Context, ch feed.DiscoveryID, to feed.AuthorID, text string) (feed.Entry, error) {
	if n.readOnly {
		return feed.Entry{}, fmt.Errorf("private message: %w", ErrReadOnly)
	}
	if strings.TrimSpace(text) == "" {
		return feed.Entry{}, fmt.Errorf("%w: empty message", feed.ErrBadPayload)
	}
	toKey, err := seal.PublicFromEd25519(to[:])
	if err != nil {
		return feed.Entry{}, fmt.Errorf("private message to %s: %w", to.Short(), err)
	}
	self := n.Self()
	sealed, err := seal.Seal(nil, seal.Message{From: self, To: to, Text: text}, toKey, n.id.BoxKey().Public())
	if err != nil {
		return feed.Entry{}, fmt.Errorf("private message: %w", err)
	}
	es, err := n.Send(ctx, ch, feed.Payload{Kind: feed.KindSealed, Sealed: sealed})
	if err != nil {
		return feed.Entry{}, err
	}
	return es[0], nil
}
