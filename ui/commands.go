package ui

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/views"
)

// command is one /command. The table drives dispatch, aliases, Tab
// completion and /help (gomuks habit: commands as a table).
type command struct {
	name    string
	aliases []string
	args    string
	help    string
	run     func(u *UI, args string)
}

var commands []command

func init() {
	commands = []command{
		{"join", []string{"j"}, "KEY [NAME]", "join the channel whose key someone shared with you", (*UI).cmdJoin},
		{"new", []string{"create"}, "NAME", "create a channel and show the key to share", (*UI).cmdNew},
		{"key", []string{"invite"}, "", "show this channel's key, to invite someone (keep it secret otherwise)", (*UI).cmdKey},
		{"nick", nil, "NAME", "set your nickname (in every channel)", (*UI).cmdNick},
		{"me", []string{"emote"}, "TEXT", "say something as an action: * you TEXT", (*UI).cmdMe},
		{"topic", []string{"t"}, "[TEXT]", "show or set the channel topic", (*UI).cmdTopic},
		{"reply", []string{"r", "re"}, "NICK TEXT", "answer NICK's latest message here (it is quoted above your line)", (*UI).cmdReply},
		{"edit", []string{"e"}, "[TEXT]", "replace your latest message here with TEXT; no TEXT: put it in the input line to change it", (*UI).cmdEdit},
		{"delete", []string{"del", "undo"}, "", "withdraw your latest message here (peers that have it keep its bytes)", (*UI).cmdDelete},
		{"part", []string{"leave", "close"}, "[--purge]", "leave this channel (--purge: delete its history)", (*UI).cmdPart},
		{"names", []string{"who"}, "", "this channel's authors", (*UI).cmdNames},
		{"expand", nil, "", "show long messages here whole (again: fold them)", (*UI).cmdExpand},
		{"move", nil, "N", "give this channel number N (Alt+N); the others keep their order", (*UI).cmdMove},
		{"peers", []string{"net"}, "", "who is connected for this channel, and how they were found", (*UI).cmdPeers},
		{"connect", nil, "ADDR", "connect to a peer (ADDR from their /peers)", (*UI).cmdConnect},
		{"search", []string{"s", "find"}, "TEXT", "search this channel's history (case-insensitive); again: older matches", (*UI).cmdSearch},
		{"goto", []string{"g"}, "N", "scroll to match N of the last /search, in its place", (*UI).cmdGoto},
		{"block", []string{"ignore"}, "NICK [--purge]", "block an author here (--purge: delete theirs); no argument: list", (*UI).cmdBlock},
		{"unblock", []string{"unignore"}, "NICK", "lift a block in this channel", (*UI).cmdUnblock},
		{"msg", []string{"query", "m"}, "NICK [TEXT]", "private message, sealed for NICK; no TEXT: open the conversation", (*UI).cmdMsg},
		{"help", []string{"h", "?"}, "", "commands and keys", func(u *UI, _ string) { u.help() }},
		{"quit", []string{"q", "exit"}, "", "leave kchat", func(u *UI, _ string) { u.quit() }},
	}
}

// commandNames lists "/name" for completion, primary names first.
func commandNames() []string {
	var out []string
	for _, c := range commands {
		out = append(out, "/"+c.name)
	}
	for _, c := range commands {
		for _, a := range c.aliases {
			out = append(out, "/"+a)
		}
	}
	return out
}

// parseCommand splits "/name args" and finds the command (by name or
// alias). ok is false for an unknown command.
func parseCommand(line string) (c command, args string, ok bool) {
	line = strings.TrimPrefix(line, "/")
	name, args, _ := strings.Cut(line, " ")
	name = strings.ToLower(name)
	for _, c := range commands {
		if c.name == name {
			return c, strings.TrimSpace(args), true
		}
		for _, a := range c.aliases {
			if a == name {
				return c, strings.TrimSpace(args), true
			}
		}
	}
	return command{}, "", false
}

func (u *UI) command(line string) {
	c, args, ok := parseCommand(line)
	if !ok {
		name, _, _ := strings.Cut(strings.TrimPrefix(line, "/"), " ")
		u.fail("Unknown command /%s. /help lists them; start a line with // to send one that begins with /.", cleanInline(name, 32))
		return
	}
	c.run(u, args)
}

