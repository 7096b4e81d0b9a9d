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
	// KindMod is a moderation action (Action) by the author about a message
	// (Ref) or an author (Target), with an optional Reason. What it does
	// for a reader depends on whom the reader follows (views/moderation.go).
	KindMod Kind = 7
	// KindSealed is a private message (package seal): Sealed holds it,
	// readable only by its recipient and its author.
	KindSealed Kind = 8
)

// ModAction is what a moderation entry (KindMod) does.
type ModAction uint8

// Moderation actions. Hide and Unhide name a message (Ref) or an author
// (Target); every other action names an author (Target).
const (
	ModHide        ModAction = 1
	ModUnhide      ModAction = 2
	ModBlock       ModAction = 3
	ModUnblock     ModAction = 4
	ModAddMod      ModAction = 5
	ModRemoveMod   ModAction = 6
	ModAddAdmin    ModAction = 7
	ModRemoveAdmin ModAction = 8
)

var modActionNames = [...]string{"", "hide", "unhide", "block", "unblock", "add-mod", "remove-mod", "add-admin", "remove-admin"}

func (a ModAction) String() string {
	if a >= 1 && int(a) < len(modActionNames) {
		return modActionNames[a]
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Known reports whether a is an action this version knows.
func (a ModAction) Known() bool { return a >= ModHide && a <= ModRemoveAdmin }

// ParseModAction parses an action's name (hide, unhide, block, unblock,
// add-mod, remove-mod, add-admin, remove-admin).
func ParseModAction(s string) (ModAction, error) {
	for i, n := range modActionNames {
		if i > 0 && n == s {
			return ModAction(i), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown moderation action %q", ErrBadPayload, s)
}

// MaxModReason bounds a moderation entry's reason, in bytes.
const MaxModReason = 1024

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
	case KindMod:
		return "mod"
	case KindSealed:
		return "sealed"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Payload is the content of an entry, encoded as deterministic CBOR
// (RFC 8949 core deterministic encoding): a map with integer keys
// 1: kind (unsigned), 2: text (UTF-8 string), 3: ref (a map, below),
// and for moderation entries 4: action (unsigned), 5: reason (UTF-8
// string), 6: target author id (32-byte string), and for private messages
// 10: sealed (a byte string, package seal).
type Payload struct {
	Kind Kind   `cbor:"1,keyasint"`
	Text string `cbor:"2,keyasint,omitempty"`
	// Ref points at an earlier message in the same channel: the message a
	// text or emote replies to, or the one an edit or delete changes.
	Ref *Ref `cbor:"3,keyasint,omitempty"`
	// Action, Reason and Target belong to moderation entries (KindMod).
	Action ModAction `cbor:"4,keyasint,omitempty"`
	Reason string    `cbor:"5,keyasint,omitempty"`
	Target []byte    `cbor:"6,keyasint,omitempty"`
	// Sealed is a kind 8 payload's sealed private message (seal.Parse
	// checks its layout; only its recipient and author can open it).
	Sealed []byte `cbor:"10,keyasint,omitempty"`
}

// TargetID returns the moderation target author, and false if there is
// none or it is malformed.
func (p Payload) TargetID() (AuthorID, bool) {
	var a AuthorID
	if len(p.Target) != len(a) {
		return a, false
	}
	copy(a[:], p.Target)
	return a, true
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
	case KindMod:
		if err := p.validateMod(); err != nil {
			return err
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
	if p.Kind != KindMod && (p.Action != 0 || p.Reason != "" || p.Target != nil) {
		return fmt.Errorf("%w: a %s carries no moderation fields", ErrBadPayload, p.Kind)
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
	if !utf8.ValidString(p.Text) || !utf8.ValidString(p.Reason) {
		return fmt.Errorf("%w: text is not valid UTF-8", ErrBadPayload)
	}
	return nil
}

// validateMod checks a moderation entry: a known action, no text, a reason
// of at most MaxModReason bytes, and exactly one target: a message (Ref,
// hide and unhide only) or a 32-byte author id (Target).
func (p Payload) validateMod() error {
	if !p.Action.Known() {
		return fmt.Errorf("%w: unknown moderation action %d", ErrBadPayload, p.Action)
	}
	if p.Text != "" {
		return fmt.Errorf("%w: a moderation entry has no text (use the reason)", ErrBadPayload)
	}
	if len(p.Reason) > MaxModReason {
		return fmt.Errorf("%w: reason is %d bytes, at most %d", ErrBadPayload, len(p.Reason), MaxModReason)
	}
	switch {
	case p.Ref != nil && p.Target != nil:
		return fmt.Errorf("%w: a moderation entry names a message or an author, not both", ErrBadPayload)
	case p.Ref != nil && p.Action != ModHide && p.Action != ModUnhide:
		return fmt.Errorf("%w: %s names an author, not a message", ErrBadPayload, p.Action)
	case p.Ref == nil && p.Target == nil:
		return fmt.Errorf("%w: %s without a target", ErrBadPayload, p.Action)
	case p.Target != nil:
		if _, ok := p.TargetID(); !ok {
			return fmt.Errorf("%w: moderation target with a %d-byte author id", ErrBadPayload, len(p.Target))
		}
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
