package ui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/views"
)

// UI is the terminal chat client. Build it with New (or use Run), then call
// (*UI).Run. All fields are owned by the tview goroutine unless noted.
type UI struct {
	b      Backend
	self   feed.AuthorID
	app    *tview.Application
	screen tcell.Screen
	pump   *pump
	log    *slog.Logger
	now    func() time.Time
	page   int // messages per page read from the views

	cancel  context.CancelFunc // stops Run (set by Run; safe to call from any goroutine)
	stopped chan struct{}      // closed when the tview loop has ended

	chans   chanList
	bufs    map[feed.DiscoveryID]*buffer
	status  *buffer // shown when no channel is joined
	blocked map[feed.AuthorID]bool
	nick    string // the user's nickname ("" until set)
	started bool   // the initial state has arrived

	ed   editor
	hist history
	comp completer

	skewWarned map[feed.AuthorID]bool // authors whose clock skew was reported
	forkNoted  map[forkKey]bool       // forks already told, per channel

	submitted string // the input line being handled by submit ("" otherwise)
	away      bool   // the terminal reported that it lost focus
	notify    func(ctx context.Context, title, body string) error
	bindings  KeyBindings
	keys      []keyAction // keyActions with the bindings applied

	markPending bool   // a MarkRead of the current channel is queued
	title       string // the terminal title set last
	bells       int    // bells rung (tests)

	root *rootView

	statePath string                      // WithStateFile ("" : nothing kept)
	drafts    map[feed.DiscoveryID]string // unsent text of the channels not shown
	draftFor  feed.DiscoveryID            // the channel whose draft is in the input line (zero: the status window)
	quitAsked bool                        // Ctrl+C was pressed with a draft: again quits

	showNames bool             // the names pane (F2) is on
	names     []Member         // the current channel's members, for the pane
	namesFor  feed.DiscoveryID // the channel names is of
}

// Option configures a UI.
type Option func(*UI)

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(u *UI) { u.now = now } }

// WithPageSize sets how many messages one page of history holds.
func WithPageSize(n int) Option {
	return func(u *UI) {
		if n > 0 {
			u.page = n
		}
	}
}

// WithNotify sets a function called for each live mention of the user
// that they are not looking at (another channel, or the terminal not
// focused), to show a desktop notification. It runs off the UI goroutine;
// title and body are plain text, cleaned of control characters.
func WithNotify(notify func(ctx context.Context, title, body string) error) Option {
	return func(u *UI) { u.notify = notify }
}

// notice runs the notify hook for mention m in channel ci.
func (u *UI) notice(ci *chanInfo, m views.Message) {
	title := fmt.Sprintf("%s in #%s", cleanInline(displayName(&m), 40), cleanInline(ci.ch.Name, 40))
	body := cleanInline(m.Text, 300)
	u.do(func(ctx context.Context) func() {
		if err := u.notify(ctx, title, body); err != nil {
			u.log.Warn("desktop notification failed", "err", err)
		}
		return nil
	})
}

// WithLogger sets a logger for problems the UI notices (backend errors are
// also shown on screen). It must not write to the terminal: point it at the
// log file in the data dir.
func WithLogger(l *slog.Logger) Option { return func(u *UI) { u.log = l } }

// Run runs the terminal UI on the process's terminal until the user quits
// (/quit, Ctrl+C) or ctx is cancelled. Nothing else may write to the
// terminal meanwhile: route logs to a file before calling it.
func Run(ctx context.Context, b Backend, opts ...Option) error {
	screen, err := tcell.NewScreen()
	if err != nil {
		return fmt.Errorf("open terminal: %w", err)
	}
	return New(b, screen, opts...).Run(ctx)
}

