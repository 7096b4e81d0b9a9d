package ui

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kchat-p2p/kchat/internal/perm"
	"os"

	"github.com/kchat-p2p/kchat/feed"
)

// savedState is what the UI keeps across restarts (WithStateFile): the
// order of the channels (their numbers), the channel shown last, and the
// unsent text of each channel (irssi and weechat keep a draft per buffer).
// It is the UI's own small file: the node's state stays the node's.
type savedState struct {
	// Order lists the channels (discovery ids, hex) in the order the user
	// has them: join order, so that joining one never renumbers the others.
	Order []string `json:"order,omitempty"`
	// Last is the channel shown when the UI stopped.
	Last string `json:"last,omitempty"`
	// Drafts is the unsent input per channel.
	Drafts map[string]string `json:"drafts,omitempty"`
}

// WithStateFile keeps the channel order, the channel shown last and the
// drafts in the file at path (read when the UI starts, written as they
// change and when it stops; mode 0600, as the drafts are private).
func WithStateFile(path string) Option { return func(u *UI) { u.statePath = path } }

// loadState reads the state file ("" or missing: an empty state).
func loadState(path string) (savedState, error) {
	var st savedState
	if path == "" {
		return st, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read UI state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return savedState{}, fmt.Errorf("UI state %s: %w", path, err)
	}
	return st, nil
}

// saveState writes the state file whole (a temporary file renamed over it,
// so that a crash leaves the old or the new state, never half of one).
func saveState(path string, st savedState) error {
	if path == "" {
		return nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode UI state: %w", err)
	}
	return perm.WritePrivate("UI state", path, b)
}

func idString(id feed.DiscoveryID) string { return id.String() }

func parseID(s string) (feed.DiscoveryID, bool) {
	var id feed.DiscoveryID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, false
	}
	copy(id[:], b)
	return id, true
}

// snapshot is the state to save, read on the UI goroutine.
func (u *UI) snapshot() savedState {
	st := savedState{Drafts: map[string]string{}}
	for _, id := range u.chans.order {
		st.Order = append(st.Order, idString(id))
	}
	if ci := u.chans.current(); ci != nil {
		st.Last = idString(ci.id)
	}
	for id, d := range u.allDrafts() {
		st.Drafts[idString(id)] = d
	}
	return st
}

// allDrafts is every channel's unsent text, the one in the input line too.
func (u *UI) allDrafts() map[feed.DiscoveryID]string {
	out := make(map[feed.DiscoveryID]string, len(u.drafts)+1)
	for id, d := range u.drafts {
		// A channel left (from here or another terminal) keeps no draft.
		if d != "" && (id == feed.DiscoveryID{} || u.chans.get(id) != nil) {
			out[id] = d
		}
	}
	if s := u.ed.String(); s != "" {
		out[u.draftFor] = s
	} else {
		delete(out, u.draftFor)
	}
	return out
}

// saveSoon writes the state file on the pump goroutine (never blocks the UI).
func (u *UI) saveSoon() {
	if u.statePath == "" || !u.started {
		return
	}
	st, path := u.snapshot(), u.statePath
	u.do(func(ctx context.Context) func() {
		if err := saveState(path, st); err != nil {
			return func() { u.log.Warn("ui state", "err", err) }
		}
		return nil
	})
}

// swapDraft keeps the input line's text as the draft of the channel it
// was typed in and puts the draft of channel id (if any) in its place.
func (u *UI) swapDraft(id feed.DiscoveryID) {
	if id == u.draftFor {
		return
	}
	if s := u.ed.String(); s != "" {
		u.drafts[u.draftFor] = s
	} else {
		delete(u.drafts, u.draftFor)
	}
	u.ed.set(u.drafts[id])
	delete(u.drafts, id)
	u.draftFor = id
	u.hist.reset()
}

// applySaved applies the loaded state on start: channel order and drafts
// (the last channel is chosen by onStart).
func (u *UI) applySaved(st savedState) {
	for _, s := range st.Order {
		if id, ok := parseID(s); ok {
			u.chans.order = append(u.chans.order, id)
		}
	}
	for s, d := range st.Drafts {
		if id, ok := parseID(s); ok && d != "" {
			u.drafts[id] = d
		}
	}
	// The input line holds the draft of the window shown (the status
	// window until a channel is entered).
	if d := u.drafts[u.draftFor]; d != "" && u.ed.empty() {
		u.ed.set(d)
	}
	delete(u.drafts, u.draftFor)
}
