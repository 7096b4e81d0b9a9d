package views

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestSearch(t *testing.T) {
	e := newEnv(t)
	ann, ben := newAuthor(t), newAuthor(t)
	for i := 0; i < 30; i++ {
		a := ann
		if i%2 == 1 {
			a = ben
		}
		msg := fmt.Sprintf("line %d", i)
		if i%5 == 0 {
			msg = fmt.Sprintf("Lunch at %d? Café ÉTÉ", i)
		}
		e.say(a, t0.Add(time.Duration(i)*time.Second), text(msg))
	}
	e.wait()
	got, next, err := e.v.Search(e.d, "LUNCH", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Lunch at 0? Café ÉTÉ", "Lunch at 5? Café ÉTÉ", "Lunch at 10? Café ÉTÉ", "Lunch at 15? Café ÉTÉ", "Lunch at 20? Café ÉTÉ", "Lunch at 25? Café ÉTÉ"}; !slices.Equal(textsOf(got), want) || next != "" {
		t.Fatalf("got %q next %q", textsOf(got), next)
	}
	// Non-ASCII, case-insensitive.
	if got, _, _ := e.v.Search(e.d, "été", "", 100); len(got) != 6 {
		t.Fatalf("unicode fold: %d", len(got))
	}
	// Paging: two at a time, continuing from next.
	var all []string
	var c Cursor
	for {
		got, next, err := e.v.Search(e.d, "lunch", c, 2)
		if err != nil {
			t.Fatal(err)
		}
		all = append(textsOf(got), all...)
		if next == "" {
			break
		}
		c = next
	}
	if len(all) != 6 || all[0] != "Lunch at 0? Café ÉTÉ" {
		t.Fatalf("paged search %q", all)
	}
	if got, _, _ := e.v.Search(e.d, "nothing like this", "", 5); len(got) != 0 {
		t.Fatalf("false match %q", textsOf(got))
	}
}