// New builds the UI on screen (a real terminal screen, or
// tcell.NewSimulationScreen in tests). It does not touch the backend until
// Run.
func New(b Backend, screen tcell.Screen, opts ...Option) *UI {
	u := &UI{
		b: b, self: b.Self(), screen: screen,
		log: slog.New(slog.DiscardHandler), now: time.Now, page: 200,
		stopped: make(chan struct{}),
		bufs:    map[feed.DiscoveryID]*buffer{},

		skewWarned: map[feed.AuthorID]bool{},
		forkNoted:  map[forkKey]bool{},
		drafts:     map[feed.DiscoveryID]string{},
		status:     &buffer{status: true, loaded: true, atStart: true},
		blocked:    map[feed.AuthorID]bool{},
		chans:      chanList{cur: -1},
		cancel:     func() {},
	}
	for _, o := range opts {
		o(u)
	}
	u.keys = applyBindings(keyActions, u.bindings)
	u.app = tview.NewApplication()
	u.app.SetScreen(&focusScreen{Screen: screen, onFocus: func(focused bool) {
		u.app.QueueUpdateDraw(func() { u.setFocused(focused) })
	}})
	u.app.EnableMouse(true)
	u.app.EnablePaste(true)
	u.root = newRootView(u)
	u.app.SetRoot(u.root, true)
	u.app.SetInputCapture(func(ev *tcell.EventKey) *tcell.EventKey {
		u.handleKey(ev)
		return nil
	})
	u.pump = newPump(b, u.post, u.now)
	u.pump.statePath = u.statePath
	u.pump.onUpdate = u.onUpdate
	u.pump.onNet = u.onNet
	u.pump.onMod = u.onMod
	u.status.addNote("Welcome to kchat. Loading…", false, u.now())
	return u
}

// Run runs the UI until the user quits or ctx is cancelled.
func (u *UI) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	u.cancel = cancel
	defer cancel()
	pumpDone := make(chan struct{})
	go func() {
		defer close(pumpDone)
		u.pump.run(ctx, u.onStart)
	}()
	go func() {
		<-ctx.Done()
		<-pumpDone // the pump's last update is applied before the loop stops
		u.post(u.app.Stop)
	}()
	err := u.app.Run()
	close(u.stopped)
	cancel()
	<-pumpDone
	// The tview loop and the pump have ended: the state is this
	// goroutine's to read. Drafts and the channel shown are kept.
	if u.started && u.statePath != "" {
		if serr := saveState(u.statePath, u.snapshot()); serr != nil {
			u.log.Warn("ui state", "err", serr)
			err = errors.Join(err, serr)
		}
	}
	return err
}

// quit ends Run; safe on the UI goroutine (it does not wait).
func (u *UI) quit() { u.cancel() }

// interrupt is Ctrl+C: it quits, unless there is unsent text: then it
// asks first (a second Ctrl+C quits; the drafts are kept for next time,
// with WithStateFile), so that a draft is never lost to a stray Ctrl+C.
func (u *UI) interrupt() {
	drafts := u.allDrafts()
	if len(drafts) == 0 || u.quitAsked {
		u.quit()
		return
	}
	where := "the input line"
	if _, ok := drafts[u.draftFor]; !ok {
		where = "another channel"
	}
	kept := "it is lost"
	if u.statePath != "" {
		kept = "it is kept for next time"
	}
	u.quitAsked = true
	u.note("You have unsent text in %s. Ctrl+C again quits (%s); any other key goes on.", where, kept)
}

// post runs f on the UI goroutine and redraws. It gives up if the tview
// loop has ended.
func (u *UI) post(f func()) {
	done := make(chan struct{})
	go func() {
		u.app.QueueUpdateDraw(f)
		close(done)
	}()
	select {
	case <-done:
	case <-u.stopped:
	}
}

// do queues work for the pump (never blocks).
func (u *UI) do(j job) { u.pump.enqueue(j) }

// --- state ---

// cur is the buffer shown.
func (u *UI) cur() *buffer {
	if ci := u.chans.current(); ci != nil {
		return u.buffer(ci.id)
	}
	return u.status
}

func (u *UI) buffer(id feed.DiscoveryID) *buffer {
	b := u.bufs[id]
	if b == nil {
		b = newBuffer(id)
		u.bufs[id] = b
	}
	return b
}

