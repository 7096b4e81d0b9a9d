package ui

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/views"
)

// Moderation in the UI (docs/protocol.md §3.1): /mod with the verbs of
// `kchat mod`, /ban and /unban (block and unblock by moderation), /show
// (expand what moderation hides in this channel); hidden messages collapse
// into one line "N messages hidden by bob — /show"; moderation entries as
// they arrive are one-line notices; /names shows roles.

// ModBackend is what moderation needs from the Backend. It is optional: a
// Backend without it has no moderation (the commands say so).
type ModBackend interface {
	// Moderation is what moderation does for the local user in ch.
	Moderation(ch feed.DiscoveryID) (*views.ModState, error)
	// ModEvents lists ch's moderation entries after arrival number after.
	ModEvents(ch feed.DiscoveryID, after uint64, n int) ([]views.ModEntry, error)
	// ModGeneration changes whenever moderation may have changed.
	ModGeneration() uint64
	// Mod appends a moderation entry (see node.Node.Mod).
	Mod(ctx context.Context, ch feed.DiscoveryID, action feed.ModAction, target feed.AuthorID, msg bool, seq uint64, reason string) (feed.Entry, error)
	// Follow sets whether the local user follows a's moderation in ch.
	Follow(ch feed.DiscoveryID, a feed.AuthorID, follow bool) error
}

func init() {
	// Appended after commands.go's table (files initialise in name order).
	commands = append(commands,
		command{"mod", nil, "VERB TARGET [REASON]", "moderate: hide|unhide NICK or NICK:SEQ, block|unblock, add-mod|remove-mod, add-admin|remove-admin NICK; follow|unfollow NICK; list", (*UI).cmdMod},
		command{"ban", nil, "NICK [REASON]", "block NICK here for everyone who follows your moderation (/mod block)", (*UI).cmdBan},
		command{"unban", nil, "NICK", "lift your /ban (/mod unblock)", (*UI).cmdUnban},
		command{"show", nil, "", "show (again: collapse) what moderation hides in this channel", (*UI).cmdShow},
	)
}

// bufMod is a channel's moderation as its buffer shows it.
type bufMod struct {
	msgs    map[views.MsgID]string   // hidden message -> by whom (as displayed)
	authors map[feed.AuthorID]string // hidden author -> by whom
	show    bool                     // /show: nothing is collapsed
}

// modHides reports whether moderation collapses it, and by whom.
func (b *buffer) modHides(it *item) (string, bool) {
	if b.mod == nil || b.mod.show || it.isNote() || (it.msg.Kind != feed.KindText && it.msg.Kind != feed.KindEmote) {
		return "", false
	}
	if by, ok := b.mod.authors[it.msg.Author]; ok {
		return by, true
	}
	by, ok := b.mod.msgs[views.MsgID{Author: it.msg.Author, Seq: it.msg.Seq}]
	return by, ok
}

// modHidesAuthor reports whether moderation hides author a here (not
// after /show): the names pane leaves them out, as it does blocked ones.
func (b *buffer) modHidesAuthor(a feed.AuthorID) bool {
	if b.mod == nil || b.mod.show {
		return false
	}
	_, ok := b.mod.authors[a]
	return ok
}

// modHidesEvent reports whether it is an event line (a nickname, a topic)
// of an author moderation hides here: not collapsed with their messages
// but left out (a hidden spammer's nickname changes would show what the
// hide keeps out).
func (b *buffer) modHidesEvent(it *item) bool {
	if it.msg.Kind == feed.KindText || it.msg.Kind == feed.KindEmote {
		return false
	}
	return b.modHidesAuthor(it.msg.Author)
}

// modHidesRef reports whether moderation collapses the message r points
// at here.
func (b *buffer) modHidesRef(r *views.Reply) bool {
	return b.modHidesMsg(&views.Message{Author: r.Author, Seq: r.Seq, Kind: feed.KindText})
}

