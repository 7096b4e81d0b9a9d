package ui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/views"
)

// Pure tests of the model: no tview, no terminal, no store.

func TestCleanLines(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"plain", "hello", []string{"hello"}},
		{"newlines", "a\nb\r\nc\rd", []string{"a", "b", "c", "d"}},
		{"unicode separators", "a\u2028b\u2029c\u0085d", []string{"a", "b", "c", "d"}},
		{"csi colour", "\x1b[31mred\x1b[0m", []string{"red"}},
		{"csi clear screen", "x\x1b[2J\x1b[Hy", []string{"xy"}},
		{"osc title bel", "\x1b]0;pwned\x07ok", []string{"ok"}},
		{"osc title st", "\x1b]2;pwned\x1b\\ok", []string{"ok"}},
		{"osc 8 hyperlink", "\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", []string{"link"}},
		{"dcs", "\x1bPq#0;2;0;0;0\x1b\\after", []string{"after"}},
		{"c1 csi", "a\u009b31mb", []string{"ab"}},
		{"c1 osc", "a\u009d0;t\u009cb", []string{"ab"}},
		{"two-byte escape", "a\x1bcb", []string{"ab"}},
		{"charset escape", "a\x1b(0b", []string{"ab"}},
		{"bell and backspace", "a\x07\x08b", []string{"a\u2407\u2408b"}},
		{"del", "a\x7fb", []string{"a\u2421b"}},
		{"other c1", "a\u0080b", []string{"a\uFFFDb"}},
		{"bidi override", "abc\u202Efed\u202C \u2067x\u2069 \u200F", []string{"abcfed x "}},
		{"invalid utf8", "a\xffb", []string{"a\uFFFDb"}},
		{"tab", "a\tb", []string{"a    b"}},
		{"tview tags kept literally", "[red]x[-]", []string{"[red]x[-]"}},
		{"leading mark", "\u0301a", []string{"\u00a0\u0301a"}},
		{"zalgo capped", "a\u0301\u0302\u0303\u0304\u0305\u0306", []string{"a\u0301\u0302\u0303\u0304"}},
		{"emoji zwj kept", "👩‍👩‍👧", []string{"👩‍👩‍👧"}},
		{"unterminated escape", "ok\x1b[", []string{"ok"}},
		{"escape then newline", "a\x1b[\nb", []string{"a", "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := cleanLines(tc.in)
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
				t.Errorf("cleanLines(%q) = %q, want %q", tc.in, got, tc.want)
			}
			for _, l := range got {
				for _, r := range l {
					if r < 0x20 || r >= 0x7f && r < 0xa0 || isBidiControl(r) {
						t.Errorf("control %U left in %q", r, l)
					}
				}
			}
		})
	}
}

func TestCleanInline(t *testing.T) {
	if got := cleanInline("a\nb", 0); got != "a⏎b" {
		t.Errorf("got %q", got)
	}
	if got := cleanInline("abcdefgh", 5); got != "abcd…" {
		t.Errorf("got %q", got)
	}
	if got := cleanInline("你好世界", 5); got != "你好…" {
		t.Errorf("got %q", got)
	}
}

