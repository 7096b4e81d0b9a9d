// Package ui is kchat's terminal user interface (tview).
//
// The UI talks to the running node only through Backend: it reads through
// the views' API (Reader) and writes through the node's send path. Every
// Backend call runs on one background goroutine (see pump.go), never on the
// UI goroutine, and every change reaches tview through QueueUpdateDraw.
//
// Layers, as in k9s: the model (buffer.go, chanlist.go, editor.go,
// history.go, complete.go, layout.go, sanitize.go, text.go) is plain Go
// without tview and is tested as pure functions; widgets.go draws it;
// app.go, keys.go and commands.go make the screen.
package ui

import (
	"context"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/views"
)

// Backend is what the UI needs from the running node.
type Backend interface {
	// Self is the local user's author id.
	Self() feed.AuthorID
	// Channels lists the joined channels, ordered by name.
	Channels() ([]feed.Channel, error)
	// Send appends p to the local user's feed in channel ch (a local,
	// durable append; replication pushes it to peers later).
	Send(ctx context.Context, ch feed.DiscoveryID, p feed.Payload) error
	// Join joins the channel with key under the local name (never empty:
	// the UI picks a default), announces the remembered nickname in it (a
	// nick entry) and starts finding its peers.
	Join(ctx context.Context, key feed.ChannelKey, name string) (feed.Channel, error)
	// Create makes a new channel named name and joins it (as Join).
	Create(ctx context.Context, name string) (feed.Channel, error)
	// Part leaves channel ch (it is no longer listed or replicated).
	Part(ctx context.Context, ch feed.DiscoveryID) error
	// PurgeChannel leaves channel ch and deletes everything stored of it.
	PurgeChannel(ctx context.Context, ch feed.DiscoveryID) error
	// Nick is the remembered nickname ("" if never set).
	Nick() string
	// SetNick remembers the nickname for channels joined later and
	// announces it with a nick entry in every joined channel (none joined:
	// it is only remembered).
	SetNick(ctx context.Context, nick string) error
	// Views is the read side. *views.Views satisfies Reader.
	Views() Reader
	// Status is the network state of channel ch, for the status bar.
	Status(ch feed.DiscoveryID) NetStatus
	// Peers lists the peers known for channel ch, connected ones first.
	Peers(ch feed.DiscoveryID) []PeerInfo
	// Addrs lists the multiaddrs (with /p2p/ID) others can dial to reach
	// this node with --peer; empty when the network is off.
	Addrs() []string
	// Connect dials the peer at addr (a multiaddr ending in /p2p/ID) and
	// syncs every joined channel it shares; it returns their names. The
	// peer is remembered (redialled after a restart).
	Connect(ctx context.Context, addr string) ([]string, error)
	// NetChanged signals (coalescing, like views.Subscription) that Status
	// or Peers may have changed. It may be nil if nothing ever changes.
	NetChanged() <-chan struct{}
	// StateChanged signals (coalescing) that the local state may have
	// changed whatever made the change (this UI or a headless command run
	// through the node's control socket): the joined channels, the
	// nickname, the block lists. It may be nil if nothing else changes them.
	StateChanged() <-chan struct{}
	// Block blocks author a in channel ch: their feed is no longer stored
	// or forwarded, and the UI hides them; with purge, what was stored of it
	// is deleted. Unblock lifts the block. The list is the node's to keep
	// (per channel; it survives restarts).
	Block(ctx context.Context, ch feed.DiscoveryID, a feed.AuthorID, purge bool) error
	Unblock(ch feed.DiscoveryID, a feed.AuthorID) error
	// Blocked is the set of authors blocked in any joined channel (hidden).
	Blocked() map[feed.AuthorID]bool
	// Members lists the authors of channel ch (see views.Members), with
	// whether they are blocked or forked.
	Members(ch feed.DiscoveryID) ([]Member, error)
	// ResolveAuthor finds the author who means in ch: a nick as displayed
	// (with its ~suffix where shown), a 64-hex id, or a unique id prefix of
	// at least 8 hex digits (views.FindMember).
	ResolveAuthor(ch feed.DiscoveryID, who string) (feed.AuthorID, error)
}

// Member is one author of a channel, for /names.
type Member struct {
	Author   feed.AuthorID
	Nick     string // latest nickname ("" if none)
	Display  string // as views.Message.Display
	Messages int
	Blocked  bool
	Forked   bool   // signed two entries at one seq: their later entries are refused
	Role     string // moderation role for the local user: "admin", "mod" or ""
	Hidden   bool   // moderation hides the author for the local user
	// LastArrival is when the author's newest entry reached this device
	// (zero if unknown): the names pane marks who was heard from recently.
	LastArrival time.Time
}

// Reader is the part of the views' API the UI reads through.
type Reader interface {
	Last(ch feed.DiscoveryID, n int) ([]views.Message, error)
	Before(ch feed.DiscoveryID, c views.Cursor, n int) ([]views.Message, error)
	Arrived(ch feed.DiscoveryID, after uint64, n int) ([]views.Message, error)
	Edits(ch feed.DiscoveryID, after uint64, n int) ([]views.Edit, error)
	Unread(ch feed.DiscoveryID) (views.Unread, error)
	MarkRead(ch feed.DiscoveryID) error
	ReadMarker(ch feed.DiscoveryID) (views.Cursor, error)
	ReadArrival(ch feed.DiscoveryID) (uint64, error)
	Topic(ch feed.DiscoveryID) (string, error)
	Nick(ch feed.DiscoveryID, a feed.AuthorID) string
	Display(ch feed.DiscoveryID, a feed.AuthorID) string
	Indexed() uint64
	Subscribe() *views.Subscription
	Search(ch feed.DiscoveryID, query string, c views.Cursor, n int) ([]views.Message, views.Cursor, error)
}

var _ Reader = (*views.Views)(nil)

// NetStatus is the network state of one channel.
type NetStatus struct {
	// Peers is the number of peers connected for this channel.
	Peers int
	// Known is the number of peers found but not connected now.
	Known int
	// Have and Want give sync progress: entries held of the entries the
	// connected peers announced. Syncing while Want > Have.
	Have, Want uint64
	// Searching is true while discovery is looking for peers.
	Searching bool
	// Problem is a short description of a network problem ("" if none),
	// such as "DHT unreachable" or "listen failed".
	Problem string
	// Forked lists the authors of the channel found to have forked their
	// feed (signed two entries at one seq): nothing more of theirs is
	// accepted, and peers may show different messages of theirs.
	Forked []Forked
}

// Forked is an author whose feed forked, as the UI says it.
type Forked struct {
	Author  feed.AuthorID
	Display string // the author as shown
	Seq     uint64 // where the two entries are
}

// Syncing reports whether the channel is catching up with its peers.
func (s NetStatus) Syncing() bool { return s.Want > s.Have }

// PeerInfo is one peer of a channel, for /peers.
type PeerInfo struct {
	ID        string // libp2p peer id
	Source    string // how it was found: "mdns", "dht", "relay", "manual", "inbound"
	Addr      string // the address of the connection ("" if none)
	Connected bool
	LastSeen  time.Time
}
