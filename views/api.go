// Package views holds kchat's kappa views: indexes computed from the feeds,
// built incrementally and crash-safely, and the read API the UI and the CLI
// share. No caller touches Badger keys; this package owns the prefix "v".
//
// THIS FILE IS THE CONTRACT other packages code against (ui/, cmd/, node/).
// Implementations live beside it; signatures here change only by agreement.
package views

import (
	"time"

	"github.com/kchat-p2p/kchat/feed"
)

// Cursor is an opaque position in a channel's chronological order. The zero
// Cursor ("") means "the end" for Before and "the start" for After.
type Cursor string

// Message is one chat line as readers show it.
type Message struct {
	Channel feed.DiscoveryID
	Author  feed.AuthorID
	Seq     uint64
	Kind    feed.Kind // KindText, KindEmote, KindTopic, KindNick (topic/nick changes are shown as events); never KindEdit or KindDelete
	Text    string
	Time    time.Time // the time it is ordered and shown at (see the ordering rule in docs/architecture.md)
	Claimed time.Time // the time the author's clock claimed
	Arrival uint64    // the feed store's arrival number
	Nick    string    // the author's latest nickname in the channel ("" if none)
	Display string    // what to show: Nick, Nick+"~"+short id if another author claims the same nick, or the short id
	// Late: the message reached this device more than LateTolerance after
	// the time it is placed at (backdated, or held back by its author or
	// the network): it sorts into the past, where it is easily missed.
	Late    bool
	Own     bool // written by the local user
	Mention bool // mentions the local user's nickname, or replies to their message (never true for Own or Deleted)
	Cursor  Cursor
	Edited  bool   // Text is the author's latest edit of the message
	Deleted bool   // the author deleted the message (Text is "")
	ReplyTo *Reply // the message this one replies to (nil if none)
	// PrevNick, for a nick entry, is the nickname it replaced ("" for the
	// author's first), for "ann is now known as annie".
	PrevNick string
}

// Reply is the message another one replies to, as it is now.
type Reply struct {
	Author  feed.AuthorID
	Seq     uint64
	Display string // as Message.Display
	Text    string // its current text ("" if deleted or missing)
	Deleted bool
	Missing bool // not held (yet), or not a text or emote message
}

// Edit is a change to a message a live reader may already show: its latest
// text, or that it was deleted.
type Edit struct {
	Arrival uint64 // the arrival number of the edit or delete
	Author  feed.AuthorID
	Seq     uint64
	Text    string
	Deleted bool
}

// Unread is a channel's count of messages after the local read marker.
type Unread struct {
	Messages int
	Mentions int
}

// The read API (implemented on *Views):
//
//	func Open(db *badger.DB, st *feed.Store, self feed.AuthorID, opts ...Option) (*Views, error)
//	    catches every view up with the store, then follows it live until Close.
//	    Open returns at once; the catch-up runs in the indexer goroutine.
//	func (v *Views) CatchUp(ctx context.Context) error     WaitIndexed(ctx, st.Last()): for one-shot readers
//	func (v *Views) Close() error                         stops the indexer goroutine
//	func (v *Views) Last(ch feed.DiscoveryID, n int) ([]Message, error)          newest n, oldest first
//	func (v *Views) Before(ch feed.DiscoveryID, c Cursor, n int) ([]Message, error)  n older than c, oldest first
//	func (v *Views) After(ch feed.DiscoveryID, c Cursor, n int) ([]Message, error)   n newer than c, oldest first
//	func (v *Views) Arrived(ch feed.DiscoveryID, after uint64, n int) ([]Message, error)
//	    messages of ch whose arrival number is > after, in arrival order (what is new, wherever it sorts)
//	func (v *Views) Edits(ch feed.DiscoveryID, after uint64, n int) ([]Edit, error)
//	    edits and deletes of ch with arrival number > after, in arrival order (for live readers)
//	func (v *Views) Count(ch feed.DiscoveryID) (int, error)
//	func (v *Views) Topic(ch feed.DiscoveryID) (string, error)
//	func (v *Views) Nick(ch feed.DiscoveryID, a feed.AuthorID) string     latest nick or ""
//	func (v *Views) Display(ch feed.DiscoveryID, a feed.AuthorID) string  as Message.Display
//	func (v *Views) Unread(ch feed.DiscoveryID) (Unread, error)
//	func (v *Views) MarkRead(ch feed.DiscoveryID) error    read marker := newest message
//	func (v *Views) ReadMarker(ch feed.DiscoveryID) (Cursor, error)   for the "last read" line
//	func (v *Views) Indexed() uint64                       arrival number processed by every view
//	func (v *Views) WaitIndexed(ctx context.Context, n uint64) error  returns once Indexed() >= n
//	func (v *Views) Subscribe() *Subscription  coalescing signal after each indexed batch
//	    (Subscription: C() <-chan struct{}, Close())