func (u *UI) hidden(a feed.AuthorID) bool { return u.blocked[a] }

// note shows local information in the current buffer.
func (u *UI) note(format string, args ...any) {
	u.cur().addNote(fmt.Sprintf(format, args...), false, u.now())
}

// fail shows an error in the current buffer (and logs it).
func (u *UI) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	u.log.Warn("ui", "error", msg)
	u.cur().addNote(msg, true, u.now())
}

// onStart applies the initial state.
func (u *UI) onStart(st initial) func() {
	return func() {
		u.started = true
		u.blocked = st.blocked
		if u.blocked == nil {
			u.blocked = map[feed.AuthorID]bool{}
		}
		u.nick = st.nick
		u.status.items = nil
		if st.err != nil {
			u.fail("Cannot list channels: %v", st.err)
		}
		if st.stateErr != nil {
			u.fail("%v (starting without saved drafts and channel order)", st.stateErr)
		}
		u.applySaved(st.saved)
		u.setChannels(st.chans)
		if id, ok := parseID(st.saved.Last); ok {
			if i := u.chans.index(id); i >= 0 {
				u.chans.cur = i // start in the channel used last
			}
		}
		for id, info := range st.infos {
			if ci := u.chans.get(id); ci != nil {
				ci.unread, ci.topic, ci.net = info.unread, info.topic, info.net
			}
		}
		u.welcome()
		total, in := 0, 0
		for _, ci := range u.chans.chans {
			if ci != u.chans.current() && ci.unread.Messages > 0 {
				total += ci.unread.Messages
				in++
			}
		}
		if total > 0 {
			u.note("%s since you were last here in %s (Alt+A jumps there).",
				plural(total, "new message", "new messages"), plural(in, "channel", "channels"))
		}
		if ci := u.chans.current(); ci != nil {
			u.enter(ci)
		}
		u.updateTitle()
		u.startPrivate()
	}
}

func (u *UI) welcome() {
	if len(u.chans.chans) > 0 {
		return
	}
	u.status.items = nil
	lines := []string{
		"Welcome to kchat: chat with no server. You are " + u.self.Short() + ".",
		"You have not joined a channel yet:",
		"  /new NAME      create a channel; you get a key to share",
		"  /join KEY      join a channel with the key someone shared",
		"  /nick NAME     choose your nickname",
		"  /help          commands and keys;  /quit to leave",
	}
	for _, l := range lines {
		u.status.addNote(l, false, u.now())
	}
}

// setChannels replaces the channel list.
func (u *UI) setChannels(chs []feed.Channel) {
	before := slices.Clone(u.chans.order)
	u.chans.set(chs)
	if !slices.Equal(before, u.chans.order) {
		u.saveSoon()
	}
	if u.chans.current() == nil {
		u.swapDraft(feed.DiscoveryID{})
	}
	keep := map[feed.DiscoveryID]bool{}
	for _, c := range u.chans.chans {
		keep[c.id] = true
	}
	for id := range u.bufs {
		if !keep[id] {
			delete(u.bufs, id)
		}
	}
	u.welcome()
}

// switchTo makes channel i current.
func (u *UI) switchTo(i int) {
	if i < 0 || i >= len(u.chans.chans) || i == u.chans.cur {
		return
	}
	u.chans.cur = i
	u.comp.reset()
	u.enter(u.chans.chans[i])
	u.updateTitle()
	u.saveSoon()
}