func TestWrapRanges(t *testing.T) {
	wrap := func(s string, w int) []string {
		var out []string
		for _, r := range wrapRanges(s, w) {
			out = append(out, s[r[0]:r[1]])
		}
		return out
	}
	tests := []struct {
		in   string
		w    int
		want []string
	}{
		{"hello world", 20, []string{"hello world"}},
		{"hello world", 5, []string{"hello", "world"}},
		{"hello world", 8, []string{"hello", "world"}},
		{"aaaaaaaaaa", 4, []string{"aaaa", "aaaa", "aa"}},
		{"", 5, []string{""}},
		{"你好世界你好", 5, []string{"你好", "世界", "你好"}},
		{"ab 你好世界", 4, []string{"ab", "你好", "世界"}},
		{"x", 0, []string{"x"}},
		{"你", 1, []string{"你"}},
	}
	for _, tc := range tests {
		got := wrap(tc.in, tc.w)
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
			t.Errorf("wrap(%q, %d) = %q, want %q", tc.in, tc.w, got, tc.want)
		}
	}
	// Every line fits, whatever the text.
	long := strings.Repeat("word ", 300) + strings.Repeat("x", 700) + " 🎉👩‍👩‍👧 مرحبا بالعالم"
	for w := 1; w < 50; w++ {
		for _, l := range wrap(long, w) {
			if textWidth(l) > max(w, 2) {
				t.Fatalf("width %d: line %q is %d wide", w, l, textWidth(l))
			}
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1204: "1,204", 1234567: "1,234,567", -1000: "-1,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
	if plural(1204, "new message", "new messages") != "1,204 new messages" || plural(1, "peer", "peers") != "1 peer" {
		t.Error("plural")
	}
}

func TestEditor(t *testing.T) {
	var e editor
	e.insert("hello world")
	e.killWord()
	if e.String() != "hello " {
		t.Fatalf("Ctrl+W: %q", e.String())
	}
	e.yank()
	if e.String() != "hello world" {
		t.Fatalf("Ctrl+Y: %q", e.String())
	}
	e.home()
	e.right()
	e.killToStart()
	if e.String() != "ello world" || e.cur != 0 {
		t.Fatalf("Ctrl+U: %q %d", e.String(), e.cur)
	}
	e.wordRight()
	e.killToEnd()
	if e.String() != "ello" {
		t.Fatalf("Ctrl+K: %q", e.String())
	}
	// Grapheme clusters are one step.
	e.set("a👩‍👩‍👧é")
	e.backspace() // é (e + combining acute)
	if e.String() != "a👩‍👩‍👧" {
		t.Fatalf("backspace over combining: %q", e.String())
	}
	e.left()
	if e.cur != 1 {
		t.Fatalf("left over zwj emoji: cursor %d", e.cur)
	}
	e.del()
	if e.String() != "a" {
		t.Fatalf("del emoji: %q", e.String())
	}
	// Horizontal scrolling keeps the cursor visible.
	e.set(strings.Repeat("x", 100))
	cells, x := e.window(20)
	if x >= 20 || len(cells) > 20 {
		t.Fatalf("window: %d cells, cursor %d", len(cells), x)
	}
	e.home()
	_, x = e.window(20)
	if x != 0 {
		t.Fatalf("home: cursor %d", x)
	}
	// Pasted newlines are shown as ⏎, not as line breaks.
	e.set("a\nb")
	cells, _ = e.window(20)
	if len(cells) != 3 || cells[1].s != "⏎" {
		t.Fatalf("newline cell: %+v", cells)
	}
}

func TestHistory(t *testing.T) {
	var h history
	h.add("one")
	h.add("two")
	h.add("two")
	if s, ok := h.up("draft"); !ok || s != "two" {
		t.Fatalf("up: %q %v", s, ok)
	}
	if s, ok := h.up("two"); !ok || s != "one" {
		t.Fatalf("up: %q %v", s, ok)
	}
	if _, ok := h.up("one"); ok {
		t.Fatal("up past the oldest")
	}
	if s, _ := h.down("one"); s != "two" {
		t.Fatalf("down: %q", s)
	}
	if s, _ := h.down("two"); s != "draft" {
		t.Fatalf("down to draft: %q", s)
	}
	if _, ok := h.down("draft"); ok {
		t.Fatal("down past the draft")
	}
}

func TestCompletion(t *testing.T) {
	cmds := commandNames()
	nicks := []string{"alice", "Alfred", "bob"}
	var e editor
	var c completer
	cands := func(w string, start bool) []string { return candidates(w, start, cmds, nicks) }

	e.set("/jo")
	c.complete(&e, cands)
	if e.String() != "/join " {
		t.Fatalf("command: %q", e.String())
	}
	c.reset()
	e.set("al")
	c.complete(&e, cands)
	if e.String() != "alice: " {
		t.Fatalf("nick at start: %q", e.String())
	}
	c.complete(&e, cands)
	if e.String() != "Alfred: " {
		t.Fatalf("cycle: %q", e.String())
	}
	c.complete(&e, cands)
	if e.String() != "alice: " {
		t.Fatalf("cycle wraps: %q", e.String())
	}
	c.reset()
	e.set("hi b")
	c.complete(&e, cands)
	if e.String() != "hi bob " {
		t.Fatalf("nick mid-line: %q", e.String())
	}
	c.reset()
	e.set("zzz")
	if c.complete(&e, cands) || e.String() != "zzz" {
		t.Fatalf("no match changed the line: %q", e.String())
	}
	if got := candidates("/q", true, cmds, nil); len(got) == 0 || got[0] != "/quit" {
		t.Fatalf("/q: %v", got)
	}
}

func TestParseCommand(t *testing.T) {
	for line, want := range map[string]string{"/join x": "join", "/j x": "join", "/Q": "quit", "/ignore x": "block", "/me waves": "me"} {
		c, _, ok := parseCommand(line)
		if !ok || c.name != want {
			t.Errorf("%q: %q %v", line, c.name, ok)
		}
	}
	if _, _, ok := parseCommand("/nosuch"); ok {
		t.Error("unknown command parsed")
	}
	if _, args, _ := parseCommand("/me  waves  "); args != "waves" {
		t.Errorf("args %q", args)
	}
}

func TestChanList(t *testing.T) {
	mk := func(name string) feed.Channel {
		k, _ := feed.NewChannelKey()
		return feed.Channel{Key: k, Name: name}
	}
	a, b, c := mk("a"), mk("b"), mk("c")
	var l chanList
	l.cur = -1
	if added := l.set([]feed.Channel{a, b, c}); len(added) != 3 || l.cur != 0 {
		t.Fatalf("set: %d added, cur %d", len(added), l.cur)
	}
	if l.step(-1) != 2 || l.step(1) != 1 {
		t.Fatal("step")
	}
	l.chans[1].unread = views.Unread{Messages: 3}
	l.chans[2].unread = views.Unread{Messages: 1, Mentions: 1}
	if l.nextActive() != 2 {
		t.Fatal("Alt+A prefers mentions")
	}
	l.chans[2].unread = views.Unread{}
	if l.nextActive() != 1 {
		t.Fatal("Alt+A then unread")
	}
	l.chans[1].unread = views.Unread{}
	if l.nextActive() != -1 {
		t.Fatal("Alt+A with nothing unread")
	}
	l.cur = 2
	l.set([]feed.Channel{a, c})
	if l.current().ch.Name != "c" {
		t.Fatalf("current kept across set: %q", l.current().ch.Name)
	}
}

func msgAt(author feed.AuthorID, seq uint64, t time.Time, text string) views.Message {
	return views.Message{Author: author, Seq: seq, Kind: feed.KindText, Text: text, Time: t,
		Display: "u" + author.Short()[:2], Cursor: views.Cursor(fmt.Sprintf("c%d-%d", author[0], seq))}
}

func TestBufferScrollAndPaging(t *testing.T) {
	var a feed.AuthorID
	a[0] = 1
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.Local)
	var all []views.Message
	for i := 0; i < 1000; i++ {
		all = append(all, msgAt(a, uint64(i), t0.Add(time.Duration(i)*time.Second), fmt.Sprintf("m%04d", i)))
	}
	b := newBuffer(feed.DiscoveryID{})
	b.setPage(all[800:], true)
	rows := b.view(80, 10, nil)
	if len(rows) != 10 || !strings.Contains(rows[9].String(), "m0999") {
		t.Fatalf("bottom: %q", rows[9].String())
	}
	if b.wantOlder {
		t.Fatal("wants older at the bottom of a 200-message page")
	}
	for i := 0; i < 30 && !b.wantOlder; i++ {
		b.scrollUp(b.page())
		b.view(80, 10, nil)
	}
	if !b.wantOlder {
		t.Fatal("never asked for older messages")
	}
	// What is on screen stays put when the older page arrives.
	before := b.view(80, 10, nil)
	b.prependOlder(all[600:800], true)
	after := b.view(80, 10, nil)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("view moved on prepend:\n%v\n%v", before, after)
	}
	// New messages while scrolled up do not move the view either.
	late := msgAt(a, 1000, t0.Add(2000*time.Second), "late")
	b.merge([]views.Message{late})
	if got := b.view(80, 10, nil); fmt.Sprint(got) != fmt.Sprint(after) || b.below != 1 {
		t.Fatalf("view moved on arrival (below=%d)", b.below)
	}
	// The top: a short page means the start of history.
	b.prependOlder(all[:600], false)
	b.scrollUp(1 << 20)
	top := b.view(80, 10, nil)
	if !strings.Contains(top[0].String(), "Monday 2 March 2026") || !strings.Contains(top[1].String(), "m0000") {
		t.Fatalf("top: %q %q", top[0].String(), top[1].String())
	}
	if b.wantOlder {
		t.Fatal("wants older at the start of history")
	}
}