// help shows commands and keys, generated from the tables.
func (u *UI) help() {
	// Two notes: each is cut at maxShownLines, and together they are longer.
	keys, cmds, _ := strings.Cut(helpText(u.keys), "\nCommands")
	u.note("%s", keys)
	u.note("Commands%s", cmds)
}

func (u *UI) needChannel() *chanInfo {
	ci := u.chans.current()
	if ci == nil {
		u.fail("You are not in a channel: /new NAME creates one, /join KEY joins one.")
	}
	if ci != nil && ci.priv != nil {
		u.fail("%s is a private conversation: that command is for channels (/part closes the conversation).", cleanInline(ci.ch.Name, 40))
		return nil
	}
	return ci
}

func (u *UI) cmdJoin(args string) {
	fs := strings.Fields(args)
	if len(fs) == 0 || len(fs) > 2 {
		u.fail("Usage: /join KEY [NAME]  (KEY looks like kchat://…; someone in the channel gets it with /key)")
		return
	}
	if !feed.LooksLikeKey(fs[0]) && len(fs) == 1 {
		// IRC habit: /join #general goes to a channel already joined.
		name := strings.TrimPrefix(fs[0], "#")
		if i := u.chans.byName(name); i >= 0 {
			u.switchTo(i)
			return
		}
		u.fail("You have no channel #%s. /join KEY [NAME] joins one: KEY looks like kchat://…, and someone in the channel gets it with /key.", cleanInline(name, 64))
		return
	}
	key, hint, err := feed.ParseChannelKey(fs[0])
	if err != nil {
		u.fail("%v", err)
		return
	}
	id := key.DiscoveryID()
	if i := u.chans.index(id); i >= 0 {
		u.switchTo(i)
		u.note("You are already in #%s.", cleanInline(u.chans.chans[i].ch.Name, 64))
		return
	}
	name := hint
	if len(fs) == 2 {
		name = strings.TrimPrefix(fs[1], "#")
	}
	if name == "" {
		name = "chan-" + id.Short()
	}
	alt := name + "-" + id.Short()[:4]
	renamed := ""
	if u.chans.byName(name) >= 0 {
		if len(fs) == 2 {
			u.fail("You already have a channel named #%s: give this one another name, e.g. /join KEY %s", cleanInline(name, 64), cleanInline(alt, 64))
			return
		}
		renamed, name = name, alt
	}
	if err := feed.ValidateChannelName(name); err != nil {
		u.fail("%v", err)
		return
	}
	u.joined(func(ctx context.Context) (feed.Channel, error) { return u.joinKey(ctx, fs[0], key, name) },
		func(c feed.Channel) {
			if renamed != "" {
				u.note("You already have a channel named #%s, so this one is #%s here (/join KEY NAME picks the name).",
					cleanInline(renamed, 64), cleanInline(c.Name, 64))
			}
			u.note("Joined #%s. Looking for peers; the status bar shows when someone is reachable and how far syncing is.", cleanInline(c.Name, 64))
		})
}

func (u *UI) cmdNew(args string) {
	name := strings.TrimPrefix(strings.TrimSpace(args), "#")
	if name == "" {
		u.fail("Usage: /new NAME")
		return
	}
	if err := feed.ValidateChannelName(name); err != nil {
		u.fail("%v", err)
		return
	}
	if u.chans.byName(name) >= 0 {
		u.fail("You already have a channel named #%s.", cleanInline(name, 64))
		return
	}
	u.joined(func(ctx context.Context) (feed.Channel, error) { return u.b.Create(ctx, name) },
		func(c feed.Channel) {
			u.note("Created #%s. To invite someone, give them the key below; they type /join KEY. Anyone with the key can read and write here; /key shows it again.",
				cleanInline(c.Name, 64))
			u.cur().addRaw(u.now(), c.Link().String(), c.Key.WithName(c.Name), c.Key.String())
		})
}

