package views

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/kchat-p2p/kchat/feed"
)

// Key layout, all under the prefix 'v' that this package owns. D is a
// channel's discovery id, A an author id, T an ordering time (unix ms, sign
// bit flipped so that big-endian byte order is numeric order), N an arrival
// number, all integers big endian.
//
//	v ! <view name>          -> view state: version 4, clock 8 (last arrival processed)
//
//	messages view:
//	v m <D 32> <T 8> <A 32> <seq 8> -> row: kind 1 (high bit: late), claimed time 8, arrival 8, ref length 1 (0 or 40), ref (A 32, seq 8), text
//	v a <D 32> <N 8>                -> T 8, A 32, seq 8 (arrival-ordered index of the rows)
//	v k <D 32>                      -> number of rows in the channel 8
//	v f <D 32> <A 32>               -> the ordering time of A's newest entry in D 8
//	v e <D 32> <A 32> <seq 8>       -> the latest edit of A's message seq: kind 1 (edit or delete), arrival 8, text
//	v E <D 32> <N 8>                -> A 32, seq 8 (arrival-ordered index of the edits)
//	v x <D 32>                      -> number of edits in the channel 8
//
//	topics view:
//	v t <D 32>                      -> T 8, A 32, seq 8, topic text
//	v g <D 32> <A 32>               -> as "v f", the topics view's own copy
//	v T <D 32> <A 32>               -> A's latest topic in D: T 8, A 32, seq 8, topic text
//
//	users view:
//	v n <D 32> <A 32>               -> latest nickname
//	v N <D 32> <len 1> <lookalike key> <A 32> -> empty (who claims a nick: collisions)
//	v w <D 32> <A 32> <seq 8>       -> the nickname A's nick entry seq replaced
//
//	unread view:
//	v u <D 32>                      -> messages 8, mentions 8 (after the read marker)
//	v s <D 32>                      -> the local user's latest nickname, as far as indexed
//	v c <D 32>                      -> empty: D's moderation changed while catching up;
//	                                   its counts are recounted once caught up
//
//	members view (members.go):
//	v p <D 32> <A 32>               -> messages 8, bytes 8, last arrival (unix ms, local clock) 8
//
//	moderation view (moderation.go):
//	v M <D 32> <X 32> <class 1> <target 32 or 40> -> X's latest entry of that class about target
//	v O <D 32> <N 8>                -> one moderation entry (arrival-ordered, notices)
//	private view (private.go):
//	v q <D 32> <N 8>                -> status 1, from A 32, to A 32, seq 8, claimed time 8, text
//
//	local state (no view owns it; never dropped by a rebuild):
//	v F <D 32> <A 32>               -> 1 follow A's moderation, 0 do not (moderation.go)
//	v R <D 32>                      -> read marker: arrival 8, cursor (0 or 48 bytes)
//	v Q <A 32>                      -> arrival 8: private conversation with A read up to it
//	v H                             -> N 8: arrivals up to N were judged late or not
//	                                   (a rebuild does not judge them again with its
//	                                   own, later, clock)
const (
	tagState   = '!'
	tagMsg     = 'm'
	tagArrival = 'a'
	tagCount   = 'k'
	tagMsgFeed = 'f'
	tagEdit    = 'e'
	tagEditArr = 'E'
	tagEdits   = 'x'
	tagTopic   = 't'
	tagTopFeed = 'g'
	tagNick    = 'n'
	tagNickIdx = 'N'
	tagNickWas = 'w'
	tagUnread  = 'u'
	tagSelf    = 's'
	tagRecount = 'c'
	tagMarker  = 'R'
	tagLateHW  = 'H'
)

func prefix(tag byte) []byte { return []byte{'v', tag} }

func chanKey(tag byte, ch feed.DiscoveryID) []byte {
	return append([]byte{'v', tag}, ch[:]...)
}

func feedKey(tag byte, ch feed.DiscoveryID, a feed.AuthorID) []byte {
	k := make([]byte, 0, 66)
	return append(append(append(k, 'v', tag), ch[:]...), a[:]...)
}

func editKey(ch feed.DiscoveryID, a feed.AuthorID, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(feedKey(tagEdit, ch, a), seq)
}

func editArrivalKey(ch feed.DiscoveryID, n uint64) []byte {
	return binary.BigEndian.AppendUint64(chanKey(tagEditArr, ch), n)
}

func stateKey(name string) []byte { return append([]byte{'v', tagState}, name...) }

// pos is a message's place in a channel's chronological order.
type pos struct {
	t      int64 // ordering time, unix ms
	author feed.AuthorID
	seq    uint64
}

const posLen = 8 + 32 + 8

func (p pos) append(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(p.t)^(1<<63))
	b = append(b, p.author[:]...)
	return binary.BigEndian.AppendUint64(b, p.seq)
}

func parsePos(b []byte) (pos, error) {
	if len(b) != posLen {
		return pos{}, fmt.Errorf("position is %d bytes, want %d", len(b), posLen)
	}
	var p pos
	p.t = int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
	copy(p.author[:], b[8:40])
	p.seq = binary.BigEndian.Uint64(b[40:])
	return p, nil
}

func msgKey(ch feed.DiscoveryID, p pos) []byte {
	return p.append(append(make([]byte, 0, 34+posLen), chanKey(tagMsg, ch)...))
}

func arrivalKey(ch feed.DiscoveryID, n uint64) []byte {
	return binary.BigEndian.AppendUint64(chanKey(tagArrival, ch), n)
}

// ErrBadCursor is returned for a cursor this package did not make.
var ErrBadCursor = errors.New("bad cursor")

var cursorEnc = base64.RawURLEncoding

func (p pos) cursor() Cursor { return Cursor(cursorEnc.EncodeToString(p.append(nil))) }

func parseCursor(c Cursor) (pos, error) {
	b, err := cursorEnc.DecodeString(string(c))
	if err != nil {
		return pos{}, fmt.Errorf("%w: %w", ErrBadCursor, err)
	}
	p, err := parsePos(b)
	if err != nil {
		return pos{}, fmt.Errorf("%w: %w", ErrBadCursor, err)
	}
	return p, nil
}

func putU64(b []byte, v ...uint64) []byte {
	for _, x := range v {
		b = binary.BigEndian.AppendUint64(b, x)
	}
	return b
}