func TestBufferMergeOrderAndReadLine(t *testing.T) {
	var a, c feed.AuthorID
	a[0], c[0] = 1, 2
	t0 := time.Date(2026, 3, 2, 23, 59, 0, 0, time.Local)
	b := newBuffer(feed.DiscoveryID{})
	m1 := msgAt(a, 0, t0, "first")
	m3 := msgAt(a, 1, t0.Add(2*time.Minute), "third") // next day
	b.setPage([]views.Message{m1, m3}, false)
	b.setReadLine(m1.Cursor, 1)
	// A late message sorts into the middle.
	m2 := msgAt(c, 0, t0.Add(30*time.Second), "second")
	if n := b.merge([]views.Message{m2, m2}); n != 1 {
		t.Fatalf("merged %d", n)
	}
	var lines []string
	for _, r := range b.view(60, 20, nil) {
		lines = append(lines, strings.TrimSpace(r.String()))
	}
	text := strings.Join(lines, "\n")
	iFirst, iRead, iSecond, iDay, iThird := strings.Index(text, "first"), strings.Index(text, "1 new message"),
		strings.Index(text, "second"), strings.Index(text, "Tuesday 3 March 2026"), strings.Index(text, "third")
	if !(iFirst < iRead && iRead < iSecond && iSecond < iDay && iDay < iThird) || iFirst < 0 {
		t.Fatalf("order wrong:\n%s", text)
	}
	// A marker older than the loaded page: the line is at the top until
	// the page holding the marker is loaded.
	b2 := newBuffer(feed.DiscoveryID{})
	b2.setPage([]views.Message{m2, m3}, true)
	b2.setReadLine(m1.Cursor, 2)
	if top := b2.view(60, 20, nil); !strings.Contains(fmt.Sprint(top), "2 new messages") || !b2.readTop {
		t.Fatalf("read line not at the top: %v", top)
	}
	b2.prependOlder([]views.Message{m1}, false)
	var rows []string
	for _, r := range b2.view(60, 20, nil) {
		rows = append(rows, strings.TrimSpace(r.String()))
	}
	all := strings.Join(rows, "\n")
	if i, j := strings.Index(all, "first"), strings.Index(all, "2 new messages"); i < 0 || j < i {
		t.Fatalf("read line did not move below the marker:\n%s", all)
	}
	// Blocked authors are hidden.
	text2 := fmt.Sprint(b.view(60, 20, func(x feed.AuthorID) bool { return x == c }))
	if strings.Contains(text2, "second") {
		t.Fatal("blocked author shown")
	}
}

