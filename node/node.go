// Package node is one running kchat: the identity, the feed store, the views
// and (when networked) the libp2p host, discovery and replication, wired
// together over one data dir. The CLI and the UI talk to a Node; a Node that
// serves a data dir also answers the headless commands of other processes
// over a control socket in that dir (see control.go).
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/notify"
	"github.com/kchat-p2p/kchat/internal/perm"
	"github.com/kchat-p2p/kchat/internal/storage"
	"github.com/kchat-p2p/kchat/views"
)

// Options configure a Node.
type Options struct {
	DataDir string
	Logger  *slog.Logger
	// Net, when set, starts the network side (host, discovery, replication).
	Net *NetOptions
	// ReadOnly opens an existing store without writing to it (see
	// storage.OpenReadOnly): for reading history when the disk is full.
	// Writes fail with ErrReadOnly; the views show what was indexed before.
	ReadOnly bool

	trim trimmer // tests: the trimmer's timing and action
}

var (
	// ErrDiskFull: the disk of the data dir has too little free space to
	// open the store for writing (a read-only open still works).
	ErrDiskFull = storage.ErrDiskFull
	// ErrReadOnly: the node was opened with Options.ReadOnly.
	ErrReadOnly = errors.New("the store is open read-only")
)

// Node is a running kchat over one data dir.
type Node struct {
	dir   string
	log   *slog.Logger
	db    *badger.DB
	id    *feed.Identity
	store *feed.Store
	views *views.Views
	net   *network

	readOnly bool

	nickMu sync.Mutex
	// modMu serialises applying moderation blocks; modApplied is the
	// views.ModGeneration they were computed at.
	modMu      sync.Mutex
	modApplied uint64
	modInit    bool
	closed     sync.Once

	// changed signals a change of the local state (joined channels, their
	// names, the nickname, the block lists), whatever made it: the UI, or
	// a headless command through the control socket.
	changed notify.Signal

	stopBG context.CancelFunc // stops the node's own goroutines (trimmer)
	bg     sync.WaitGroup
}

// CheckDataDir creates dir (mode 0700) if it is missing and refuses it
// (perm.ErrUnsafe) unless the current user owns it and nobody else can
// write it.
func CheckDataDir(dir string) error { return perm.EnsureDir("data dir", dir) }

// DefaultDataDir is $XDG_DATA_HOME/kchat, or ~/.local/share/kchat.
func DefaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "kchat")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "kchat-data"
	}
	return filepath.Join(home, ".local", "share", "kchat")
}

// Open opens the data dir (creating it, mode 0700) and starts the node. A
// data dir that another user owns or that group or others can write is
// refused (an error wrapping perm.ErrUnsafe, saying what to fix), and so are
// such identity and host key files: like ssh, kchat does not trust files
// someone else could have planted.
func Open(ctx context.Context, o Options) (*Node, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := CheckDataDir(o.DataDir); err != nil {
		return nil, err
	}
	id, err := feed.LoadOrCreateIdentity(filepath.Join(o.DataDir, "identity"))
	if err != nil {
		return nil, err
	}
	storeDir := filepath.Join(o.DataDir, "store")
	spaceCheck := func() error { return storage.CheckSpace(storeDir) }
	indexCheck := func() error { return storage.CheckFree(storeDir, storage.IndexReserve) }
	openDB, viewOpts := storage.Open, []views.Option{views.WithLogger(o.Logger), views.WithWriteCheck(indexCheck)}
	if o.ReadOnly {
		if o.Net != nil {
			return nil, fmt.Errorf("open node: %w: it cannot run the network", ErrReadOnly)
		}
		spaceCheck = func() error { return ErrReadOnly }
		openDB, viewOpts = storage.OpenReadOnly, []views.Option{views.WithLogger(o.Logger), views.WithReadOnly()}
	}
	db, err := openDB(storeDir, o.Logger)
	if err != nil {
		return nil, err
	}
	n := &Node{dir: o.DataDir, log: o.Logger, db: db, id: id, readOnly: o.ReadOnly}
	if n.store, err = feed.Open(db, feed.WithLogger(o.Logger), feed.WithWriteCheck(spaceCheck)); err != nil {
		db.Close()
		return nil, err
	}
	viewOpts = append(viewOpts, views.WithBlocked(n.Blocked), views.WithBoxKey(id.BoxKey()))
	if n.views, err = views.Open(db, n.store, id.ID(), viewOpts...); err != nil {
		db.Close()
		return nil, err
	}
	if !o.ReadOnly {
		if err := n.migrateBlocked(); err != nil {
			// The old list stays in place and is tried again next time.
			o.Logger.Warn("block list", "err", err)
		}
	}
	if o.Net != nil {
		// Moderation blocks must hold before the network starts: index
		// what an earlier run stored but did not index (bounded; the
		// watcher below applies whatever is indexed later).
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if err := n.views.CatchUp(cctx); err != nil {
			o.Logger.Warn("views not caught up before the network starts", "err", err)
		}
		cancel()
	}
	n.settleModeration() // before the network: moderation blocks hold from the start
	if o.Net != nil {
		if n.net, err = startNetwork(ctx, n, *o.Net); err != nil {
			n.views.Close()
			db.Close()
			return nil, err
		}
	}
	bgCtx, cancel := context.WithCancel(context.Background())
	n.stopBG = cancel
	if !o.ReadOnly {
		n.startTrimmer(bgCtx, o.trim)
		n.bg.Add(1)
		go func() {
			defer n.bg.Done()
			n.watchModeration(bgCtx)
		}()
	}
	return n, nil
}

