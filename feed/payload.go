package feed

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
	"github.com/kchat-p2p/kchat/seal"
)

// Kind is the type of a message payload.
type Kind uint8

// Payload kinds. Unknown kinds are stored and replicated (a newer peer may
// have written them) but views ignore them.
const (
	KindText  Kind = 1 // a chat line
	KindEmote Kind = 2 // /me
	KindTopic Kind = 3 // channel topic
	KindNick  Kind = 4 // the author's nickname claim
	// KindEdit replaces the text of one of the author's own earlier text or
	// emote messages (Ref) with Text. The latest edit (highest seq) wins.
	KindEdit Kind = 5
	// KindDelete withdraws one of the author's own earlier text or emote
	// messages (Ref): readers show that it was deleted, not its text. An
	// entry cannot be removed from a signed feed; peers that already hold
	// it keep its bytes.
	KindDelete Kind = 6
	// KindSealed is a private message (package seal): Sealed holds it,
	// readable only by its recipient and its author. Kind 7 and 9 and up
	// are reserved (moderation).
	KindSealed Kind = 8
)

func (k Kind) String() string {
	switch k {
	case KindText:
		return "text"
	case KindEmote:
		return "emote"
	case KindTopic:
		return "topic"
	case KindNick:
		return "nick"
	case KindEdit:
		return "edit"
	case KindDelete:
		return "delete"
	case KindSealed:
		return "sealed"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Payload is the content of an entry, encoded as deterministic CBOR
// (RFC 8949 core deterministic encoding): a map with integer keys
// 1: kind (unsigned), 2: text (UTF-8 string), 3: ref (a map, below),
// 10: sealed (a byte string: a private message, package seal). Keys 4-6 are
// reserved (moderation).
type Payload struct {
	Kind Kind   `cbor:"1,keyasint"`
	Text string `cbor:"2,keyasint,omitempty"`
	// Ref points at an earlier message in the same channel: the message a
	// text or emote replies to, or the one an edit or delete changes.
	Ref *Ref `cbor:"3,keyasint,omitempty"`
	// Sealed is a kind 8 payload's sealed private message (seal.Parse
	// checks its layout; only its recipient and author can open it).
	Sealed []byte `cbor:"10,keyasint,omitempty"`
}

// Ref names one message of a channel: {1: author id (32 bytes), 2: seq}.
type Ref struct {
	Author []byte `cbor:"1,keyasint"`
	Seq    uint64 `cbor:"2,keyasint"`
}

// NewRef is the Ref of author a's message seq.
func NewRef(a AuthorID, seq uint64) *Ref { return &Ref{Author: append([]byte(nil), a[:]...), Seq: seq} }

// AuthorID returns the referenced author, and false if the ref is malformed.
func (r *Ref) AuthorID() (AuthorID, bool) {
	var a AuthorID
	if r == nil || len(r.Author) != len(a) {
		return a, false
	}
	copy(a[:], r.Author)
	return a, true
}

// ErrBadPayload is returned for payloads that fail validation.
var ErrBadPayload = errors.New("bad payload")

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	if encMode, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	if decMode, err = (cbor.DecOptions{
		DupMapKey:       cbor.DupMapKeyEnforcedAPF,
		IndefLength:     cbor.IndefLengthForbidden,
		UTF8:            cbor.UTF8RejectInvalid,
		MaxNestedLevels: 4,
	}).DecMode(); err != nil {
		panic(err)
	}
}

// Validate checks a payload a user is about to send.
func (p Payload) Validate() error {
	switch p.Kind {
	case KindText, KindEmote:
		if p.Text == "" {
			return fmt.Errorf("%w: empty message", ErrBadPayload)
		}
	case KindNick:
		if p.Text == "" {
			return fmt.Errorf("%w: empty nickname", ErrBadPayload)
		}
		if len(p.Text) > 64 {
			return fmt.Errorf("%w: nickname is %d bytes, at most 64", ErrBadPayload, len(p.Text))
		}
	case KindTopic:
	case KindEdit:
		if p.Text == "" {
			return fmt.Errorf("%w: empty edit (delete the message instead)", ErrBadPayload)
		}
	case KindDelete:
		if p.Text != "" {
			return fmt.Errorf("%w: a delete has no text", ErrBadPayload)
		}
	case KindSealed:
		if p.Text != "" || p.Ref != nil {
			return fmt.Errorf("%w: a sealed message carries neither text nor ref in the clear", ErrBadPayload)
		}
		if _, err := seal.Parse(p.Sealed); err != nil {
			return fmt.Errorf("%w: %w", ErrBadPayload, err)
		}
	default:
		return fmt.Errorf("%w: unknown kind %d", ErrBadPayload, p.Kind)
	}
	if p.Kind != KindSealed && len(p.Sealed) > 0 {
		return fmt.Errorf("%w: a %s carries no sealed bytes", ErrBadPayload, p.Kind)
	}
	switch {
	case p.Ref == nil && (p.Kind == KindEdit || p.Kind == KindDelete):
		return fmt.Errorf("%w: %s without the message it changes", ErrBadPayload, p.Kind)
	case p.Ref != nil && (p.Kind == KindTopic || p.Kind == KindNick):
		return fmt.Errorf("%w: a %s cannot point at a message", ErrBadPayload, p.Kind)
	case p.Ref != nil:
		if _, ok := p.Ref.AuthorID(); !ok {
			return fmt.Errorf("%w: message reference with a %d-byte author id", ErrBadPayload, len(p.Ref.Author))
		}
	}
	if !utf8.ValidString(p.Text) {
		return fmt.Errorf("%w: text is not valid UTF-8", ErrBadPayload)
	}
	return nil
}

// Marshal encodes the payload canonically, checking Validate and the size limit.
func (p Payload) Marshal() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b, err := encMode.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	if len(b) > MaxPayload {
		return nil, fmt.Errorf("%w: message is %d bytes encoded, at most %d", ErrTooLarge, len(b), MaxPayload)
	}
	return b, nil
}

// UnmarshalPayload decodes an entry's payload. Fields it does not know are
// ignored (forward compatibility); a kind it does not know is returned as is.
func UnmarshalPayload(b []byte) (Payload, error) {
	var p Payload
	if err := decMode.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	return p, nil
}

// checkPayloadWellFormed is the store's acceptance rule for payloads: a single
// well-formed CBOR data item. Semantics are the views' business.
func checkPayloadWellFormed(b []byte) error {
	if err := decMode.Wellformed(b); err != nil {
		return fmt.Errorf("%w: payload is not well-formed CBOR: %w", ErrMalformed, err)
	}
	return nil
}
