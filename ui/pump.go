package ui

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/views"
)

// pump is the one goroutine that talks to the Backend. It owns the
// subscriptions (views changes, network changes) and a queue of jobs the UI
// goroutine hands it (loading pages, sending, commands). Each piece of work
// runs here, off the UI goroutine, and returns a function that applies the
// result to the UI state; the pump hands that to tview's QueueUpdateDraw.
// The UI goroutine never calls the Backend and never waits for the pump.
type pump struct {
	b    Backend
	post func(func()) // runs f on the UI goroutine and redraws

	mu   sync.Mutex
	jobs []job
	wake chan struct{}

	// Owned by the pump goroutine.
	last  map[feed.DiscoveryID]uint64 // arrival number seen, per channel
	edits map[feed.DiscoveryID]uint64 // arrival number of the last edit seen, per channel
	chans []feed.Channel
	now   func() time.Time
	priv  privState // private messages handed over (private.go)

	statePath string // the UI's state file, read by initial

	// Set by the UI before run; called on the UI goroutine.
	onUpdate func(*update)
	onNet    func(map[feed.DiscoveryID]NetStatus)
	onMod    func(*modUpdate) // mod.go
	mod      modPump
}

// job is work for the pump. It returns what to apply on the UI goroutine
// (nil: nothing).
type job func(ctx context.Context) func()

// arrivalPage is how many arrivals the pump reads at once; at most this
// many newest arrivals per channel and update are handed to the UI.
const arrivalPage = 500

// liveWindow: a mention newer than this is live (it may ring the bell);
// older ones arrive from catching up and never do.
const liveWindow = 5 * time.Minute

func newPump(b Backend, post func(func()), now func() time.Time) *pump {
	return &pump{b: b, post: post, wake: make(chan struct{}, 1),
		last: map[feed.DiscoveryID]uint64{}, edits: map[feed.DiscoveryID]uint64{}, now: now}
}

// enqueue adds a job; it never blocks.
func (p *pump) enqueue(j job) {
	p.mu.Lock()
	p.jobs = append(p.jobs, j)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *pump) take() []job {
	p.mu.Lock()
	defer p.mu.Unlock()
	js := p.jobs
	p.jobs = nil
	return js
}

// run works until ctx is done. start is applied first with the initial
// state (channels, unread counts, topics, network status).
func (p *pump) run(ctx context.Context, start func(st initial) func()) {
	r := p.b.Views()
	sub := r.Subscribe()
	defer sub.Close()
	netc := p.b.NetChanged()
	statec := p.b.StateChanged()

	p.post(start(p.initial()))
	p.postMod()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
			for _, j := range p.take() {
				if ctx.Err() != nil {
					return
				}
				if f := j(ctx); f != nil {
					p.post(f)
				}
			}
		case <-sub.C():
			if u := p.arrivals(); u != nil {
				p.post(func() { p.onUpdate(u) })
			}
			p.postMod()
		case <-netc:
			st := p.netStatus()
			p.post(func() { p.onNet(st) })
		case <-statec:
			u := p.stateUpdate()
			p.post(func() { p.onUpdate(u) })
		}
	}
}

// initial is the state the UI starts from.
type initial struct {
	chans   []feed.Channel
	infos   map[feed.DiscoveryID]chanInfo
	blocked map[feed.AuthorID]bool
	nick    string
	err     error

	saved    savedState // the UI's state file
	stateErr error      // reading it failed
}

func (p *pump) initial() initial {
	r := p.b.Views()
	st := initial{infos: map[feed.DiscoveryID]chanInfo{}}
	base := r.Indexed()
	chans, err := p.b.Channels()
	if err != nil {
		st.err = err
	}
	p.chans = chans
	st.chans = chans
	for _, c := range chans {
		id := c.ID()
		p.last[id], p.edits[id] = base, base
		ci := chanInfo{ch: c, id: id, net: p.b.Status(id)}
		ci.unread, _ = r.Unread(id)
		ci.topic, _ = r.Topic(id)
		st.infos[id] = ci
		if st.nick == "" {
			st.nick = r.Nick(id, p.b.Self())
		}
	}
	st.saved, st.stateErr = loadState(p.statePath)
	st.blocked = p.b.Blocked()
	if n := p.b.Nick(); n != "" {
		st.nick = n
	}
	return st
}

// chanUpdate is what arrived in one channel since the last update.
type chanUpdate struct {
	id    feed.DiscoveryID
	msgs  []views.Message // the newest arrivals (at most arrivalPage), in arrival order
	count int             // how many arrived in all
	edits []views.Edit    // edits and deletes that arrived, in arrival order
	// editsLost: more changes arrived than are handed over; the loaded
	// page must be read again.
	editsLost bool
	unread    views.Unread
	topic     string
	nicks     bool // nick claims arrived: display names may have changed
	live      bool // a live mention of the user arrived (bell)
	// mentions are the live mentions (at most maxNotices), for desktop
	// notifications.
	mentions []views.Message
}

// update is one batch of changes for the UI.
type update struct {
	chans []feed.Channel // non-nil when the joined channels changed
	per   []chanUpdate
	priv  *privUpdate // private messages (private.go)
	// state is set when the node's local state changed (from the UI or
	// through the control socket): the nickname and block lists as now.
	state *localState
}

// localState is what the node keeps of the user besides channels.
type localState struct {
	nick    string
	blocked map[feed.AuthorID]bool
}

