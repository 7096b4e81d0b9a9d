package ui

import (
	"strings"

	"github.com/gdamore/tcell/v2"
)

// One table of key actions drives both key handling and /help (k9s habit).
// Keys follow irssi/weechat and readline.

// keySpec is one key: a special key, or a rune with or without Alt.
type keySpec struct {
	key tcell.Key
	r   rune
	alt bool
	ctl bool // Ctrl held with a special key (Ctrl+Home)
}

type keyAction struct {
	id   string // the name in a keys file ("" if it cannot be rebound)
	keys []keySpec
	name string // as shown in help: "Ctrl+N, Alt+Right"
	help string
	run  func(u *UI)
}

func k(key tcell.Key) keySpec    { return keySpec{key: key} }
func alt(r rune) keySpec         { return keySpec{key: tcell.KeyRune, r: r, alt: true} }
func altK(key tcell.Key) keySpec { return keySpec{key: key, alt: true} }
func ctlK(key tcell.Key) keySpec { return keySpec{key: key, ctl: true} }

var keyActions []keyAction

func init() {
	keyActions = []keyAction{
		{"send", []keySpec{k(tcell.KeyEnter)}, "Enter", "send the line (or run the /command)", (*UI).submit},
		{"next-channel", []keySpec{k(tcell.KeyCtrlN), altK(tcell.KeyRight)}, "Ctrl+N, Alt+Right", "next channel", func(u *UI) { u.switchTo(u.chans.step(1)) }},
		{"prev-channel", []keySpec{k(tcell.KeyCtrlP), altK(tcell.KeyLeft)}, "Ctrl+P, Alt+Left", "previous channel", func(u *UI) { u.switchTo(u.chans.step(-1)) }},
		{"", digitKeys(), "Alt+1..9, Alt+0", "channel 1..9, 10", nil},
		{"next-active", []keySpec{alt('a')}, "Alt+A", "next channel with mentions, else with unread messages", func(u *UI) { u.switchTo(u.chans.nextActive()) }},
		{"older-mention", []keySpec{alt('m')}, "Alt+M", "scroll to the previous message that mentions you (again: earlier)", (*UI).olderMention},
		{"newer-mention", []keySpec{alt('n')}, "Alt+N", "scroll to the next newer message that mentions you (at the last: the newest)", (*UI).newerMention},
		{"page-up", []keySpec{k(tcell.KeyPgUp)}, "PgUp", "scroll up a page (older history loads as you go)", func(u *UI) { u.cur().scrollUp(u.cur().page()) }},
		{"page-down", []keySpec{k(tcell.KeyPgDn)}, "PgDn", "scroll down a page", func(u *UI) { u.scrollDown(u.cur().page()) }},
		{"scroll-top", []keySpec{ctlK(tcell.KeyHome), altK(tcell.KeyHome)}, "Ctrl+Home, Alt+Home", "scroll to the oldest loaded message (again: older)", (*UI).scrollTop},
		{"scroll-bottom", []keySpec{ctlK(tcell.KeyEnd), altK(tcell.KeyEnd)}, "Ctrl+End, Alt+End", "back to the newest messages", (*UI).scrollBottom},
		{"line-start", []keySpec{k(tcell.KeyHome), k(tcell.KeyCtrlA)}, "Home, Ctrl+A", "start of the input line (Home on an empty line: oldest loaded)", func(u *UI) {
			if u.ed.empty() && u.ed.cur == 0 {
				u.scrollTop()
				return
			}
			u.ed.home()
		}},
		{"line-end", []keySpec{k(tcell.KeyEnd), k(tcell.KeyCtrlE)}, "End, Ctrl+E", "end of the input line (End on an empty line: newest)", func(u *UI) {
			if u.ed.empty() {
				u.scrollBottom()
				return
			}
			u.ed.end()
		}},
		{"history-up", []keySpec{k(tcell.KeyUp)}, "Up", "previous sent line (history)", func(u *UI) {
			if s, ok := u.hist.up(u.ed.String()); ok {
				u.ed.set(s)
			}
		}},
		{"history-down", []keySpec{k(tcell.KeyDown)}, "Down", "next line in history", func(u *UI) {
			if s, ok := u.hist.down(u.ed.String()); ok {
				u.ed.set(s)
			}
		}},
		{"complete", []keySpec{k(tcell.KeyTab)}, "Tab", "complete a nickname or /command (again: next match)", func(u *UI) {
			u.comp.complete(&u.ed, u.completions)
		}},
		{"left", []keySpec{k(tcell.KeyLeft), k(tcell.KeyCtrlB)}, "Left, Ctrl+B", "cursor left", func(u *UI) { u.ed.left() }},
		{"right", []keySpec{k(tcell.KeyRight), k(tcell.KeyCtrlF)}, "Right, Ctrl+F", "cursor right", func(u *UI) { u.ed.right() }},
		{"word-left", []keySpec{alt('b'), ctlK(tcell.KeyLeft)}, "Alt+B, Ctrl+Left", "word left", func(u *UI) { u.ed.wordLeft() }},
		{"word-right", []keySpec{alt('f'), ctlK(tcell.KeyRight)}, "Alt+F, Ctrl+Right", "word right", func(u *UI) { u.ed.wordRight() }},
		{"backspace", []keySpec{k(tcell.KeyBackspace), k(tcell.KeyBackspace2)}, "Backspace", "delete left", func(u *UI) { u.ed.backspace() }},
		{"delete", []keySpec{k(tcell.KeyDelete), k(tcell.KeyCtrlD)}, "Delete, Ctrl+D", "delete right", func(u *UI) { u.ed.del() }},
		{"kill-to-start", []keySpec{k(tcell.KeyCtrlU)}, "Ctrl+U", "delete to the start of the line", func(u *UI) { u.ed.killToStart() }},
		{"kill-to-end", []keySpec{k(tcell.KeyCtrlK)}, "Ctrl+K", "delete to the end of the line", func(u *UI) { u.ed.killToEnd() }},
		{"kill-word", []keySpec{k(tcell.KeyCtrlW), altK(tcell.KeyBackspace2), altK(tcell.KeyBackspace)}, "Ctrl+W, Alt+Backspace", "delete the word left", func(u *UI) { u.ed.killWord() }},
		{"yank", []keySpec{k(tcell.KeyCtrlY)}, "Ctrl+Y", "paste what was last deleted", func(u *UI) { u.ed.yank() }},
		{"redraw", []keySpec{k(tcell.KeyCtrlL)}, "Ctrl+L", "redraw the screen", func(u *UI) { u.app.Sync() }},
		{"help", []keySpec{k(tcell.KeyF1)}, "F1", "help", func(u *UI) { u.help() }},
		{"names-pane", []keySpec{k(tcell.KeyF2)}, "F2", "show or hide the channel's people at the right", (*UI).toggleNames},
		{"quit", []keySpec{k(tcell.KeyCtrlC)}, "Ctrl+C", "quit (same as /quit); with unsent text it asks first", (*UI).interrupt},
	}
}