// enter opens the channel: loads its newest page if needed, freezes the
// last-read line, and marks it read.
func (u *UI) enter(ci *chanInfo) {
	u.swapDraft(ci.id)
	if ci.priv != nil {
		u.enterPrivate(ci)
		return
	}
	u.refreshNamesPane()
	b := u.buffer(ci.id)
	id := ci.id
	needPage := !b.loaded || b.stale
	page := u.page
	self := u.self
	u.do(func(ctx context.Context) func() {
		r := u.b.Views()
		marker, _ := r.ReadMarker(id)
		unread, _ := r.Unread(id)
		var msgs, unreadMsgs []views.Message
		var err error
		if needPage {
			msgs, err = r.Last(id, page)
			if err == nil && unread.Messages > 0 && unread.Messages <= bulkArrivals {
				// What is unread, wherever it sorts: late messages among
				// it are placed above the last-read line (noteLate).
				if a, aerr := r.ReadArrival(id); aerr == nil {
					unreadMsgs, _ = r.Arrived(id, a, 4*bulkArrivals)
				}
			}
		}
		topic, _ := r.Topic(id)
		nick := r.Nick(id, self)
		if err == nil {
			err = r.MarkRead(id)
		}
		return func() {
			if err != nil {
				u.fail("Cannot read #%s: %v", cleanInline(ci.ch.Name, 64), err)
			}
			if needPage && err == nil {
				b.setPage(msgs, len(msgs) >= page)
				b.stale = false
			}
			b.setReadLine(marker, unread.Messages)
			u.noteLate(b, unreadMsgs)
			if unread.Messages >= max(u.root.paneR.h, 10) {
				// The read line is off screen: say it at the bottom, once.
				b.addNote(b.readLabel+" since you were last here: PgUp reads back to the red line.", false, u.now())
			}
			ci.unread = views.Unread{}
			ci.topic = topic
			if nick != "" {
				u.nick = nick
			}
		}
	})
}

// markRead queues a MarkRead of the current channel (the user is looking
// at its newest messages).
func (u *UI) markRead() {
	ci := u.chans.current()
	if ci == nil || u.markPending || ci.priv != nil {
		return
	}
	u.markPending = true
	id := ci.id
	u.do(func(ctx context.Context) func() {
		err := u.b.Views().MarkRead(id)
		return func() {
			u.markPending = false
			if err == nil {
				if c := u.chans.get(id); c != nil {
					c.unread = views.Unread{}
				}
			}
		}
	})
}

// loadOlder asks for the page before the oldest loaded message.
func (u *UI) loadOlder(b *buffer) {
	if b.status || b.loading || b.atStart || !b.loaded {
		return
	}
	b.loading = true
	id, c, n := b.ch, b.oldest(), u.page
	u.do(func(ctx context.Context) func() {
		msgs, err := u.b.Views().Before(id, c, n)
		return func() {
			if err != nil {
				b.loading = false
				b.atStart = true // stop asking; the error is shown
				u.fail("Cannot read older messages: %v", err)
				return
			}
			b.prependOlder(msgs, len(msgs) >= n)
		}
	})
}

// onUpdate applies new arrivals.
func (u *UI) onUpdate(up *update) {
	if st := up.state; st != nil {
		if st.nick != "" {
			u.nick = st.nick
		}
		if !maps.Equal(st.blocked, u.blocked) {
			u.blocked = st.blocked
			for _, b := range u.bufs {
				b.invalidate()
			}
		}
	}
	if up.chans != nil {
		had := u.chans.current()
		u.setChannels(up.chans)
		if now := u.chans.current(); now != nil && now != had {
			u.enter(now)
		}
	}
	u.onPrivate(up.priv)
	cur := u.chans.current()
	bell := false
	for _, cu := range up.per {
		ci := u.chans.get(cu.id)
		if ci == nil {
			continue
		}
		ci.topic = cu.topic
		ci.unread = cu.unread
		b := u.bufs[cu.id]
		isCur := cur != nil && cur.id == cu.id
		if b != nil && b.loaded {
			if cu.count > len(cu.msgs) || cu.editsLost {
				// More arrived than were handed over: reload when shown.
				b.stale = true
				if isCur && b.scroll == 0 {
					u.enter(ci)
				}
			} else {
				b.merge(cu.msgs)
				u.warnSkew(b, cu.msgs)
				if cu.count <= bulkArrivals {
					u.noteLate(b, cu.msgs)
				}
				if b.scroll == 0 {
					b.trim(max(2*u.page, 500))
				}
			}
			b.applyEdits(cu.edits)
			if cu.nicks {
				u.refreshNames(b)
			}
			if isCur && cu.count > bulkArrivals {
				b.summarise(cu.count, u.now())
			}
		}
		if isCur && !u.away {
			ci.unread = views.Unread{}
			if b != nil && b.scroll == 0 {
				u.markRead()
			}
		}
		if cu.live {
			bell = true
		}
		if u.notify != nil && (!isCur || u.away) {
			for _, m := range cu.mentions {
				u.notice(ci, m)
			}
		}
	}
	if bell {
		u.bells++
		u.screen.Beep()
	}
	if cur != nil && u.showNames {
		for _, cu := range up.per {
			if cu.id == cur.id && (cu.count > 0 || cu.nicks) {
				u.refreshNamesPane() // a new author or nickname
				break
			}
		}
	}
	u.updateTitle()
}

