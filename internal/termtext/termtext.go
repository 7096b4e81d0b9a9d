// Package termtext makes untrusted text (anything a peer wrote: messages,
// nicknames, topics, channel names) safe to print on a terminal. It is the
// one sanitiser of kchat: the UI draws only its output, and the command
// line prints only its output.
package termtext

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxMarks caps combining marks per character ("zalgo" text).
const maxMarks = 4

// Lines makes untrusted text safe to draw and splits it into the lines its
// author wrote. The result has at least one element.
//
//   - terminal escape sequences (ESC- and C1-introduced: CSI, OSC, DCS, ...)
//     are removed whole;
//   - other C0/C1 control characters and DEL are shown as visible symbols
//     (U+2400 block), tab becomes spaces;
//   - bidirectional controls (embeddings, overrides, isolates, LRM, RLM,
//     ALM) are removed, so a message cannot reorder the text around it;
//   - invisible characters (zero-width space, joiners and non-joiner, word
//     joiner, invisible operators, BOM, the Mongolian vowel separator,
//     interlinear annotation controls) are removed, so two strings that
//     look alike are alike; only a zero-width joiner between two emoji is
//     kept (it draws them as one picture);
//   - more than maxMarks combining marks on one character are dropped;
//   - CR, LF, CRLF, NEL, LS and PS end a line;
//   - invalid UTF-8 becomes U+FFFD.
func Lines(s string) []string {
	var lines []string
	var b strings.Builder
	marks := 0
	flush := func() {
		lines = append(lines, b.String())
		b.Reset()
		marks = 0
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune('\uFFFD')
			marks = 0
		case r == '\r':
			if i < len(s) && s[i] == '\n' {
				i++
			}
			flush()
		case r == '\n' || r == '\u0085' || r == '\u2028' || r == '\u2029':
			flush()
		case r == '\t':
			b.WriteString("    ")
			marks = 0
		case r == 0x1b:
			i = skipEscape(s, i)
		case r == 0x9b: // C1 CSI
			i = skipCSI(s, i)
		case r == 0x9d || r == 0x90 || r == 0x98 || r == 0x9e || r == 0x9f: // C1 OSC, DCS, SOS, PM, APC
			i = skipString(s, i)
		case r < 0x20 || r == 0x7f:
			b.WriteRune(controlPicture(r))
			marks = 0
		case r >= 0x80 && r < 0xa0:
			b.WriteRune('\uFFFD')
			marks = 0
		case r == '\u200D' && joinsEmoji(b.String(), s[i:]):
			// A zero-width joiner inside an emoji sequence (👩‍👩‍👧) is kept:
			// it joins pictures, it cannot make two words look alike.
			b.WriteRune(r)
		case IsBidiControl(r) || IsInvisible(r):
			// dropped
		case unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r):
			if marks >= maxMarks {
				continue
			}
			if b.Len() == 0 {
				// A mark must not combine with what is drawn before the text.
				b.WriteRune('\u00a0')
			}
			b.WriteRune(r)
			marks++
		default:
			b.WriteRune(r)
			marks = 0
		}
	}
	flush()
	return lines
}

// IsBidiControl reports whether r is a bidirectional formatting control.
func IsBidiControl(r rune) bool {
	switch {
	case r >= '\u202A' && r <= '\u202E': // LRE RLE PDF LRO RLO
		return true
	case r >= '\u2066' && r <= '\u2069': // LRI RLI FSI PDI
		return true
	case r == '\u200E' || r == '\u200F' || r == '\u061C': // LRM RLM ALM
		return true
	}
	return false
}

// IsInvisible reports whether r is a character that draws nothing and is not
// a combining mark: zero-width space, non-joiner and joiner, word joiner and
// invisible operators, BOM / zero-width no-break space, the Mongolian vowel
// separator, and the interlinear annotation controls.
func IsInvisible(r rune) bool {
	switch {
	case r >= '\u200B' && r <= '\u200D':
		return true
	case r >= '\u2060' && r <= '\u2064':
		return true
	case r == '\uFEFF' || r == '\u180E':
		return true
	case r >= '\uFFF9' && r <= '\uFFFB':
		return true
	}
	return false
}

// joinsEmoji reports whether a zero-width joiner between before and after
// stands between two pictographic characters.
func joinsEmoji(before, after string) bool {
	p, _ := utf8.DecodeLastRuneInString(before)
	n, _ := utf8.DecodeRuneInString(after)
	return isPictographic(p) && isPictographic(n)
}

// isPictographic approximates Extended_Pictographic: the emoji planes, the
// dingbats and miscellaneous symbols, and the emoji presentation selector
// that may end an emoji before a joiner.
func isPictographic(r rune) bool {
	return r >= 0x1F000 && r <= 0x1FAFF || r >= 0x2600 && r <= 0x27BF || r == 0xFE0F
}

// controlPicture maps a C0 control or DEL to its visible symbol.
func controlPicture(r rune) rune {
	if r == 0x7f {
		return '\u2421'
	}
	return 0x2400 + r
}

// skipEscape skips the escape sequence whose ESC was just before s[i] and
// returns the index after it.
func skipEscape(s string, i int) int {
	if i >= len(s) {
		return i
	}
	switch s[i] {
	case '[':
		return skipCSI(s, i+1)
	case ']', 'P', 'X', '^', '_':
		return skipString(s, i+1)
	}
	// nF sequences: intermediates 0x20-0x2F then one final byte.
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
		i++
	}
	if i < len(s) && s[i] >= 0x30 && s[i] <= 0x7e {
		i++
	}
	return i
}

// skipCSI skips parameter and intermediate bytes and the final byte.
func skipCSI(s string, i int) int {
	for i < len(s) {
		c := s[i]
		i++
		if c >= 0x40 && c <= 0x7e {
			return i
		}
		if c < 0x20 || c > 0x7e {
			// Not a CSI byte: the sequence is broken; stop here and let the
			// rest be shown (cleaned).
			return i - 1
		}
	}
	return i
}

// skipString skips an OSC/DCS/SOS/PM/APC string up to BEL, ESC \ or C1 ST.
func skipString(s string, i int) int {
	for i < len(s) {
		switch {
		case s[i] == 0x07:
			return i + 1
		case s[i] == 0x1b:
			if i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
			return i + 1
		case strings.HasPrefix(s[i:], "\u009c"):
			return i + len("\u009c")
		}
		i++
	}
	return i
}

// Inline is Lines for one-line output (nicknames, topics, one message on
// one line of `kchat read`): line breaks become a visible ⏎.
func Inline(s string) string {
	return strings.Join(Lines(s), "⏎")
}
