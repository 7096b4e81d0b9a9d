package ui

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"

	"github.com/gdamore/tcell/v2"
)

// KeyBindings replace the keys of actions, by action id (the names /help
// shows in brackets). Parse them from a keys file with ParseKeyBindings.
type KeyBindings map[string][]keySpec

// WithKeyBindings rebinds keys. A key given to an action is taken from any
// other action that had it.
func WithKeyBindings(kb KeyBindings) Option { return func(u *UI) { u.bindings = kb } }

// ParseKeyBindings reads a keys file: one "ACTION = KEY[, KEY...]" per
// line, "#" starts a comment. KEY is a key name (Enter, Tab, Backspace,
// Delete, Insert, Home, End, PgUp, PgDn, Up, Down, Left, Right, Esc,
// F1-F12) or one character, with modifiers Ctrl+ and Alt+ in front, e.g.
// "Ctrl+N", "Alt+Right", "Alt+a", "F2". A single character needs Ctrl+ or
// Alt+ (alone, it is typed). Errors name the line.
func ParseKeyBindings(r io.Reader) (KeyBindings, error) {
	ids := map[string]bool{}
	for _, a := range keyActions {
		if a.id != "" {
			ids[a.id] = true
		}
	}
	kb := KeyBindings{}
	sc := bufio.NewScanner(r)
	for no := 1; sc.Scan(); no++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if strings.TrimSpace(line) == "" {
			continue
		}
		id, keys, ok := strings.Cut(line, "=")
		id = strings.TrimSpace(id)
		if !ok {
			return nil, fmt.Errorf("line %d: want ACTION = KEY[, KEY...]", no)
		}
		if !ids[id] {
			return nil, fmt.Errorf("line %d: unknown action %q (/help shows the actions in brackets)", no, id)
		}
		var specs []keySpec
		for _, name := range strings.Split(keys, ",") {
			spec, err := parseKey(strings.TrimSpace(name))
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", no, err)
			}
			specs = append(specs, spec)
		}
		kb[id] = specs
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return kb, nil
}

var namedKeys = map[string]tcell.Key{
	"enter": tcell.KeyEnter, "tab": tcell.KeyTab, "backspace": tcell.KeyBackspace2,
	"delete": tcell.KeyDelete, "insert": tcell.KeyInsert, "home": tcell.KeyHome, "end": tcell.KeyEnd,
	"pgup": tcell.KeyPgUp, "pgdn": tcell.KeyPgDn, "up": tcell.KeyUp, "down": tcell.KeyDown,
	"left": tcell.KeyLeft, "right": tcell.KeyRight, "esc": tcell.KeyEscape,
	"f1": tcell.KeyF1, "f2": tcell.KeyF2, "f3": tcell.KeyF3, "f4": tcell.KeyF4, "f5": tcell.KeyF5, "f6": tcell.KeyF6,
	"f7": tcell.KeyF7, "f8": tcell.KeyF8, "f9": tcell.KeyF9, "f10": tcell.KeyF10, "f11": tcell.KeyF11, "f12": tcell.KeyF12,
}

// parseKey parses one key, such as "Ctrl+N", "Alt+Right" or "F2".
func parseKey(s string) (keySpec, error) {
	if s == "" {
		return keySpec{}, fmt.Errorf("empty key")
	}
	parts := strings.Split(s, "+")
	if strings.HasSuffix(s, "++") { // "Alt++": the plus key
		parts = append(parts[:len(parts)-2], "+")
	}
	base := parts[len(parts)-1]
	var ctrl, alt bool
	for _, m := range parts[:len(parts)-1] {
		switch strings.ToLower(m) {
		case "ctrl", "control":
			ctrl = true
		case "alt", "meta":
			alt = true
		default:
			return keySpec{}, fmt.Errorf("key %q: unknown modifier %q (Ctrl or Alt)", s, m)
		}
	}
	if k, ok := namedKeys[strings.ToLower(base)]; ok {
		return keySpec{key: k, alt: alt, ctl: ctrl}, nil
	}
	rs := []rune(base)
	if len(rs) != 1 {
		return keySpec{}, fmt.Errorf("key %q: unknown key name %q", s, base)
	}
	r := unicode.ToLower(rs[0])
	switch {
	case ctrl && r >= 'a' && r <= 'z':
		return keySpec{key: tcell.KeyCtrlA + tcell.Key(r-'a'), alt: alt}, nil
	case ctrl:
		return keySpec{}, fmt.Errorf("key %q: Ctrl goes with a letter or a named key", s)
	case alt:
		return keySpec{key: tcell.KeyRune, r: r, alt: true}, nil
	}
	return keySpec{}, fmt.Errorf("key %q: a character needs Ctrl+ or Alt+ (alone, it is typed)", s)
}

// String is the key as /help shows it.
func (s keySpec) String() string {
	var b strings.Builder
	if s.ctl {
		b.WriteString("Ctrl+")
	}
	if s.alt {
		b.WriteString("Alt+")
	}
	switch {
	case s.key == tcell.KeyRune:
		b.WriteString(strings.ToUpper(string(s.r)))
	case s.key >= tcell.KeyCtrlA && s.key <= tcell.KeyCtrlZ && s.key != tcell.KeyTab && s.key != tcell.KeyEnter && s.key != tcell.KeyBackspace:
		b.WriteString("Ctrl+" + string(rune('A'+s.key-tcell.KeyCtrlA)))
	default:
		for name, k := range namedKeys {
			if k == s.key {
				b.WriteString(displayKeyName(name))
				return b.String()
			}
		}
		b.WriteString(tcell.KeyNames[s.key])
	}
	return b.String()
}

func displayKeyName(n string) string {
	switch n {
	case "pgup":
		return "PgUp"
	case "pgdn":
		return "PgDn"
	}
	return strings.ToUpper(n[:1]) + n[1:]
}

// applyBindings returns a copy of the action table with kb applied.
func applyBindings(table []keyAction, kb KeyBindings) []keyAction {
	out := slices.Clone(table)
	if len(kb) == 0 {
		return out
	}
	for i := range out {
		specs, ok := kb[out[i].id]
		if !ok || out[i].id == "" {
			continue
		}
		out[i].keys = specs
		names := make([]string, len(specs))
		for j, s := range specs {
			names[j] = s.String()
		}
		out[i].name = strings.Join(names, ", ")
	}
	// A rebound key leaves every other action.
	for id, specs := range kb {
		for i := range out {
			if out[i].id == id || out[i].run == nil {
				continue
			}
			kept := out[i].keys[:0:0]
			for _, k := range out[i].keys {
				if !slices.Contains(specs, k) {
					kept = append(kept, k)
				}
			}
			if len(kept) != len(out[i].keys) {
				out[i].keys = kept
				names := make([]string, len(kept))
				for j, s := range kept {
					names[j] = s.String()
				}
				out[i].name = strings.Join(names, ", ")
				if len(kept) == 0 {
					out[i].name = "(no key)"
				}
			}
		}
	}
	return out
}
