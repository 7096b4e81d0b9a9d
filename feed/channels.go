package feed

import (
	"errors"
	"fmt"
	"sort"

	"github.com/dgraph-io/badger/v4"
)

// Channel is a joined channel: its key, the local name the user gave it,
// and the admins its key named (whose moderation is followed by default).
type Channel struct {
	Key    ChannelKey `cbor:"1,keyasint"`
	Name   string     `cbor:"2,keyasint"`
	Admins AdminSet   `cbor:"3,keyasint,omitempty"`
}

// Link is the channel's shareable key, with its name and admins.
func (c Channel) Link() Link { return Link{Key: c.Key, Name: c.Name, Admins: c.Admins.IDs()} }

// AdminSet is a channel's admins as its key names them: their ids in
// lowercase hex, concatenated (a string, so that Channel stays comparable).
type AdminSet string

// NewAdminSet makes the set of ids as, without duplicates.
func NewAdminSet(as []AuthorID) AdminSet {
	var s AdminSet
	for _, a := range as {
		s = s.With(a)
	}
	return s
}

// IDs lists the admins, in the order they were added.
func (s AdminSet) IDs() []AuthorID {
	var out []AuthorID
	for i := 0; i+64 <= len(s); i += 64 {
		if a, err := ParseAuthorID(string(s[i : i+64])); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// Has reports whether a is in the set.
func (s AdminSet) Has(a AuthorID) bool {
	for i := 0; i+64 <= len(s); i += 64 {
		if string(s[i:i+64]) == a.String() {
			return true
		}
	}
	return false
}

// With is the set with a added.
func (s AdminSet) With(a AuthorID) AdminSet {
	if s.Has(a) {
		return s
	}
	return s + AdminSet(a.String())
}

// ID is the channel's discovery id.
func (c Channel) ID() DiscoveryID { return c.Key.DiscoveryID() }

// ErrNameTaken is returned when a local channel name is already used by
// another channel.
var ErrNameTaken = errors.New("channel name already in use")

func chanKey(d DiscoveryID) []byte { return append([]byte(pChan), d[:]...) }

// Join records channel c as joined. Joining a channel again under the same
// name is a no-op; a name used by another channel is ErrNameTaken.
func (s *Store) Join(c Channel) error {
	if err := ValidateChannelName(c.Name); err != nil {
		return err
	}
	chans, err := s.Channels()
	if err != nil {
		return err
	}
	for _, o := range chans {
		if o.Name == c.Name && o.Key != c.Key {
			return fmt.Errorf("%w: %q", ErrNameTaken, c.Name)
		}
	}
	v, err := encMode.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode channel: %w", err)
	}
	s.chMu.Lock()
	defer s.chMu.Unlock()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(chanKey(c.ID()), v) }); err != nil {
		s.chans = nil // read again: the write may or may not have landed
		return fmt.Errorf("join channel: %w", err)
	}
	if s.chans != nil {
		s.chans[c.ID()] = c
	}
	return nil
}

// Part forgets channel d: it is no longer listed or replicated. Its feeds
// stay in the store, so joining again later is cheap.
func (s *Store) Part(d DiscoveryID) error {
	if _, err := s.Channel(d); err != nil {
		return err
	}
	return s.forgetChannel(d, "part channel")
}

// forgetChannel deletes channel d's record.
func (s *Store) forgetChannel(d DiscoveryID, what string) error {
	s.chMu.Lock()
	defer s.chMu.Unlock()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(chanKey(d)) }); err != nil {
		s.chans = nil
		return fmt.Errorf("%s: %w", what, err)
	}
	if s.chans != nil {
		delete(s.chans, d)
	}
	return nil
}

// joined returns the joined channels, read from the database once and then
// kept in memory (Apply and the network ask for them all the time; only
// this store writes them). Caller holds s.chMu.
func (s *Store) joined() (map[DiscoveryID]Channel, error) {
	if s.chans != nil {
		return s.chans, nil
	}
	chans := map[DiscoveryID]Channel{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pChan), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var c Channel
			if err := it.Item().Value(func(v []byte) error { return decMode.Unmarshal(v, &c) }); err != nil {
				return err
			}
			chans[c.ID()] = c
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	s.chans = chans
	return chans, nil
}

// Channel returns the joined channel with discovery id d.
func (s *Store) Channel(d DiscoveryID) (Channel, error) {
	s.chMu.Lock()
	defer s.chMu.Unlock()
	chans, err := s.joined()
	if err != nil {
		return Channel{}, fmt.Errorf("read channel: %w", err)
	}
	c, ok := chans[d]
	if !ok {
		return c, fmt.Errorf("%w: %s", ErrUnknownChannel, d.Short())
	}
	return c, nil
}

// Channels lists joined channels by name.
func (s *Store) Channels() ([]Channel, error) {
	s.chMu.Lock()
	chans, err := s.joined()
	out := make([]Channel, 0, len(chans))
	for _, c := range chans {
		out = append(out, c)
	}
	s.chMu.Unlock()
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Resolve finds a joined channel by its local name or its kchat:// key.
func (s *Store) Resolve(nameOrKey string) (Channel, error) {
	if LooksLikeKey(nameOrKey) {
		k, _, err := ParseChannelKey(nameOrKey)
		if err != nil {
			return Channel{}, err
		}
		return s.Channel(k.DiscoveryID())
	}
	chans, err := s.Channels()
	if err != nil {
		return Channel{}, err
	}
	for _, c := range chans {
		if c.Name == nameOrKey {
			return c, nil
		}
	}
	return Channel{}, fmt.Errorf("%w: no joined channel is named %q (see `kchat channels`)", ErrUnknownChannel, nameOrKey)
}