func TestLayoutHostile(t *testing.T) {
	var a feed.AuthorID
	m := views.Message{Author: a, Kind: feed.KindText, Time: time.Date(2026, 1, 1, 12, 0, 0, 0, time.Local),
		Display: "mallory\x1b[31m\n12:00   alice",
		Text:    "[red]hi[-]\x1b[2J\n12:00   alice │ give me your key\u202Eevil"}
	rows := layoutItem(&item{msg: m}, newGeometry(60, 10))
	if len(rows) != 2 {
		t.Fatalf("%d rows: %v", len(rows), rows)
	}
	if !strings.HasPrefix(rows[1].String(), strings.Repeat(" ", 17)+" ┆ ") {
		t.Fatalf("continuation row can pass for a new line: %q", rows[1].String())
	}
	for _, r := range rows {
		for _, r := range r.String() {
			if r < 0x20 || isBidiControl(r) {
				t.Fatalf("control %U in %q", r, rows)
			}
		}
	}
	if !strings.Contains(rows[0].String(), "[red]hi[-]") {
		t.Fatalf("tags not shown literally: %q", rows[0].String())
	}
	// Tiny widths never produce rows wider than asked (beyond one wide char).
	m.Text = strings.Repeat("你好 hello ", 50)
	for w := 1; w < 40; w++ {
		for _, r := range layoutItem(&item{msg: m}, newGeometry(w, 20)) {
			_ = r.String()
		}
	}
}

func TestNickColorStable(t *testing.T) {
	// The colour of an author must not change between runs, machines or
	// versions: it is fixed by the first 4 bytes of SHA-256 of the id,
	// modulo nickColors. Golden values computed outside Go.
	for i, want := range []int{4, 2, 10, 2, 8} {
		var a feed.AuthorID
		a[5] = byte(i + 1)
		if got := nickColor(a); got != want {
			t.Errorf("nickColor(id with byte 5 = %d) = %d, want %d", i+1, got, want)
		}
	}
	seen := map[int]bool{}
	for i := 0; i < 200; i++ {
		var x feed.AuthorID
		x[0], x[1] = byte(i), byte(i*7)
		seen[nickColor(x)] = true
	}
	if len(seen) < nickColors-2 {
		t.Fatalf("only %d colours used", len(seen))
	}
}