// joined runs a join or create on the pump and switches to the channel.
// (The backend announces the user's nickname in it.)
func (u *UI) joined(do func(context.Context) (feed.Channel, error), then func(feed.Channel)) {
	u.do(func(ctx context.Context) func() {
		c, err := do(ctx)
		if err != nil {
			return func() {
				if errors.Is(err, feed.ErrNameTaken) {
					u.fail("%v: give another name, /join KEY NAME", err)
					return
				}
				u.fail("%v", err)
			}
		}
		chans := u.pump.channelsNow()
		return func() {
			u.setChannels(chans)
			if i := u.chans.index(c.ID()); i >= 0 {
				u.chans.cur = -1 // force enter
				u.chans.cur = i
				u.enter(u.chans.chans[i])
			}
			then(c)
		}
	})
}

func (u *UI) cmdKey(string) {
	ci := u.needChannel()
	if ci == nil {
		return
	}
	u.note("Key of #%s: give it only to people you want in the channel; they type /join KEY.", cleanInline(ci.ch.Name, 64))
	u.cur().addRaw(u.now(), ci.ch.Link().String(), ci.ch.Key.WithName(ci.ch.Name), ci.ch.Key.String())
}

// validNick checks a nickname before it is sent.
func validNick(n string) error {
	if n == "" {
		return errors.New("empty nickname")
	}
	if len(n) > 64 {
		return fmt.Errorf("nickname is %d bytes, at most 64", len(n))
	}
	for _, r := range n {
		if unicode.IsSpace(r) || unicode.IsControl(r) || isBidiControl(r) || r == '~' {
			return fmt.Errorf("nickname %q: no spaces, control characters or '~'", n)
		}
	}
	return nil
}

func (u *UI) cmdNick(args string) {
	n := strings.TrimSpace(args)
	if n == "" && u.nick != "" {
		u.note("You are %s (%s).", cleanInline(u.nick, 64), u.self.Short())
		return
	}
	if n == "" {
		u.fail("Usage: /nick NAME")
		return
	}
	if err := validNick(n); err != nil {
		u.fail("%v", err)
		return
	}
	none := len(u.chans.chans) == 0
	u.do(func(ctx context.Context) func() {
		err := u.b.SetNick(ctx, n)
		return func() {
			if err != nil {
				u.fail("Could not set your nickname: %v", err)
				return
			}
			u.nick = n
			if none {
				u.note("You will be %s in the channels you create or join.", cleanInline(n, 64))
			}
		}
	})
}

func (u *UI) cmdMe(args string) {
	if strings.TrimSpace(args) == "" {
		u.fail("Usage: /me TEXT")
		return
	}
	u.send(feed.Payload{Kind: feed.KindEmote, Text: args})
}

// cmdReply answers the latest loaded message of an author.
func (u *UI) cmdReply(args string) {
	if u.needChannel() == nil {
		return
	}
	who, text, _ := strings.Cut(strings.TrimSpace(args), " ")
	text = strings.TrimSpace(text)
	if who == "" || text == "" {
		u.fail("Usage: /reply NICK TEXT  (answers NICK's latest message in this channel)")
		return
	}
	a, err := u.resolveAuthor(strings.TrimSuffix(who, ":"), nil)
	if err != nil {
		u.fail("%v", err)
		return
	}
	m := u.cur().lastBy(func(m *views.Message) bool { return m.Author == a })
	if m == nil {
		u.fail("No message of %s is loaded here to reply to.", cleanInline(who, 64))
		return
	}
	u.send(feed.Payload{Kind: feed.KindText, Text: text, Ref: feed.NewRef(m.Author, m.Seq)})
}

// lastOwn is the user's latest loaded message in the current channel, or
// nil after saying why there is none to verb.
func (u *UI) lastOwn(verb string) *views.Message {
	if u.needChannel() == nil {
		return nil
	}
	m := u.cur().lastBy(func(m *views.Message) bool { return m.Author == u.self })
	if m == nil {
		u.fail("You have no message loaded here to %s.", verb)
	}
	return m
}

// cmdEdit replaces the user's latest message in the channel. Without text
// it puts "/edit <the message>" in the input line, to be changed and sent.
func (u *UI) cmdEdit(args string) {
	m := u.lastOwn("edit")
	if m == nil {
		return
	}
	if strings.TrimSpace(args) == "" {
		u.ed.set("/edit " + m.Text)
		return
	}
	if args == m.Text {
		u.note("Unchanged.")
		return
	}
	u.send(feed.Payload{Kind: feed.KindEdit, Text: args, Ref: feed.NewRef(m.Author, m.Seq)})
}