// modHidesMsg reports whether moderation collapses m here (no note
// quotes or names it then).
func (b *buffer) modHidesMsg(m *views.Message) bool {
	_, hidden := b.modHides(&item{msg: *m})
	return hidden
}

// collapsedRow is the one line standing for n hidden messages.
func collapsedRow(n int, by string) []row {
	return []row{{{text: fmt.Sprintf("%s hidden by %s — /show", plural(n, "message", "messages"), cleanInline(by, 64)), st: stNote}}}
}

// modUpdate is moderation's change for the UI: per channel, what is hidden
// and the notices of new moderation entries.
type modUpdate struct {
	per map[feed.DiscoveryID]*chanMod
}

type chanMod struct {
	msgs    map[views.MsgID]string
	authors map[feed.AuthorID]string
	notices []string
	topic   string // the topic as moderation leaves it (views.Reader.Topic)
}

// modPump is the pump's moderation state.
type modPump struct {
	init  bool
	gen   uint64
	chans int                         // channels at the last read (a joined channel is read at once)
	after map[feed.DiscoveryID]uint64 // last moderation entry noticed
}

// modArrivals reads moderation if it may have changed. Entries indexed
// before the first call are not noticed (they are history).
func (p *pump) modArrivals() *modUpdate {
	mb, ok := p.b.(ModBackend)
	if !ok {
		return nil
	}
	g := mb.ModGeneration()
	if p.mod.init && g == p.mod.gen && len(p.chans) == p.mod.chans {
		return nil
	}
	first := !p.mod.init
	p.mod.init, p.mod.gen, p.mod.chans = true, g, len(p.chans)
	if p.mod.after == nil {
		p.mod.after = map[feed.DiscoveryID]uint64{}
	}
	r := p.b.Views()
	up := &modUpdate{per: map[feed.DiscoveryID]*chanMod{}}
	for _, c := range p.chans {
		id := c.ID()
		st, err := mb.Moderation(id)
		if err != nil {
			continue
		}
		cm := &chanMod{msgs: map[views.MsgID]string{}, authors: map[feed.AuthorID]string{}}
		for m, e := range st.HiddenMessages {
			cm.msgs[m] = r.Display(id, e.Moderator)
		}
		for a, e := range st.HiddenAuthors {
			cm.authors[a] = r.Display(id, e.Moderator)
		}
		after, seen := p.mod.after[id]
		for {
			evs, err := mb.ModEvents(id, after, 200)
			if err != nil || len(evs) == 0 {
				break
			}
			for _, e := range evs {
				after = e.N
				if !first && seen {
					cm.notices = append(cm.notices, modNotice(r, id, st, e))
				}
			}
		}
		p.mod.after[id] = after
		cm.topic, _ = r.Topic(id)
		up.per[id] = cm
	}
	return up
}

// modNotice is the one line saying what a moderation entry does.
func modNotice(r Reader, ch feed.DiscoveryID, st *views.ModState, e views.ModEntry) string {
	who := r.Display(ch, e.Moderator)
	target := r.Display(ch, e.Target)
	var s string
	switch e.Action {
	case feed.ModHide, feed.ModUnhide:
		verb := "hid"
		if e.Action == feed.ModUnhide {
			verb = "unhid"
		}
		if e.Message {
			s = fmt.Sprintf("%s %s a message of %s", who, verb, target)
		} else {
			s = fmt.Sprintf("%s %s %s", who, verb, target)
		}
	case feed.ModBlock:
		s = fmt.Sprintf("%s blocked %s", who, target)
	case feed.ModUnblock:
		s = fmt.Sprintf("%s unblocked %s", who, target)
	case feed.ModAddMod:
		s = fmt.Sprintf("%s made %s a moderator", who, target)
	case feed.ModRemoveMod:
		s = fmt.Sprintf("%s removed %s as moderator", who, target)
	case feed.ModAddAdmin:
		s = fmt.Sprintf("%s made %s an admin", who, target)
	case feed.ModRemoveAdmin:
		s = fmt.Sprintf("%s removed %s as admin", who, target)
	default:
		s = fmt.Sprintf("%s: %s %s", who, e.Action, target)
	}
	s = cleanInline(s, 200)
	if e.Reason != "" {
		s += " (" + cleanInline(e.Reason, 120) + ")"
	}
	if st.Role(e.Moderator) == "" {
		s += " — not in effect for you (you do not follow them)"
	}
	return s
}

