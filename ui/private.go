package ui

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"strings"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/views"
)

// Private conversations (issue 16): /msg NICK TEXT and /query NICK open a
// buffer for one other person, listed after the channels as "@nick". Its
// lines are the private messages the views could open (views.Private), to
// and from that person, in whatever channel carried them. Every private
// message that arrives rings like a mention and counts as one, until the
// conversation is looked at (its read marker is kept by the views:
// Views.MarkPrivateRead, so counts survive a restart).

// PrivateBackend is what a Backend also offers when it can send private
// messages (*node.Node does; the UI checks for it).
type PrivateBackend interface {
	// FindRecipient resolves WHO (a nick as shown, an author id or an id
	// prefix) and the channel to carry a private message to them (via, or
	// the one they share with the user; via "" picks).
	FindRecipient(who, via string) (feed.Channel, feed.AuthorID, error)
	// SendPrivate seals text to `to` in channel ch.
	SendPrivate(ctx context.Context, ch feed.DiscoveryID, to feed.AuthorID, text string) (feed.Entry, error)
}

// privateReader is the views' private message API.
type privateReader interface {
	Private(after uint64, n int) ([]views.Private, error)
	PrivateUnread() (map[feed.AuthorID]int, error)
	MarkPrivateRead(peer feed.AuthorID, n uint64) error
}

// privConv marks a chanInfo as a private conversation with peer.
type privConv struct {
	peer feed.AuthorID
}

// privState is the pump's side: what it has handed over.
type privState struct {
	primed bool   // the history was loaded (startPrivate); later arrivals are new
	after  uint64 // arrival number of the last private message handed over
}

// privUpdate is what arrived privately since the last update.
type privUpdate struct {
	msgs []views.Private // in arrival order
	old  bool            // history loaded at start: no bell; counts from unread
	// unread: at start, what each person sent after the conversation's
	// read marker.
	unread map[feed.AuthorID]int
}

// privID is the buffer id of the conversation with peer: not a channel's.
func privID(peer feed.AuthorID) feed.DiscoveryID {
	return feed.DiscoveryID(sha256.Sum256(append([]byte("kchat/ui/private\x00"), peer[:]...)))
}

// peerOf is the other person of a private message.
func peerOf(p *views.Private) (feed.AuthorID, string) {
	if p.Own {
		return p.To, p.ToDisplay
	}
	return p.From, p.FromDisplay
}

// privateArrivals reads the private messages indexed since the last call
// (pump goroutine).
func (p *pump) privateArrivals(u *update) {
	pr, ok := p.b.Views().(privateReader)
	if !ok || !p.priv.primed {
		return
	}
	ps, err := pr.Private(p.priv.after, math.MaxInt)
	if err != nil || len(ps) == 0 {
		return
	}
	p.priv.after = ps[len(ps)-1].Arrival
	u.priv = &privUpdate{msgs: ps}
}

// startPrivate loads the private history once the UI has started: a
// conversation for everyone the user exchanged private messages with.
func (u *UI) startPrivate() {
	p := u.pump
	u.do(func(ctx context.Context) func() {
		pr, ok := p.b.Views().(privateReader)
		if !ok {
			return nil
		}
		ps, err := pr.Private(0, math.MaxInt)
		p.priv.primed = true
		if err != nil || len(ps) == 0 {
			return nil
		}
		p.priv.after = ps[len(ps)-1].Arrival
		unread, _ := pr.PrivateUnread()
		up := &privUpdate{msgs: ps, old: true, unread: unread}
		return func() { u.onPrivate(up) }
	})
}

// conversation is the chanInfo of the conversation with peer, made (at the
// end of the list) if need be.
func (u *UI) conversation(peer feed.AuthorID, display string) *chanInfo {
	id := privID(peer)
	if ci := u.chans.get(id); ci != nil {
		return ci
	}
	if display == "" {
		display = peer.Short()
	}
	ci := &chanInfo{id: id, ch: feed.Channel{Name: "@" + display}, priv: &privConv{peer: peer},
		topic: "private: sealed, only you and " + display + " can read it"}
	u.chans.chans = append(u.chans.chans, ci)
	if u.chans.cur < 0 {
		u.chans.cur = len(u.chans.chans) - 1
	}
	return ci
}

// privMessage is a private message as a buffer line.
func privMessage(id feed.DiscoveryID, p *views.Private) views.Message {
	text := p.Text
	if p.Undecryptable {
		text = "(a private message to you that does not open: it was changed or forged)"
	}
	return views.Message{Channel: id, Author: p.From, Seq: p.Arrival, Kind: feed.KindText, Text: text,
		Time: p.Time, Claimed: p.Time, Arrival: p.Arrival, Nick: p.FromDisplay, Display: p.FromDisplay, Own: p.Own}
}