// cmdDelete withdraws the user's latest message in the channel.
func (u *UI) cmdDelete(string) {
	m := u.lastOwn("delete")
	if m == nil {
		return
	}
	u.send(feed.Payload{Kind: feed.KindDelete, Ref: feed.NewRef(m.Author, m.Seq)})
	u.note("Deleted your message %q. Peers that already have it keep its bytes; kchat shows it as deleted.", cleanInline(m.Text, 40))
}

func (u *UI) cmdTopic(args string) {
	ci := u.needChannel()
	if ci == nil {
		return
	}
	if args == "" {
		if strings.TrimSpace(ci.topic) == "" {
			u.note("#%s has no topic. /topic TEXT sets one.", cleanInline(ci.ch.Name, 64))
		} else {
			u.note("Topic of #%s: %s", cleanInline(ci.ch.Name, 64), ci.topic)
		}
		return
	}
	u.send(feed.Payload{Kind: feed.KindTopic, Text: args})
}

func (u *UI) cmdPart(args string) {
	purge, rest := cutFlag(args, "--purge")
	if rest != "" {
		u.fail("Usage: /part [--purge]")
		return
	}
	if u.closePrivate() {
		return
	}
	ci := u.needChannel()
	if ci == nil {
		return
	}
	id, name, key, link := ci.id, ci.ch.Name, ci.ch.Key, ci.ch.Link().String()
	u.do(func(ctx context.Context) func() {
		var err error
		if purge {
			err = u.b.PurgeChannel(ctx, id)
		} else {
			err = u.b.Part(ctx, id)
		}
		chans := u.pump.channelsNow()
		return func() {
			if err != nil {
				u.fail("Could not leave #%s: %v", cleanInline(name, 64), err)
				return
			}
			u.setChannels(chans)
			if c := u.chans.current(); c != nil {
				u.enter(c)
			}
			if purge {
				u.note("You left #%s and its history was deleted from this device.", cleanInline(name, 64))
			} else {
				u.note("You left #%s. Its history stays on this device; to come back: /join with its key,", cleanInline(name, 64))
				u.cur().addRaw(u.now(), link, key.WithName(name), key.String())
			}
		}
	})
}

// gotoLimit bounds how far back /goto loads history to reach a match.
const gotoLimit = 20000

func (u *UI) cmdGoto(args string) {
	ci := u.needChannel()
	if ci == nil {
		return
	}
	n, err := strconv.Atoi(strings.TrimSpace(args))
	if err != nil || n < 1 || n > len(ci.search.found) {
		if len(ci.search.found) == 0 {
			u.fail("No search results here: /search TEXT first, then /goto N.")
			return
		}
		u.fail("Usage: /goto N, N from 1 to %d (the numbers of the last /search)", len(ci.search.found))
		return
	}
	c := ci.search.found[n-1]
	b := u.cur()
	if b.has(c) {
		u.showAt(b, c)
		return
	}
	if !b.loaded || b.loading {
		u.fail("The channel is still loading; try again.")
		return
	}
	b.loading = true
	id, from, page := ci.id, b.oldest(), u.page
	u.do(func(ctx context.Context) func() {
		var older []views.Message
		full, found := true, false
		for len(older) < gotoLimit && !found && full {
			ms, err := u.b.Views().Before(id, from, page)
			if err != nil {
				return func() {
					b.loading = false
					u.fail("Cannot read older messages: %v", err)
				}
			}
			full = len(ms) >= page
			if len(ms) > 0 {
				from = ms[0].Cursor
			}
			for i := range ms {
				found = found || ms[i].Cursor == c
			}
			older = append(ms, older...)
		}
		return func() {
			b.prependOlder(older, full)
			if !found {
				u.fail("Match %d is more than %d messages back; PgUp goes on loading.", n, gotoLimit)
				return
			}
			u.showAt(b, c)
		}
	})
}

// showAt scrolls b to the message at c (loaded), once it is laid out.
func (u *UI) showAt(b *buffer, c views.Cursor) {
	if s, ok := b.scrollTo(c, u.hidden); ok {
		b.scroll = s
		return
	}
	u.fail("That message is hidden (its author is blocked).")
}