// onMod applies a moderation update.
func (u *UI) onMod(up *modUpdate) {
	for id, cm := range up.per {
		b := u.buffer(id)
		show := b.mod != nil && b.mod.show
		b.mod = &bufMod{msgs: cm.msgs, authors: cm.authors, show: show}
		if ci := u.chans.get(id); ci != nil {
			ci.topic = cm.topic // a hide of whoever set it changes it
		}
		for _, n := range cm.notices {
			b.addNote(n, false, u.now())
		}
		b.invalidate()
	}
}

func (u *UI) modBackend() (ModBackend, bool) {
	mb, ok := u.b.(ModBackend)
	if !ok {
		u.fail("Moderation is not available here.")
	}
	return mb, ok
}

// cmdMod is /mod VERB TARGET [REASON].
func (u *UI) cmdMod(args string) {
	verb, rest, _ := strings.Cut(strings.TrimSpace(args), " ")
	rest = strings.TrimSpace(rest)
	target, reason, _ := strings.Cut(rest, " ")
	reason = strings.TrimSpace(reason)
	switch verb {
	case "":
		u.fail("Usage: /mod VERB TARGET [REASON]: hide, unhide (NICK or NICK:SEQ), block, unblock, add-mod, remove-mod, add-admin, remove-admin, follow, unfollow; /mod list")
	case "list":
		u.modList()
	case "follow", "unfollow":
		if target == "" {
			u.fail("Usage: /mod %s NICK", verb)
			return
		}
		u.modFollow(target, verb == "follow")
	default:
		action, err := feed.ParseModAction(verb)
		if err != nil {
			u.fail("Unknown /mod verb %q: hide, unhide, block, unblock, add-mod, remove-mod, add-admin, remove-admin, follow, unfollow, list.", cleanInline(verb, 32))
			return
		}
		if target == "" {
			u.fail("Usage: /mod %s NICK [REASON]", verb)
			return
		}
		u.modAct(action, target, reason)
	}
}

func (u *UI) cmdBan(args string) {
	who, reason, _ := strings.Cut(strings.TrimSpace(args), " ")
	if who == "" {
		u.fail("Usage: /ban NICK [REASON]")
		return
	}
	u.modAct(feed.ModBlock, who, strings.TrimSpace(reason))
}

func (u *UI) cmdUnban(args string) {
	who := strings.TrimSpace(args)
	if who == "" {
		u.fail("Usage: /unban NICK")
		return
	}
	u.modAct(feed.ModUnblock, who, "")
}

// cmdShow toggles collapsing in the current channel.
func (u *UI) cmdShow(string) {
	ci := u.needChannel()
	if ci == nil {
		return
	}
	b := u.buffer(ci.id)
	if b.mod == nil {
		b.mod = &bufMod{}
	}
	b.mod.show = !b.mod.show
	b.invalidate()
	if b.mod.show {
		u.note("Showing what moderation hides in #%s; /show again collapses it.", cleanInline(ci.ch.Name, 64))
	} else {
		u.note("Collapsing what moderation hides in #%s.", cleanInline(ci.ch.Name, 64))
	}
}