func digitKeys() []keySpec {
	var ks []keySpec
	for r := '0'; r <= '9'; r++ {
		ks = append(ks, alt(r))
	}
	return ks
}

// matches reports whether ev is the key s.
func (s keySpec) matches(ev *tcell.EventKey) bool {
	mods := ev.Modifiers()
	if ev.Key() != s.key {
		return false
	}
	if s.key == tcell.KeyRune {
		return s.alt == (mods&tcell.ModAlt != 0) && strings.EqualFold(string(ev.Rune()), string(s.r))
	}
	if s.alt != (mods&tcell.ModAlt != 0) {
		return false
	}
	if isCtrlKey(s.key) {
		return true // Ctrl is part of the key itself
	}
	return s.ctl == (mods&tcell.ModCtrl != 0)
}

func isCtrlKey(key tcell.Key) bool {
	return key >= tcell.KeyCtrlA && key <= tcell.KeyCtrlZ || key == tcell.KeyBackspace2
}

// handleKey dispatches a key event (the UI goroutine).
func (u *UI) handleKey(ev *tcell.EventKey) {
	if ev.Key() != tcell.KeyCtrlC {
		u.quitAsked = false
	}
	if ev.Key() != tcell.KeyTab {
		u.comp.reset()
	}
	if ev.Key() == tcell.KeyRune && ev.Modifiers()&tcell.ModAlt != 0 && ev.Rune() >= '0' && ev.Rune() <= '9' {
		i := int(ev.Rune() - '1')
		if ev.Rune() == '0' {
			i = 9
		}
		u.switchTo(i)
		return
	}
	for _, a := range u.keys {
		if a.run == nil {
			continue
		}
		for _, s := range a.keys {
			if s.matches(ev) {
				a.run(u)
				return
			}
		}
	}
	if ev.Key() == tcell.KeyRune && ev.Modifiers()&tcell.ModAlt == 0 {
		u.ed.insert(string(ev.Rune()))
	}
}

// scrollDown scrolls towards the newest message; reaching it resumes
// following, marks the channel read, and reloads a page that went stale.
func (u *UI) scrollDown(n int) {
	b := u.cur()
	b.scrollDown(n)
	if b.scroll == 0 {
		u.atBottom(b)
	}
}

func (u *UI) scrollBottom() {
	b := u.cur()
	b.scroll = 0
	u.atBottom(b)
}

func (u *UI) atBottom(b *buffer) {
	b.below = 0
	if ci := u.chans.current(); ci != nil {
		if b.stale {
			u.enter(ci)
			return
		}
		b.trim(max(2*u.page, 500))
		u.markRead()
	}
}

// olderMention scrolls to the previous loaded message that mentions the
// user; pressed again, to the one before.
func (u *UI) olderMention() {
	b := u.cur()
	s, ok := b.olderMention(u.hidden)
	if !ok {
		if b.scroll > 0 {
			u.screen.Beep() // a note would land below the view
			return
		}
		u.note("No earlier mention of you is loaded here (PgUp loads older messages).")
		return
	}
	b.scroll = s
}

// newerMention scrolls forward to the next message that mentions the
// user; past the newest mention, back to the newest messages.
func (u *UI) newerMention() {
	b := u.cur()
	s, ok := b.newerMention(u.hidden)
	if !ok {
		return
	}
	if s == 0 {
		u.scrollBottom()
		return
	}
	b.scroll = s
}

// scrollTop scrolls to the oldest loaded message; the view then loads an
// older page, so pressing it again goes further back.
func (u *UI) scrollTop() {
	b := u.cur()
	b.scroll = 1 << 30 // clamped at the next draw
}