// warnSkew adds a note, once per author, when a peer's clock is ahead of
// ours by more than the ordering rule believes: their messages are placed
// at arrival (and marked "~" in the time column), which can look like
// messages out of order.
func (u *UI) warnSkew(b *buffer, msgs []views.Message) {
	for i := range msgs {
		m := &msgs[i]
		ahead := m.Claimed.Sub(m.Time)
		if m.Own || ahead <= skewShown || u.skewWarned[m.Author] || u.hidden(m.Author) || b.modHidesMsg(m) {
			continue
		}
		u.skewWarned[m.Author] = true
		b.addNote(fmt.Sprintf("%s's clock is %s ahead of yours: their messages are placed when they arrive (marked ~)",
			displayName(m), humanSkew(ahead)), false, u.now())
	}
}

// maxLateNotes: at most this many "arrived late" notes at once.
const maxLateNotes = 3

// noteLate adds a note at the bottom for each late message among msgs
// (views.Message.Late: backdated or held back, so placed above, where it
// would be missed; at most maxLateNotes, the newest), quoting it.
func (u *UI) noteLate(b *buffer, msgs []views.Message) {
	var late []*views.Message
	for i := range msgs {
		m := &msgs[i]
		if m.Late && !m.Own && !m.Deleted && !u.hidden(m.Author) && !b.modHidesMsg(m) && (m.Kind == feed.KindText || m.Kind == feed.KindEmote) {
			late = append(late, m)
		}
	}
	if len(late) > maxLateNotes {
		b.addNote(fmt.Sprintf("%d messages arrived late and are placed further up (marked ~); the newest:", len(late)), false, u.now())
		late = late[len(late)-maxLateNotes:]
	}
	for _, m := range late {
		b.addNote(fmt.Sprintf("%s's message of %s arrived late, placed further up (~): %s",
			displayName(m), m.Time.Local().Format("Jan 2 15:04"), cleanInline(m.Text, 200)), false, u.now())
	}
}

// humanSkew says a clock difference for people: "5 min", "3 h", "2 days".
func humanSkew(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d.Round(24*time.Hour)/(24*time.Hour)))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d h", int(d.Round(time.Hour)/time.Hour))
	default:
		return fmt.Sprintf("%d min", max(int(d.Round(time.Minute)/time.Minute), 1))
	}
}

// updateTitle puts the number of unread mentions in the terminal title.
func (u *UI) updateTitle() {
	n := 0
	for _, ci := range u.chans.chans {
		if ci != u.chans.current() || u.away {
			n += ci.unread.Mentions
		}
	}
	t := "kchat"
	if n > 0 {
		t = fmt.Sprintf("kchat (%d)", n)
	}
	if t != u.title {
		u.title = t
		u.app.SetTitle(t)
	}
}

// onNet applies network status.
func (u *UI) onNet(st map[feed.DiscoveryID]NetStatus) {
	for id, s := range st {
		if ci := u.chans.get(id); ci != nil {
			ci.net = s
		}
		for _, f := range s.Forked {
			k := forkKey{id, f.Author}
			if u.forkNoted[k] {
				continue
			}
			u.forkNoted[k] = true
			if b := u.buffer(id); b != nil {
				b.addNote(fmt.Sprintf("%s forked their feed: they signed two different messages at #%d. Nothing more from them is accepted, and other peers may show other messages of theirs (/names marks them)",
					cleanInline(f.Display, 40), f.Seq), false, u.now())
			}
		}
	}
}