// stateUpdate reads the node's local state after a StateChanged signal:
// the joined channels (their arrivals too) and the nickname and blocks.
func (p *pump) stateUpdate() *update {
	u := p.arrivals()
	if u == nil {
		u = &update{}
	}
	u.state = &localState{nick: p.b.Nick(), blocked: p.b.Blocked()}
	if u.state.blocked == nil {
		u.state.blocked = map[feed.AuthorID]bool{}
	}
	return u
}

// arrivals reads what is new in every channel.
func (p *pump) arrivals() *update {
	r := p.b.Views()
	u := &update{}
	p.refreshChannels(u)
	p.privateArrivals(u)
	now := p.now()
	// blocked authors' mentions neither ring nor notify: they are hidden.
	var blocked map[feed.AuthorID]bool
	for _, c := range p.chans {
		id := c.ID()
		cu := chanUpdate{id: id}
		after, ok := p.last[id]
		if !ok {
			after = 0
		}
		for {
			ms, err := r.Arrived(id, after, arrivalPage)
			if err != nil || len(ms) == 0 {
				break
			}
			cu.count += len(ms)
			for i := range ms {
				after = max(after, ms[i].Arrival)
			}
			cu.msgs = append(cu.msgs, ms...)
			if len(cu.msgs) > arrivalPage {
				cu.msgs = slices.Clone(cu.msgs[len(cu.msgs)-arrivalPage:])
			}
			if len(ms) < arrivalPage {
				break
			}
		}
		p.last[id] = after
		afterEdit := p.edits[id]
		for {
			eds, err := r.Edits(id, afterEdit, arrivalPage)
			if err != nil || len(eds) == 0 {
				break
			}
			afterEdit = eds[len(eds)-1].Arrival
			if !cu.editsLost {
				cu.edits = append(cu.edits, eds...)
			}
			if len(cu.edits) > arrivalPage {
				// Too many to patch in place (a catch-up): the loaded
				// page is reloaded instead, with every change applied.
				cu.edits, cu.editsLost = nil, true
			}
			if len(eds) < arrivalPage {
				break
			}
		}
		p.edits[id] = afterEdit
		if (len(cu.edits) > 0 || cu.editsLost) && cu.count == 0 {
			cu.unread, _ = r.Unread(id)
			cu.topic, _ = r.Topic(id)
			u.per = append(u.per, cu)
			continue
		}
		if cu.count == 0 {
			continue
		}
		cu.unread, _ = r.Unread(id)
		cu.topic, _ = r.Topic(id)
		var mod *views.ModState // read once per channel, if a mention came
		for i := range cu.msgs {
			m := &cu.msgs[i]
			if m.Kind == feed.KindNick {
				cu.nicks = true
			}
			if m.Mention && !m.Own && blocked == nil {
				blocked = p.b.Blocked() // read once per update, if a mention came
			}
			if m.Mention && !m.Own && !blocked[m.Author] && cu.count <= bulkArrivals && now.Sub(m.Time) < liveWindow &&
				!p.modHidden(id, &mod, m) {
				cu.live = true
				if len(cu.mentions) < maxNotices {
					cu.mentions = append(cu.mentions, *m)
				}
			}
		}
		u.per = append(u.per, cu)
	}
	if u.chans == nil && len(u.per) == 0 && u.priv == nil {
		return nil
	}
	return u
}

// modHidden reports whether moderation hides m in channel id (its buffer
// collapses it): such a mention rings no bell and makes no notification.
// *st caches the channel's moderation for the update.
func (p *pump) modHidden(id feed.DiscoveryID, st **views.ModState, m *views.Message) bool {
	mb, ok := p.b.(ModBackend)
	if !ok {
		return false
	}
	if *st == nil {
		s, err := mb.Moderation(id)
		if err != nil {
			return false
		}
		*st = s
	}
	_, hidden := (*st).Hides(m.Author, m.Seq)
	return hidden
}

// maxNotices: at most this many desktop notifications per channel and update.
const maxNotices = 3

// bulkArrivals: more arrivals than this in one channel and update is a
// catch-up, summarised instead of announced.
const bulkArrivals = 50

// refreshChannels notices channels joined or left (also from outside the
// UI, e.g. `kchat join` through the control socket).
func (p *pump) refreshChannels(u *update) {
	chans, err := p.b.Channels()
	if err != nil {
		return
	}
	if slices.EqualFunc(chans, p.chans, func(a, b feed.Channel) bool { return a == b }) {
		return
	}
	base := p.b.Views().Indexed()
	known := map[feed.DiscoveryID]bool{}
	for _, c := range p.chans {
		known[c.ID()] = true
	}
	for _, c := range chans {
		if !known[c.ID()] {
			// A channel just joined: its history is loaded as a page when
			// opened; what arrives from now on is new.
			if _, ok := p.last[c.ID()]; !ok {
				p.last[c.ID()] = base
			}
			if _, ok := p.edits[c.ID()]; !ok {
				p.edits[c.ID()] = base
			}
		}
	}
	p.chans = chans
	u.chans = chans
	if u.chans == nil {
		u.chans = []feed.Channel{}
	}
}

// channelsNow re-reads the joined channels on the pump goroutine (after a
// join, create or part) and returns them.
func (p *pump) channelsNow() []feed.Channel {
	u := &update{}
	p.refreshChannels(u)
	return p.chans
}

// netStatus reads the network status of every channel.
func (p *pump) netStatus() map[feed.DiscoveryID]NetStatus {
	st := make(map[feed.DiscoveryID]NetStatus, len(p.chans))
	for _, c := range p.chans {
		st[c.ID()] = p.b.Status(c.ID())
	}
	return st
}
