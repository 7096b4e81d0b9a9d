package feed

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode"
)

// ChannelKey is a channel's shared secret K. Whoever holds it can read and
// write the channel. It never leaves the process except when the user shares it.
type ChannelKey [32]byte

// DiscoveryID is SHA-256("kchat/discovery/v1" || K): the only name of a
// channel that is ever given to the network (DHT, mDNS) or put in entries.
type DiscoveryID [32]byte

// String is the full lowercase hex form.
func (d DiscoveryID) String() string { return hex.EncodeToString(d[:]) }

// Short is an 8-hex-digit form for logs.
func (d DiscoveryID) Short() string { return hex.EncodeToString(d[:4]) }

const keyScheme = "kchat://"

// ErrBadKey wraps every channel key parse error.
var ErrBadKey = errors.New("bad channel key")

// NewChannelKey makes a fresh random channel key.
func NewChannelKey() (ChannelKey, error) {
	var k ChannelKey
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("generate channel key: %w", err)
	}
	return k, nil
}

// String is the shareable form kchat://<64 lowercase hex>.
func (k ChannelKey) String() string { return keyScheme + hex.EncodeToString(k[:]) }

// WithName is the shareable form with a name hint: kchat://<hex>?name=NAME.
func (k ChannelKey) WithName(name string) string {
	if name == "" {
		return k.String()
	}
	return k.String() + "?" + url.Values{"name": {name}}.Encode()
}

// DiscoveryID derives the channel's public id.
func (k ChannelKey) DiscoveryID() DiscoveryID {
	h := sha256.New()
	h.Write([]byte("kchat/discovery/v1"))
	h.Write(k[:])
	var d DiscoveryID
	h.Sum(d[:0])
	return d
}

// LooksLikeKey reports whether s is meant as a key (has the kchat:// scheme),
// so callers can tell a key from a channel name before parsing.
func LooksLikeKey(s string) bool { return strings.HasPrefix(strings.TrimSpace(s), keyScheme) }

// ParseChannelKey parses kchat://<64 hex>[?name=NAME][&admin=HEX]... and
// returns the key and the name hint (empty if none); see ParseLink for the
// admins. Surrounding white space is ignored; anything else wrong is an
// error saying what.
func ParseChannelKey(s string) (ChannelKey, string, error) {
	l, err := ParseLink(s)
	return l.Key, l.Name, err
}

// Link is what a shared kchat:// key carries: the key, a name hint, and
// the channel's first admins (author ids whose moderation a joiner follows
// by default).
type Link struct {
	Key    ChannelKey
	Name   string
	Admins []AuthorID
}

// String is the shareable form kchat://<hex>[?name=NAME][&admin=HEX]...
func (l Link) String() string {
	s := l.Key.WithName(l.Name)
	sep := "?"
	if l.Name != "" {
		sep = "&"
	}
	for _, a := range l.Admins {
		s += sep + "admin=" + a.String()
		sep = "&"
	}
	return s
}

// ParseLink parses kchat://<64 hex>[?name=NAME][&admin=HEX]...: parameters
// name (at most once) and admin (64 hex digits, any number of times).
func ParseLink(s string) (Link, error) {
	var l Link
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, keyScheme) {
		return l, fmt.Errorf("%w: must start with %q", ErrBadKey, keyScheme)
	}
	rest := s[len(keyScheme):]
	hexPart, query, hasQuery := strings.Cut(rest, "?")
	if len(hexPart) != 64 {
		return l, fmt.Errorf("%w: want 64 hex digits after %q, got %d characters", ErrBadKey, keyScheme, len(hexPart))
	}
	for i := 0; i < len(hexPart); i++ {
		c := hexPart[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return l, fmt.Errorf("%w: character %d (%q) is not a hex digit", ErrBadKey, i+1, c)
		}
	}
	if _, err := hex.Decode(l.Key[:], []byte(hexPart)); err != nil {
		return l, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	if !hasQuery {
		return l, nil
	}
	v, err := url.ParseQuery(query)
	if err != nil {
		return l, fmt.Errorf("%w: bad name hint: %w", ErrBadKey, err)
	}
	for p := range v {
		if p != "name" && p != "admin" {
			return l, fmt.Errorf("%w: unknown parameter %q", ErrBadKey, p)
		}
	}
	if len(v["name"]) > 1 {
		return l, fmt.Errorf("%w: more than one name hint", ErrBadKey)
	}
	l.Name = v.Get("name")
	if err := ValidateChannelName(l.Name); err != nil && l.Name != "" {
		return l, fmt.Errorf("%w: name hint: %w", ErrBadKey, err)
	}
	for _, h := range v["admin"] {
		a, err := ParseAuthorID(h)
		if err != nil {
			return l, fmt.Errorf("%w: admin: %w", ErrBadKey, err)
		}
		if !slices.Contains(l.Admins, a) {
			l.Admins = append(l.Admins, a)
		}
	}
	return l, nil
}

// ValidateChannelName checks a local channel name: 1-64 characters, no
// invisible format characters (Unicode category Cf), no white
// space or control characters, not starting with the key scheme.
func ValidateChannelName(name string) error {
	if name == "" {
		return errors.New("channel name is empty")
	}
	if len(name) > 64 {
		return fmt.Errorf("channel name is %d bytes, at most 64", len(name))
	}
	if LooksLikeKey(name) {
		return errors.New("channel name cannot start with kchat://")
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\uFFFD' {
			return fmt.Errorf("channel name %q contains white space or a control character", name)
		}
		if unicode.Is(unicode.Cf, r) {
			// Zero width space, word joiner, BOM, bidi controls...: a
			// name holding one could pass for another.
			return fmt.Errorf("channel name holds the invisible character U+%04X: remove it", r)
		}
	}
	return nil
}