func (u *UI) cmdExpand(string) {
	b := u.cur()
	b.full = !b.full
	if b.full {
		u.note("Long messages here are shown whole; /expand again folds them.")
	} else {
		u.note("Long messages here are folded after %d lines again.", maxShownLines)
	}
}

func (u *UI) cmdMove(args string) {
	ci := u.needChannel()
	if ci == nil {
		return
	}
	n, err := strconv.Atoi(strings.TrimSpace(args))
	if err != nil || n < 1 || n > len(u.chans.chans) {
		u.fail("Usage: /move N, N from 1 to %d", len(u.chans.chans))
		return
	}
	u.chans.move(ci.id, n-1)
	u.saveSoon()
	u.note("#%s is now channel %d.", cleanInline(ci.ch.Name, 64), n)
}

// cutFlag removes the word flag from args; it reports whether it was there
// and returns the other words.
func cutFlag(args, flag string) (bool, string) {
	var rest []string
	found := false
	for _, w := range strings.Fields(args) {
		if w == flag {
			found = true
			continue
		}
		rest = append(rest, w)
	}
	return found, strings.Join(rest, " ")
}

// cmdNames lists the channel's authors from the members view.
func (u *UI) cmdNames(string) {
	ci := u.needChannel()
	if ci == nil {
		return
	}
	id, name := ci.id, ci.ch.Name
	u.do(func(ctx context.Context) func() {
		ms, err := u.b.Members(id)
		return func() {
			if err != nil {
				u.fail("Could not list the authors of #%s: %v", cleanInline(name, 64), err)
				return
			}
			u.note("%s", namesText(name, ms, u.self))
		}
	})
}

// namesText is /names: one line per author, nick as shown, marked.
func namesText(channel string, ms []Member, self feed.AuthorID) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%s: %s", cleanInline(channel, 64), plural(len(ms), "author", "authors"))
	for _, m := range ms {
		fmt.Fprintf(&b, "\n  %s  %s", cleanInline(m.Display, 80), plural(m.Messages, "message", "messages"))
		if m.Author == self {
			b.WriteString("  (you)")
		}
		if m.Role != "" {
			b.WriteString("  [" + m.Role + "]")
		}
		if m.Blocked {
			b.WriteString("  [blocked]")
		} else if m.Hidden {
			b.WriteString("  [hidden]")
		}
		if m.Forked {
			b.WriteString("  [forked: signed two messages at one place; later ones refused]")
		}
	}
	return b.String()
}

func (u *UI) cmdPeers(string) {
	ci := u.needChannel()
	if ci == nil {
		return
	}
	id, name := ci.id, ci.ch.Name
	u.do(func(ctx context.Context) func() {
		ps := u.b.Peers(id)
		st := u.b.Status(id)
		addrs := u.b.Addrs()
		return func() {
			var b strings.Builder
			fmt.Fprintf(&b, "#%s: %s connected", cleanInline(name, 64), plural(st.Peers, "peer", "peers"))
			if st.Syncing() {
				fmt.Fprintf(&b, ", syncing %s/%s", thousands(int(st.Have)), thousands(int(st.Want)))
			}
			if st.Problem != "" {
				fmt.Fprintf(&b, ", problem: %s", cleanInline(st.Problem, 80))
			}
			if len(ps) == 0 {
				b.WriteString("\n  nobody found yet")
				if st.Searching {
					b.WriteString(" (still searching)")
				}
			}
			for _, p := range ps {
				state := "connected"
				if !p.Connected {
					state = "not connected"
				}
				fmt.Fprintf(&b, "\n  %s  %s  via %s", cleanInline(p.ID, 60), state, cleanInline(p.Source, 16))
				if p.Addr != "" {
					fmt.Fprintf(&b, "  %s", cleanInline(p.Addr, 60))
				}
				if !p.LastSeen.IsZero() {
					fmt.Fprintf(&b, "  seen %s", p.LastSeen.Local().Format("15:04:05"))
				}
			}
			u.note("%s", b.String())
			if len(addrs) == 0 {
				u.note("This node is not listening (network off).")
				return
			}
			u.note("This node listens on (others type /connect ADDR, or start kchat with --peer ADDR):")
			for _, a := range addrs {
				u.cur().addRaw(u.now(), cleanInline(a, 0))
			}
		}
	})
}

