package ui

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/kchat-p2p/kchat/feed"
)

// The names pane (F2): the current channel's authors, at the right of the
// messages, as in weechat's nicklist and cabal-cli's user pane. It lists
// people (nicknames as shown, with a ~suffix where two collide), never
// network ids; the local user is marked, blocked authors are left out, and
// a dot marks who was heard from in the last 15 minutes.

// namesMinWidth: below this many columns for messages and names together,
// the names pane is not drawn (the toggle stays on).
const namesMinWidth = 60

// namesWidth is the names pane's width within w columns.
func (u *UI) namesWidth(w int) int {
	n := 11 // "12, 3 active"
	for _, m := range u.names {
		n = max(n, textWidth(cleanInline(m.Display, 0))+2) // "● name"
	}
	return min(n+3, 24, w/4)
}

// toggleNames shows or hides the names pane.
func (u *UI) toggleNames() {
	u.showNames = !u.showNames
	if u.showNames {
		u.refreshNamesPane()
	}
}

// refreshNamesPane reads the current channel's members (on the pump) when
// the pane is shown.
func (u *UI) refreshNamesPane() {
	ci := u.chans.current()
	if !u.showNames || ci == nil {
		return
	}
	id := ci.id
	u.do(func(ctx context.Context) func() {
		ms, err := u.b.Members(id)
		return func() {
			if err != nil {
				u.log.Warn("names pane", "err", err)
				return
			}
			if c := u.chans.current(); c == nil || c.id != id {
				return // another channel by now: it asked for its own
			}
			sort.SliceStable(ms, func(i, j int) bool {
				return strings.ToLower(ms[i].Display) < strings.ToLower(ms[j].Display)
			})
			u.names, u.namesFor = ms, id
		}
	})
}

// drawNames draws the names pane in r: a separator, a count, one name a line.
func (u *UI) drawNames(scr tcell.Screen, r rect) {
	if r.w <= 0 || r.h <= 0 {
		return
	}
	sepSt := tcell.StyleDefault.Foreground(tcell.ColorGray)
	for i := 0; i < r.h; i++ {
		scr.SetContent(r.x, r.y+i, '│', nil, sepSt)
	}
	ci := u.chans.current()
	if ci == nil || u.namesFor != ci.id {
		return
	}
	var shown []Member
	b := u.buffer(ci.id)
	for _, m := range u.names {
		if !m.Blocked && !u.hidden(m.Author) && !b.modHidesAuthor(m.Author) {
			shown = append(shown, m)
		}
	}
	w := r.w - 4
	now := u.now()
	active := 0
	for _, m := range shown {
		if u.heardRecently(m, now) {
			active++
		}
	}
	drawText(scr, r.x+2, r.y, r.w-2, fmt.Sprintf("%d, %d active", len(shown), active), sepSt)
	for i, m := range shown {
		y := r.y + 1 + i
		if y >= r.y+r.h {
			break
		}
		name := paneName(m)
		st := styleOf(span{st: stNick, color: nickColor(m.Author)})
		if m.Author == u.self {
			st = styleOf(span{st: stOwnNick, color: nickColor(m.Author)})
		}
		if u.heardRecently(m, now) {
			drawText(scr, r.x+2, y, 1, "●", tcell.StyleDefault.Foreground(tcell.ColorGreen))
		}
		drawText(scr, r.x+4, y, w, truncateWidth(name, w), st)
	}
}

// paneName is how the names pane shows m: the nickname as displayed (the
// id's short form without one), marked as IRC marks operators: "@" for a
// channel admin, "+" for a moderator (whose moderation the user follows).
func paneName(m Member) string {
	name := cleanInline(m.Display, 0)
	if name == "" {
		name = m.Author.Short()
	}
	switch m.Role {
	case "admin":
		return "@" + name
	case "mod":
		return "+" + name
	}
	return name
}

// activeWindow: an author whose newest entry arrived within it is shown as
// active in the names pane (kchat cannot tell who is online: peers are
// devices, not authors, so "active" means "heard from recently").
const activeWindow = 15 * time.Minute

func (u *UI) heardRecently(m Member, now time.Time) bool {
	return m.Author == u.self || !m.LastArrival.IsZero() && now.Sub(m.LastArrival) < activeWindow
}

// namesShownFor reports whether the pane lists channel id now (tests).
func (u *UI) namesShownFor(id feed.DiscoveryID) bool { return u.showNames && u.namesFor == id }
