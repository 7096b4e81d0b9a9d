package termtext

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestLines(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{"plain", "hello", []string{"hello"}},
		{"empty", "", []string{""}},
		{"CSI removed with its tail", "a\x1b[2Jb\x1b[1;31mc\x1b[Hd", []string{"abcd"}},
		{"C1 CSI", "a\u009b31mb", []string{"ab"}},
		{"OSC title to BEL", "a\x1b]0;pwned\x07b", []string{"ab"}},
		{"OSC hyperlink to ST", "a\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\b", []string{"alinkb"}},
		{"DCS", "a\x1bPq#0;2;0;0;0\x1b\\b", []string{"ab"}},
		{"two-byte ESC", "a\x1bcb\x1b(Bc", []string{"abc"}},
		{"lone ESC at the end", "a\x1b", []string{"a"}},
		{"bidi overrides and isolates", "a\u202eb\u202ac\u2066d\u2069e", []string{"abcde"}},
		{"LRM RLM ALM", "a\u200eb\u200fc\u061cd", []string{"abcd"}},
		{"zero-width characters", "a\u200bb\u200cc\u200dd\u2060e\ufefff\u180eg\ufff9h", []string{"abcdefgh"}},
		{"joiner kept between emoji only", "👩\u200d👩\u200d👧 a\u200db 👩\u200d", []string{"👩\u200d👩\u200d👧 ab 👩"}},
		{"line and paragraph separators end a line", "a\u2028b\u2029c", []string{"a", "b", "c"}},
		{"CR LF CRLF NEL", "a\rb\nc\r\nd\u0085e", []string{"a", "b", "c", "d", "e"}},
		{"controls shown", "a\x01b\x7fc\x08d", []string{"a\u2401b\u2421c\u2408d"}},
		{"NEL at the end", "a\u0085", []string{"a", ""}},
		{"other C1 replaced", "a\u0080b\u0099c", []string{"a\ufffdb\ufffdc"}},
		{"tab", "a\tb", []string{"a    b"}},
		{"invalid UTF-8", "a\xffb", []string{"a\ufffdb"}},
		{"zalgo capped", "e\u0301\u0301\u0301\u0301\u0301\u0301", []string{"e\u0301\u0301\u0301\u0301"}},
		{"leading mark does not combine with what is before", "\u0301x", []string{"\u00a0\u0301x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Lines(tc.in); !slices.Equal(got, tc.want) {
				t.Fatalf("Lines(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestInline(t *testing.T) {
	got := Inline("hi\x1b[2J\r\n<mallory> fake\u202e\u200f\u2028x")
	if want := "hi⏎<mallory> fake⏎x"; got != want {
		t.Fatalf("Inline = %q, want %q", got, want)
	}
}

// FuzzLines: whatever the input, no output line holds a character a
// terminal would act on or that hides or reorders text.
func FuzzLines(f *testing.F) {
	for _, s := range []string{"a\x1b[2Jb", "\u202e\u2028\u200b", "\x1b]0;x\x07", "\u009b1m", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ls := Lines(s)
		if len(ls) == 0 {
			t.Fatal("no line")
		}
		for _, l := range ls {
			if !utf8.ValidString(l) {
				t.Fatalf("invalid UTF-8 out: %q", l)
			}
			if strings.ContainsAny(l, "\x1b\r\n\u0085\u2028\u2029") {
				t.Fatalf("line break or ESC out: %q", l)
			}
			for _, r := range l {
				if r < 0x20 || (r >= 0x7f && r < 0xa0) || IsBidiControl(r) || IsInvisible(r) && r != '\u200D' {
					t.Fatalf("%U out: %q", r, l)
				}
			}
		}
	})
}
