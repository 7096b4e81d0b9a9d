package views_test

import (
	"context"
	"fmt"
	"os"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/storage"
	"github.com/kchat-p2p/kchat/views"
)

// A one-shot reader (what `kchat read` does): open the views, wait until
// they hold what the store holds, read the last page.
func Example() {
	dir, _ := os.MkdirTemp("", "kchat-example")
	defer os.RemoveAll(dir)
	db, err := storage.Open(dir, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	st, _ := feed.Open(db)
	key, _ := feed.NewChannelKey()
	ch := feed.Channel{Key: key, Name: "general"}
	_ = st.Join(ch)
	me, _ := feed.NewIdentity()
	ctx := context.Background()
	_, _ = st.Append(ctx, me, ch.ID(),
		feed.Payload{Kind: feed.KindNick, Text: "ann"},
		feed.Payload{Kind: feed.KindTopic, Text: "kappa"},
		feed.Payload{Kind: feed.KindText, Text: "hello"},
		feed.Payload{Kind: feed.KindEmote, Text: "waves"})

	v, err := views.Open(db, st, me.ID())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer v.Close()
	if err := v.CatchUp(ctx); err != nil {
		fmt.Println(err)
		return
	}
	msgs, _ := v.Last(ch.ID(), 50)
	for _, m := range msgs {
		switch m.Kind {
		case feed.KindText:
			fmt.Printf("<%s> %s\n", m.Display, m.Text)
		case feed.KindEmote:
			fmt.Printf("* %s %s\n", m.Display, m.Text)
		case feed.KindNick:
			fmt.Printf("-- %s is now known as %s\n", "someone", m.Text)
		case feed.KindTopic:
			fmt.Printf("-- %s set the topic: %s\n", m.Display, m.Text)
		}
	}
	topic, _ := v.Topic(ch.ID())
	fmt.Println("topic:", topic)
	// Output:
	// -- someone is now known as ann
	// -- ann set the topic: kappa
	// <ann> hello
	// * ann waves
	// topic: kappa
}