// modAct resolves the target (NICK, id, or NICK:SEQ for a message) in the
// pump and appends the entry.
func (u *UI) modAct(action feed.ModAction, target, reason string) {
	ci := u.needChannel()
	if ci == nil {
		return
	}
	mb, ok := u.modBackend()
	if !ok {
		return
	}
	id, self := ci.id, u.self
	u.do(func(ctx context.Context) func() {
		who, seqStr, isMsg := strings.Cut(target, ":")
		var seq uint64
		var err error
		if isMsg {
			seq, err = strconv.ParseUint(seqStr, 10, 64)
			if err != nil {
				err = fmt.Errorf("%q: want NICK:SEQ with SEQ a number", cleanInline(target, 64))
			} else if action != feed.ModHide && action != feed.ModUnhide {
				err = fmt.Errorf("%s names an author, not a message", action)
			}
		}
		var a feed.AuthorID
		if err == nil {
			a, err = u.b.ResolveAuthor(id, who)
		}
		if err == nil && a == self && !isMsg {
			err = errors.New("that is you")
		}
		if err == nil {
			_, err = mb.Mod(ctx, id, action, a, isMsg, seq, reason)
		}
		var role string
		if err == nil {
			if st, e := mb.Moderation(id); e == nil {
				role = st.Role(self)
			}
		}
		return func() {
			if err != nil {
				u.fail("/mod %s: %v", action, err)
				return
			}
			if role == "" {
				u.note("You hold no role here: your %s counts only for those who follow you.", action)
			}
		}
	})
}

func (u *UI) modFollow(who string, follow bool) {
	ci := u.needChannel()
	if ci == nil {
		return
	}
	mb, ok := u.modBackend()
	if !ok {
		return
	}
	id := ci.id
	u.do(func(context.Context) func() {
		a, err := u.b.ResolveAuthor(id, who)
		if err == nil {
			err = mb.Follow(id, a, follow)
		}
		return func() {
			if err != nil {
				u.fail("%v", err)
				return
			}
			if follow {
				u.note("You follow %s's moderation here.", cleanInline(who, 64))
			} else {
				u.note("You no longer follow %s's moderation here.", cleanInline(who, 64))
			}
		}
	})
}

// modList shows who moderates what in the current channel.
func (u *UI) modList() {
	ci := u.needChannel()
	if ci == nil {
		return
	}
	mb, ok := u.modBackend()
	if !ok {
		return
	}
	id, name := ci.id, ci.ch.Name
	u.do(func(context.Context) func() {
		st, err := mb.Moderation(id)
		var text string
		if err == nil {
			text = modListText(u.b.Views(), id, name, st)
		}
		return func() {
			if err != nil {
				u.fail("%v", err)
				return
			}
			u.note("%s", text)
		}
	})
}

// modListText is /mod list: roles, then what is hidden or blocked.
func modListText(r Reader, ch feed.DiscoveryID, name string, st *views.ModState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Moderation in #%s (as you follow it):", cleanInline(name, 64))
	var roles []string
	for a, role := range st.Roles {
		roles = append(roles, fmt.Sprintf("%s %s", role, cleanInline(r.Display(ch, a), 80)))
	}
	sort.Strings(roles)
	if len(roles) == 0 {
		b.WriteString("\n  no moderators (/mod follow NICK to follow someone's)")
	}
	for _, l := range roles {
		b.WriteString("\n  " + l)
	}
	for _, e := range st.Current {
		if e.Action != feed.ModHide && e.Action != feed.ModBlock {
			continue
		}
		b.WriteString("\n  " + modNotice(r, ch, st, e))
	}
	return b.String()
}

// postMod hands the UI what changed in moderation, if anything.
func (p *pump) postMod() {
	if p.onMod == nil {
		return
	}
	if up := p.modArrivals(); up != nil {
		p.post(func() { p.onMod(up) })
	}
}

// linkJoiner is a Backend that records the admins a key names when joining
// (node.Node.JoinLink).
type linkJoiner interface {
	JoinLink(ctx context.Context, l feed.Link) (feed.Channel, error)
}

// joinKey joins the channel of the key text s (already parsed as key)
// under name, keeping the admins the key names if the backend can.
func (u *UI) joinKey(ctx context.Context, s string, key feed.ChannelKey, name string) (feed.Channel, error) {
	if lj, ok := u.b.(linkJoiner); ok {
		if l, err := feed.ParseLink(s); err == nil {
			l.Name = name
			return lj.JoinLink(ctx, l)
		}
	}
	return u.b.Join(ctx, key, name)
}