type forkKey struct {
	ch     feed.DiscoveryID
	author feed.AuthorID
}

// refreshNames re-reads the display names of the authors loaded in b (a
// nickname claim can change how other authors are shown).
func (u *UI) refreshNames(b *buffer) {
	id := b.ch
	authors := b.authors()
	u.do(func(ctx context.Context) func() {
		r := u.b.Views()
		names := make(map[feed.AuthorID]string, len(authors))
		for _, a := range authors {
			names[a] = r.Display(id, a)
		}
		nick := r.Nick(id, u.self)
		return func() {
			b.refreshDisplay(names)
			if ci := u.chans.current(); ci != nil && ci.id == id && nick != "" {
				u.nick = nick
			}
		}
	})
}

// --- input ---

// submit handles Enter.
func (u *UI) submit() {
	line := u.ed.String()
	if strings.TrimSpace(line) == "" {
		return
	}
	u.hist.add(line)
	u.ed.clear()
	u.cur().scroll = 0
	u.submitted = line
	defer func() { u.submitted = "" }()
	if strings.HasPrefix(line, "/") && !strings.HasPrefix(line, "//") {
		u.command(line)
		return
	}
	line = strings.TrimPrefix(line, "/") // "//text" sends "/text"
	u.send(feed.Payload{Kind: feed.KindText, Text: line})
}

// restore puts a line that could not be sent back in the input line, unless
// the user has started typing another; it says whether it did.
func (u *UI) restore(line string) bool {
	if line == "" || !u.ed.empty() {
		return false
	}
	u.ed.set(line)
	return true
}

// send appends p to the current channel (off the UI goroutine). The line
// appears when the views have indexed it, like everyone else's.
func (u *UI) send(p feed.Payload) {
	ci := u.chans.current()
	if ci == nil {
		u.fail("You are not in a channel: /new NAME creates one, /join KEY joins one.")
		return
	}
	if ci.priv != nil {
		u.sendPrivate(ci, p)
		return
	}
	line := u.submitted
	back := func() string {
		if u.restore(line) {
			return " (your text is back in the input line)"
		}
		return ""
	}
	if _, err := p.Marshal(); err != nil {
		u.fail("Not sent: %v%s", err, back())
		return
	}
	id := ci.id
	u.cur().resetSummary()
	u.do(func(ctx context.Context) func() {
		err := u.b.Send(ctx, id, p)
		if err == nil {
			return nil
		}
		return func() { u.fail("Not sent: %v%s", err, back()) }
	})
}

// pasted handles a bracketed paste: a paste never sends anything by itself.
// Several lines become one message in the input line, to be sent with Enter
// (or cleared with Ctrl+U).
func (u *UI) pasted(text string) {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	text = strings.TrimRight(text, "\n")
	if text == "" {
		return
	}
	if len(u.ed.String())+len(text) > feed.MaxPayload-64 {
		u.fail("Paste not inserted: %s is more than one message can hold (16 KiB).", byteSize(len(text)))
		return
	}
	u.comp.reset()
	u.ed.insert(text)
	if n := strings.Count(text, "\n") + 1; n > 1 {
		u.note("Pasted %d lines into the input: Enter sends them as ONE message, Ctrl+U clears.", n)
	}
}

func byteSize(n int) string {
	if n < 1024 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/1024)
}

// completions lists Tab candidates.
func (u *UI) completions(word string, atStart bool) []string {
	var nicks []string
	b := u.cur()
	for _, a := range b.authors() {
		for i := len(b.items) - 1; i >= 0; i-- {
			it := b.items[i]
			if !it.isNote() && it.msg.Author == a {
				n := it.msg.Nick
				if n == "" {
					n = it.msg.Display
				}
				nicks = append(nicks, cleanInline(n, 64))
				break
			}
		}
	}
	return candidates(word, atStart, commandNames(), nicks)
}
