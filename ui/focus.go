package ui

import "github.com/gdamore/tcell/v2"

// focusScreen reports the terminal's focus changes, which tview ignores.
// With focus reporting (xterm's mode 1004: most terminal emulators, tmux
// with focus-events on) the UI knows when the user is looking elsewhere:
// messages arriving in the open channel then stay unread, count in the
// terminal title and ring the bell on a mention, and the "new messages"
// line marks where the user left off when they come back. A terminal that
// never reports focus is always focused, as before.
type focusScreen struct {
	tcell.Screen
	onFocus func(focused bool) // called on tview's event goroutine
}

func (s *focusScreen) Init() error {
	if err := s.Screen.Init(); err != nil {
		return err
	}
	s.Screen.EnableFocus()
	return nil
}

func (s *focusScreen) PollEvent() tcell.Event {
	ev := s.Screen.PollEvent()
	if f, ok := ev.(*tcell.EventFocus); ok && s.onFocus != nil {
		s.onFocus(f.Focused)
	}
	return ev
}

// setFocused applies a focus change (on the UI goroutine).
func (u *UI) setFocused(focused bool) {
	if u.away == !focused {
		return
	}
	u.away = !focused
	if focused {
		// Back: show where the user left off, then count the channel read.
		if ci := u.chans.current(); ci != nil && (ci.unread.Messages > 0 || ci.unread.Mentions > 0) {
			u.enter(ci)
		}
	}
	u.updateTitle()
}