// Close stops the network, the views and the store, in that order.
func (n *Node) Close() error {
	var errs []error
	n.closed.Do(func() {
		n.stopBG()
		n.bg.Wait()
		if n.net != nil {
			errs = append(errs, n.net.close())
		}
		errs = append(errs, n.views.Close())
		errs = append(errs, n.db.Close())
	})
	return errors.Join(errs...)
}

// ReadOnly reports whether the node was opened with Options.ReadOnly.
func (n *Node) ReadOnly() bool { return n.readOnly }

// DataDir is the node's data dir.
func (n *Node) DataDir() string { return n.dir }

// Self is the local author id.
func (n *Node) Self() feed.AuthorID { return n.id.ID() }

// Store is the feed store (read side for replication and tests).
func (n *Node) Store() *feed.Store { return n.store }

// Views is the read API of the views.
func (n *Node) Views() *views.Views { return n.views }

// Changed subscribes to changes of the node's local state: a channel
// joined, left or purged, the nickname set, an author blocked or
// unblocked, whatever made the change (this process's UI or a headless
// command served over the control socket). The signal coalesces, like
// views.Subscription: read the state again when it fires. Close the
// subscription when done.
func (n *Node) Changed() *notify.Subscription { return n.changed.Subscribe() }

// Channels lists joined channels.
func (n *Node) Channels() ([]feed.Channel, error) { return n.store.Channels() }

// Resolve finds a joined channel by name or key.
func (n *Node) Resolve(nameOrKey string) (feed.Channel, error) { return n.store.Resolve(nameOrKey) }

// Send appends payloads to the local user's feed in ch and returns once they
// are on disk. The views index them shortly after; readers that must see
// them call WaitIndexed.
func (n *Node) Send(ctx context.Context, ch feed.DiscoveryID, ps ...feed.Payload) ([]feed.Entry, error) {
	return n.store.Append(ctx, n.id, ch, ps...)
}

// Message returns the payload of author a's entry seq in channel ch, or an
// error wrapping feed.ErrNotFound if it is not held.
func (n *Node) Message(ch feed.DiscoveryID, a feed.AuthorID, seq uint64) (feed.Payload, error) {
	e, err := n.store.Get(ch, a, seq)
	if err != nil {
		return feed.Payload{}, err
	}
	return feed.UnmarshalPayload(e.Payload)
}

// Create makes a new channel named name and joins it.
func (n *Node) Create(ctx context.Context, name string) (feed.Channel, error) {
	k, err := feed.NewChannelKey()
	if err != nil {
		return feed.Channel{}, err
	}
	// The creator is the channel's first admin: the key it shares names it.
	return n.JoinLink(ctx, feed.Link{Key: k, Name: name, Admins: []feed.AuthorID{n.Self()}})
}

// JoinLink joins the channel of a shared key (see Join), recording the
// admins the key names: their moderation is followed by default. Joining
// again with a key that names admins the record lacks adds them.
func (n *Node) JoinLink(ctx context.Context, l feed.Link) (feed.Channel, error) {
	if c, err := n.store.Channel(l.Key.DiscoveryID()); err == nil && len(l.Admins) > 0 && !n.readOnly {
		old := c.Admins
		for _, a := range l.Admins {
			c.Admins = c.Admins.With(a)
		}
		if c.Admins != old {
			if err := n.store.Join(c); err != nil {
				return c, err
			}
			n.moderationChanged()
		}
		return c, nil
	}
	return n.join(ctx, l.Key, l.Name, l.Admins)
}