// onPrivate applies private arrivals (UI goroutine).
func (u *UI) onPrivate(up *privUpdate) {
	if up == nil {
		return
	}
	cur := u.chans.current()
	now := u.now()
	bell := false
	for i := range up.msgs {
		p := &up.msgs[i]
		if u.hidden(p.From) && !p.Own {
			continue
		}
		peer, display := peerOf(p)
		ci := u.conversation(peer, display)
		if b := u.bufs[ci.id]; b != nil && b.loaded {
			b.merge([]views.Message{privMessage(ci.id, p)})
		}
		if up.old {
			if n := up.unread[peer]; n > 0 && ci != cur {
				ci.unread = views.Unread{Messages: n, Mentions: n}
			}
			continue
		}
		if p.Own {
			continue
		}
		looking := ci == cur && !u.away
		if !looking {
			ci.unread.Messages++
			ci.unread.Mentions++
		} else {
			u.markPrivateRead(peer, p.Arrival)
		}
		if now.Sub(p.Time) < liveWindow {
			bell = true
			if u.notify != nil && !looking {
				title := fmt.Sprintf("%s (private)", cleanInline(display, 40))
				body := cleanInline(privMessage(ci.id, p).Text, 300)
				u.do(func(ctx context.Context) func() {
					if err := u.notify(ctx, title, body); err != nil {
						u.log.Warn("desktop notification failed", "err", err)
					}
					return nil
				})
			}
		}
	}
	if bell {
		u.bells++
		u.screen.Beep()
	}
	u.updateTitle()
}

// enterPrivate opens a conversation: its messages, from the views.
func (u *UI) enterPrivate(ci *chanInfo) {
	b := u.buffer(ci.id)
	id, peer := ci.id, ci.priv.peer
	ci.unread = views.Unread{}
	u.do(func(ctx context.Context) func() {
		pr, ok := u.b.Views().(privateReader)
		if !ok {
			return func() { u.fail("Private messages are not available here.") }
		}
		ps, err := pr.Private(0, math.MaxInt)
		var msgs []views.Message
		var last uint64
		for i := range ps {
			if p, _ := peerOf(&ps[i]); p == peer && !(u.blockedNow(ps[i].From)) {
				msgs = append(msgs, privMessage(id, &ps[i]))
				last = ps[i].Arrival
			}
		}
		if err == nil && last > 0 {
			err = pr.MarkPrivateRead(peer, last)
		}
		return func() {
			if err != nil {
				u.fail("Cannot read private messages: %v", err)
				return
			}
			b.setPage(msgs, false)
			b.stale = false
		}
	})
}

// markPrivateRead moves the read marker of the conversation with peer.
func (u *UI) markPrivateRead(peer feed.AuthorID, n uint64) {
	u.do(func(ctx context.Context) func() {
		if pr, ok := u.b.Views().(privateReader); ok {
			if err := pr.MarkPrivateRead(peer, n); err != nil {
				return func() { u.fail("Cannot mark the conversation read: %v", err) }
			}
		}
		return nil
	})
}

// blockedNow is hidden, for the pump goroutine's jobs (reads the backend).
func (u *UI) blockedNow(a feed.AuthorID) bool { return u.b.Blocked()[a] }

// sendPrivate sends the text of p in conversation ci.
func (u *UI) sendPrivate(ci *chanInfo, p feed.Payload) {
	if p.Kind != feed.KindText || p.Ref != nil {
		u.fail("Only plain lines can be sent privately (no /me, replies or edits).")
		return
	}
	u.msgTo(ci.priv.peer.String(), p.Text, false)
}

// msgTo sends text privately to who; open switches to the conversation.
func (u *UI) msgTo(who, text string, open bool) {
	pb, ok := u.b.(PrivateBackend)
	if !ok {
		u.fail("Private messages are not available here.")
		return
	}
	line := u.submitted
	u.do(func(ctx context.Context) func() {
		c, to, err := pb.FindRecipient(who, "")
		if err == nil && text != "" {
			_, err = pb.SendPrivate(ctx, c.ID(), to, text)
		}
		display := ""
		if err == nil {
			display = u.b.Views().Display(c.ID(), to)
		}
		return func() {
			if err != nil {
				back := ""
				if u.restore(line) {
					back = " (your text is back in the input line)"
				}
				u.fail("Not sent: %v%s", err, back)
				return
			}
			ci := u.conversation(to, display)
			if open {
				if i := u.chans.index(ci.id); i >= 0 {
					u.switchTo(i)
				}
			}
		}
	})
}

// cmdMsg: /msg NICK TEXT sends a private message and opens the
// conversation; /msg NICK (or /query NICK) only opens it.
func (u *UI) cmdMsg(args string) {
	who, text, _ := strings.Cut(strings.TrimSpace(args), " ")
	if who == "" {
		u.fail("Usage: /msg NICK [TEXT]  (a private message, sealed so only NICK and you can read it; /query NICK opens the conversation)")
		return
	}
	u.msgTo(who, strings.TrimSpace(text), true)
}

// closePrivate closes the current conversation (/part in it); false if the
// current buffer is a channel.
func (u *UI) closePrivate() bool {
	ci := u.chans.current()
	if ci == nil || ci.priv == nil {
		return false
	}
	i := u.chans.cur
	u.chans.chans = append(u.chans.chans[:i], u.chans.chans[i+1:]...)
	delete(u.bufs, ci.id)
	u.chans.cur = min(i, len(u.chans.chans)-1)
	if now := u.chans.current(); now != nil {
		u.enter(now)
	}
	u.updateTitle()
	return true
}

// chanLabel is how the status bar names the current buffer.
func chanLabel(ci *chanInfo) string {
	if ci.priv != nil {
		return cleanInline(ci.ch.Name, 32) + " (private)"
	}
	return "#" + cleanInline(ci.ch.Name, 32)
}