func (u *UI) cmdConnect(args string) {
	addr := strings.TrimSpace(args)
	if addr == "" || strings.ContainsAny(addr, " \t") {
		u.fail("Usage: /connect ADDR  (ADDR is what /peers shows on the other side: /ip4/…/tcp/…/p2p/12D3Koo…)")
		return
	}
	u.note("Connecting to %s…", cleanInline(addr, 120))
	u.do(func(ctx context.Context) func() {
		chans, err := u.b.Connect(ctx, addr)
		return func() {
			if err != nil {
				u.fail("Could not connect: %v", err)
				return
			}
			var names []string
			for _, c := range chans {
				names = append(names, "#"+cleanInline(c, 64))
			}
			u.note("Connected; syncing %s. The peer is remembered and redialled when kchat starts again.", strings.Join(names, ", "))
		}
	})
}

// resolveAuthor finds the author meant by arg: a 64-hex id, an id prefix
// (the short form shown in ~suffixes), or a nickname / display name of an
// author in the current channel's loaded messages, or of a blocked author.
func (u *UI) resolveAuthor(arg string, among map[feed.AuthorID]bool) (feed.AuthorID, error) {
	arg = strings.TrimPrefix(strings.TrimSpace(arg), "@")
	if a, err := feed.ParseAuthorID(arg); err == nil {
		return a, nil
	}
	cands := map[feed.AuthorID]bool{}
	for a := range among {
		cands[a] = true
	}
	names := map[feed.AuthorID][]string{}
	for _, it := range u.cur().items {
		if it.isNote() {
			continue
		}
		m := &it.msg
		cands[m.Author] = true
		names[m.Author] = append(names[m.Author], m.Nick, m.Display)
	}
	var found []feed.AuthorID
	la := strings.ToLower(arg)
	for a := range cands {
		match := len(arg) >= 4 && strings.HasPrefix(a.String(), la)
		for _, n := range names[a] {
			if n != "" && (n == arg || views.NickSuffixMatch(arg, n, a)) {
				match = true
			}
		}
		if match {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 0:
		return feed.AuthorID{}, fmt.Errorf("no author %q here; give their id (shown after ~ when nicknames collide) or nickname", cleanInline(arg, 64))
	case 1:
		return found[0], nil
	}
	var ids []string
	for _, a := range found {
		ids = append(ids, a.Short())
	}
	sort.Strings(ids)
	return feed.AuthorID{}, fmt.Errorf("%q could be %s: give more of the id", cleanInline(arg, 64), strings.Join(ids, ", "))
}

func (u *UI) cmdBlock(args string) {
	purge, who := cutFlag(args, "--purge")
	ci := u.needChannel()
	if ci == nil {
		return
	}
	id, name := ci.id, ci.ch.Name
	if who == "" {
		if purge {
			u.fail("Usage: /block NICK|ID [--purge]")
			return
		}
		u.do(func(ctx context.Context) func() {
			ms, err := u.b.Members(id)
			return func() {
				if err != nil {
					u.fail("%v", err)
					return
				}
				var names []string
				for _, m := range ms {
					if m.Blocked {
						names = append(names, cleanInline(m.Display, 80)+" ("+m.Author.String()+")")
					}
				}
				if len(names) == 0 {
					u.note("Nobody is blocked in #%s. /block NICK|ID blocks an author here.", cleanInline(name, 64))
					return
				}
				u.note("Blocked in #%s:\n  %s", cleanInline(name, 64), strings.Join(names, "\n  "))
			}
		})
		return
	}
	u.setBlock(id, who, true, purge)
}

func (u *UI) cmdUnblock(args string) {
	if strings.TrimSpace(args) == "" {
		u.fail("Usage: /unblock NICK|ID  (/block lists who is blocked)")
		return
	}
	ci := u.needChannel()
	if ci == nil {
		return
	}
	u.setBlock(ci.id, strings.TrimSpace(args), false, false)
}

// setBlock resolves who among ch's authors (in the pump) and blocks or
// unblocks them there.
func (u *UI) setBlock(ch feed.DiscoveryID, who string, block, purge bool) {
	self := u.self
	u.do(func(ctx context.Context) func() {
		a, err := u.b.ResolveAuthor(ch, who)
		switch {
		case err != nil:
		case a == self && block:
			err = errors.New("that is you")
		case block:
			err = u.b.Block(ctx, ch, a, purge)
		default:
			err = u.b.Unblock(ch, a)
		}
		bl := u.b.Blocked()
		return func() {
			if err != nil {
				u.fail("%v", err)
				return
			}
			u.blocked = bl
			if u.blocked == nil {
				u.blocked = map[feed.AuthorID]bool{}
			}
			for _, b := range u.bufs {
				b.invalidate()
			}
			switch {
			case block && purge:
				u.note("Blocked %s here and deleted what was stored of them. /unblock %s lets them back in.", a.Short(), a.Short())
			case block:
				u.note("Blocked %s: their messages are hidden, no longer stored or passed on (here only). /unblock %s shows them again.", a.Short(), a.Short())
			default:
				u.note("Unblocked %s.", a.Short())
			}
		}
	})
}

// helpText is /help: keys first, then commands, so the commands are what a
// small terminal shows (PgUp shows the keys).
func helpText(keys []keyAction) string {
	var b strings.Builder
	b.WriteString("Keys:")
	for _, a := range keys {
		fmt.Fprintf(&b, "\n  %-22s %s", a.name, a.help)
		if a.id != "" {
			fmt.Fprintf(&b, " [%s]", a.id)
		}
	}
	b.WriteString("\nKeys can be changed in the file \"keys\" of the data dir: one \"ACTION = KEY, KEY\" per line, ACTION as in brackets.")
	b.WriteString(" Mouse: the wheel scrolls; a click on a channel opens it.")
	b.WriteString("\nNicknames are claims: two authors with one nickname are shown with a ~suffix of their id.")
	b.WriteString("\nA ~ after a time (15:04~) means the author's clock disagreed: the message is placed when it arrived or after the author's previous one.")
	b.WriteString("\nCommands (PgUp for keys):")
	for _, c := range commands {
		name := "/" + c.name
		if c.args != "" {
			name += " " + c.args
		}
		fmt.Fprintf(&b, "\n  %-18s %s", name, c.help)
		if len(c.aliases) > 0 {
			fmt.Fprintf(&b, " (/%s)", strings.Join(c.aliases, ", /"))
		}
	}
	return b.String()
}

// searchResults is how many matches one /search shows.
const searchResults = 20

func (u *UI) cmdSearch(args string) {
	ci := u.needChannel()
	if ci == nil {
		return
	}
	q := strings.TrimSpace(args)
	if q == "" {
		u.fail("Usage: /search TEXT")
		return
	}
	// The same query again continues with older matches (then wraps).
	var from views.Cursor
	if ci.search.query == q {
		from = ci.search.next
	}
	id, name := ci.id, ci.ch.Name
	u.do(func(ctx context.Context) func() {
		found, next, err := u.b.Views().Search(id, q, from, searchResults)
		return func() {
			if err != nil {
				u.fail("Search failed: %v", err)
				return
			}
			ci.search.query, ci.search.next = q, next
			ci.search.found = ci.search.found[:0]
			// What the buffer hides (blocked authors, moderation's
			// collapsed messages), search does not show either.
			buf := u.buffer(id)
			found = slices.DeleteFunc(found, func(m views.Message) bool {
				_, collapsed := buf.modHides(&item{msg: m})
				return u.hidden(m.Author) || collapsed
			})
			var b strings.Builder
			fmt.Fprintf(&b, "%s for %q in #%s", plural(len(found), "match", "matches"), cleanInline(q, 64), cleanInline(name, 64))
			if from != "" {
				b.WriteString(" (older)")
			}
			for i, m := range found {
				ci.search.found = append(ci.search.found, m.Cursor)
				fmt.Fprintf(&b, "\n  [%d] %s %s: %s", i+1, m.Time.Local().Format("2006-01-02 15:04"), cleanInline(m.Display, 40), cleanInline(m.Text, 200))
			}
			if len(found) > 0 {
				b.WriteString("\n  /goto N shows match N where it was written (End comes back)")
			}
			if next != "" {
				b.WriteString("\n  /search again for older matches")
			}
			u.note("%s", b.String())
		}
	})
}