// Join joins the channel with key k under the local name (a default is made
// from the key when name is empty). If a nickname is set it is announced.
func (n *Node) Join(ctx context.Context, k feed.ChannelKey, name string) (feed.Channel, error) {
	return n.join(ctx, k, name, nil)
}

func (n *Node) join(ctx context.Context, k feed.ChannelKey, name string, admins []feed.AuthorID) (feed.Channel, error) {
	if n.readOnly {
		return feed.Channel{}, fmt.Errorf("join: %w", ErrReadOnly)
	}
	if name == "" {
		name = "channel-" + k.DiscoveryID().Short()
	}
	if c, err := n.store.Channel(k.DiscoveryID()); err == nil {
		return c, nil // already joined
	}
	c := feed.Channel{Key: k, Name: name, Admins: feed.NewAdminSet(admins)}
	if err := n.store.Join(c); err != nil {
		return c, err
	}
	defer n.changed.Notify()
	if nick := n.Nick(); nick != "" {
		if _, err := n.Send(ctx, c.ID(), feed.Payload{Kind: feed.KindNick, Text: nick}); err != nil {
			return c, err
		}
	}
	if n.net != nil {
		n.net.join(c)
	}
	return c, nil
}

// Part leaves channel ch: no longer listed or replicated.
func (n *Node) Part(ctx context.Context, ch feed.DiscoveryID) error {
	if n.readOnly {
		return fmt.Errorf("part: %w", ErrReadOnly)
	}
	if err := n.store.Part(ch); err != nil {
		return err
	}
	defer n.changed.Notify()
	if n.net != nil {
		n.net.leave(ch)
	}
	return nil
}

func (n *Node) nickPath() string { return filepath.Join(n.dir, "nick") }

// Nick is the local user's nickname ("" if never set).
func (n *Node) Nick() string {
	b, err := os.ReadFile(n.nickPath())
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// SetNick sets the nickname: remembered for channels joined later, and
// announced now with a nick entry in every joined channel.
func (n *Node) SetNick(ctx context.Context, nick string) error {
	if n.readOnly {
		return fmt.Errorf("set nick: %w", ErrReadOnly)
	}
	nick = strings.TrimSpace(nick)
	p := feed.Payload{Kind: feed.KindNick, Text: nick}
	if err := p.Validate(); err != nil {
		return err
	}
	if strings.ContainsAny(nick, " \t\r\n") {
		return fmt.Errorf("%w: nickname %q contains white space", feed.ErrBadPayload, nick)
	}
	if err := checkVisible("nickname", nick); err != nil {
		return err
	}
	n.nickMu.Lock()
	defer n.nickMu.Unlock()
	chans, err := n.store.Channels()
	if err != nil {
		return err
	}
	for _, c := range chans {
		if _, err := n.Send(ctx, c.ID(), p); err != nil {
			return fmt.Errorf("announce nick in %s: %w", c.Name, err)
		}
	}
	defer n.changed.Notify() // also when saving fails: the entries are sent
	return perm.WritePrivate("nick", n.nickPath(), []byte(nick+"\n"))
}

// ErrInvisible is wrapped by the error for a nickname or channel name that
// holds an invisible format character.
var ErrInvisible = errors.New("invisible character")

// checkVisible refuses a name holding an invisible format character
// (Unicode category Cf, e.g. U+200B zero width space, U+2060 word joiner,
// U+FEFF): such a name could pass for another one.
func checkVisible(what, name string) error {
	for i, r := range name {
		if unicode.Is(unicode.Cf, r) {
			return fmt.Errorf("%w: the %s %q holds the invisible character U+%04X at byte %d: remove it",
				ErrInvisible, what, views.StripFormat(name), r, i)
		}
	}
	return nil
}

// WaitIndexed waits until the views include everything stored so far.
func (n *Node) WaitIndexed(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := n.views.WaitIndexed(ctx, n.store.Last()); err != nil {
		return err
	}
	// What is indexed is in force: moderation blocks included.
	n.settleModeration()
	return nil
}
