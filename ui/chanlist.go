package ui

import (
	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/views"
)

// chanInfo is what the UI knows about one joined channel.
type chanInfo struct {
	ch     feed.Channel
	id     feed.DiscoveryID
	unread views.Unread
	topic  string
	net    NetStatus
	priv   *privConv // a private conversation, not a channel (private.go)
	search struct {
		query string
		next  views.Cursor   // where the last /search of query stopped ("" at the start)
		found []views.Cursor // the matches shown last, for /goto N
	}
}

// chanList is the ordered list of joined channels and the current one.
// cur is -1 when no channel is joined (the status window is shown).
type chanList struct {
	chans []*chanInfo
	cur   int
	// order is the user's order of the channels: the order they were
	// joined in (the store lists them by name). A channel joined is added
	// at the end, so that the numbers of the others (Alt+N) never move.
	order []feed.DiscoveryID
}

// set replaces the list, keeping what is known about channels that stay
// and the current channel if it stays. Channels keep their place in
// order; new ones (in the order given: by name, as the store lists them)
// come after them, and channels no longer joined leave order. It returns
// the channels that are new.
func (l *chanList) set(chs []feed.Channel) (added []*chanInfo) {
	byID := make(map[feed.DiscoveryID]feed.Channel, len(chs))
	for _, c := range chs {
		byID[c.ID()] = c
	}
	seen := make(map[feed.DiscoveryID]bool, len(chs))
	var order []feed.DiscoveryID
	var sorted []feed.Channel
	for _, id := range l.order {
		if c, ok := byID[id]; ok && !seen[id] {
			seen[id] = true
			order = append(order, id)
			sorted = append(sorted, c)
		}
	}
	for _, c := range chs {
		if !seen[c.ID()] {
			seen[c.ID()] = true
			order = append(order, c.ID())
			sorted = append(sorted, c)
		}
	}
	l.order, chs = order, sorted

	old := map[feed.DiscoveryID]*chanInfo{}
	for _, c := range l.chans {
		old[c.id] = c
	}
	var curID feed.DiscoveryID
	hadCur := l.cur >= 0 && l.cur < len(l.chans)
	if hadCur {
		curID = l.chans[l.cur].id
	}
	var privs []*chanInfo // private conversations stay, after the channels
	for _, c := range l.chans {
		if c.priv != nil {
			privs = append(privs, c)
		}
	}
	l.chans = l.chans[:0]
	for _, c := range chs {
		id := c.ID()
		ci, ok := old[id]
		if !ok {
			ci = &chanInfo{id: id}
			added = append(added, ci)
		}
		ci.ch = c
		l.chans = append(l.chans, ci)
	}
	l.chans = append(l.chans, privs...)
	l.cur = -1
	if hadCur {
		l.cur = l.index(curID)
	}
	if l.cur < 0 && len(l.chans) > 0 {
		l.cur = 0
	}
	return added
}

func (l *chanList) index(id feed.DiscoveryID) int {
	for i, c := range l.chans {
		if c.id == id {
			return i
		}
	}
	return -1
}

func (l *chanList) get(id feed.DiscoveryID) *chanInfo {
	if i := l.index(id); i >= 0 {
		return l.chans[i]
	}
	return nil
}

// current is the current channel, or nil in the status window.
func (l *chanList) current() *chanInfo {
	if l.cur < 0 || l.cur >= len(l.chans) {
		return nil
	}
	return l.chans[l.cur]
}

// step returns the index delta positions away from the current, wrapping.
func (l *chanList) step(delta int) int {
	n := len(l.chans)
	if n == 0 {
		return -1
	}
	return ((l.cur+delta)%n + n) % n
}

// nextActive is the next channel after the current with mentions, else the
// next with unread messages, else -1 (irssi/weechat Alt+A).
func (l *chanList) nextActive() int {
	n := len(l.chans)
	for _, mentions := range []bool{true, false} {
		for d := 1; d <= n; d++ {
			i := ((l.cur+d)%n + n) % n
			if i == l.cur {
				continue
			}
			u := l.chans[i].unread
			if mentions && u.Mentions > 0 || !mentions && u.Messages > 0 {
				return i
			}
		}
	}
	return -1
}

// byName finds a channel by its local name.
func (l *chanList) byName(name string) int {
	for i, c := range l.chans {
		if c.ch.Name == name {
			return i
		}
	}
	return -1
}

// move puts channel id at index i, the others keeping their order; the
// current channel stays current.
func (l *chanList) move(id feed.DiscoveryID, i int) {
	from := l.index(id)
	if from < 0 || i < 0 || i >= len(l.chans) || i == from {
		return
	}
	var cur feed.DiscoveryID
	if c := l.current(); c != nil {
		cur = c.id
	}
	ci := l.chans[from]
	l.chans = append(l.chans[:from], l.chans[from+1:]...)
	l.chans = append(l.chans[:i], append([]*chanInfo{ci}, l.chans[i:]...)...)
	l.order = l.order[:0]
	for _, c := range l.chans {
		l.order = append(l.order, c.id)
	}
	if c := l.index(cur); c >= 0 {
		l.cur = c
	}
}
