package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/node"
	"github.com/kchat-p2p/kchat/ui"
	"github.com/kchat-p2p/kchat/views"
	"github.com/spf13/cobra"
)

func (a *app) modCmd() *cobra.Command {
	var reason string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "mod CHANNEL ACTION [TARGET]",
		Short: "Moderate a channel (hide, unhide, block, unblock, add-mod, remove-mod, add-admin, remove-admin; follow, unfollow, list)",
		Long: `Moderation is subjective: an action is an entry in your own feed, and it
counts for those who follow you (everyone follows the admins a channel's key
names, and the moderators they appoint).

  kchat mod CHANNEL hide|unhide TARGET         a message (AUTHOR:SEQ) or an author
  kchat mod CHANNEL block|unblock TARGET       not stored, not passed on, hidden
  kchat mod CHANNEL add-mod|remove-mod TARGET
  kchat mod CHANNEL add-admin|remove-admin TARGET
  kchat mod CHANNEL follow|unfollow AUTHOR     count AUTHOR's moderation, or not (local)
  kchat mod CHANNEL list [--json]              who moderates what, with reasons

TARGET is a nick as shown, a 64-hex author id, or a unique id prefix of at
least 8 hex digits; for hide and unhide also AUTHOR:SEQ (one message).`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			verb := args[1]
			if verb == "list" {
				if len(args) != 2 {
					return errors.New("mod list takes no target")
				}
			} else if len(args) != 3 {
				return fmt.Errorf("mod %s needs a TARGET", verb)
			}
			var action feed.ModAction
			switch verb {
			case "list", "follow", "unfollow":
			default:
				var err error
				if action, err = feed.ParseModAction(verb); err != nil {
					return fmt.Errorf("%w (want hide, unhide, block, unblock, add-mod, remove-mod, add-admin, remove-admin, follow, unfollow or list)", err)
				}
			}
			if reason != "" && (verb == "list" || verb == "follow" || verb == "unfollow") {
				return fmt.Errorf("--reason goes with a moderation action, not %s", verb)
			}
			return a.withNode(cmd, false, func(ctx context.Context, n *node.Node) error {
				c, err := n.Resolve(args[0])
				if err != nil {
					return err
				}
				if err := a.waitIndexed(ctx, n); err != nil {
					return err
				}
				switch verb {
				case "list":
					return a.modList(n, c, asJSON)
				case "follow", "unfollow":
					who, err := n.ResolveAuthor(c.ID(), args[2])
					if err != nil {
						return fmt.Errorf("in %s: %w", c.Name, err)
					}
					if err := n.Follow(c.ID(), who, verb == "follow"); err != nil {
						return err
					}
					fmt.Fprintf(a.stdout, "%sed %s (%s) in %s\n", verb, printable(n.Views().Display(c.ID(), who)), who, c.Name)
					return nil
				}
				return a.modAction(ctx, n, c, action, args[2], reason)
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (shown to everyone who reads the entry)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "list: one JSON object per line")
	return cmd
}

// parseModTarget resolves TARGET: AUTHOR:SEQ (a message; hide and unhide
// only) or an author.
func parseModTarget(n *node.Node, c feed.Channel, action feed.ModAction, s string) (feed.AuthorID, bool, uint64, error) {
	if as, ss, ok := strings.Cut(s, ":"); ok {
		if action != feed.ModHide && action != feed.ModUnhide {
			return feed.AuthorID{}, false, 0, fmt.Errorf("%s names an author, not a message (%q)", action, s)
		}
		seq, err := strconv.ParseUint(ss, 10, 64)
		if err != nil {
			return feed.AuthorID{}, false, 0, fmt.Errorf("message %q: want AUTHOR:SEQ, seq a number", s)
		}
		au, err := n.ResolveAuthor(c.ID(), as)
		if err != nil {
			return au, false, 0, fmt.Errorf("in %s: %w", c.Name, err)
		}
		return au, true, seq, nil
	}
	au, err := n.ResolveAuthor(c.ID(), s)
	if err != nil {
		return au, false, 0, fmt.Errorf("in %s: %w", c.Name, err)
	}
	return au, false, 0, nil
}

func (a *app) modAction(ctx context.Context, n *node.Node, c feed.Channel, action feed.ModAction, target, reason string) error {
	who, msg, seq, err := parseModTarget(n, c, action, target)
	if err != nil {
		return err
	}
	if !msg && who == n.Self() {
		return node.ErrModSelf
	}
	e, err := n.Mod(ctx, c.ID(), action, who, msg, seq, reason)
	if err != nil {
		return err
	}
	if err := a.waitIndexed(ctx, n); err != nil {
		return err
	}
	st, err := n.Moderation(c.ID())
	if err != nil {
		return err
	}
	what := fmt.Sprintf("%s (%s)", printable(n.Views().Display(c.ID(), who)), who)
	if msg {
		what = fmt.Sprintf("message %d of %s", seq, what)
	}
	fmt.Fprintf(a.stdout, "%s %s in %s (your entry %d)\n", action, what, c.Name, e.Seq)
	if st.Role(n.Self()) == "" {
		fmt.Fprintf(a.stderr, "kchat: note: you hold no role in %s: this counts only for those who follow you\n", c.Name)
	}
	return nil
}

// jsonMod is one line of mod list --json: a role (kind "role") or a
// moderator's current action (kind "action").
type jsonMod struct {
	Kind      string `json:"kind"`
	Author    string `json:"author,omitempty"` // role: who holds it
	Role      string `json:"role,omitempty"`
	Moderator string `json:"moderator,omitempty"`
	Action    string `json:"action,omitempty"`
	Target    string `json:"target,omitempty"`
	Seq       *int64 `json:"seq,omitempty"` // the target message's seq
	Reason    string `json:"reason,omitempty"`
	Time      string `json:"time,omitempty"`
	Nick      string `json:"nick,omitempty"` // role holder's or moderator's, as displayed
}

func (a *app) modList(n *node.Node, c feed.Channel, asJSON bool) error {
	st, err := n.Moderation(c.ID())
	if err != nil {
		return err
	}
	follows, err := n.Views().Follows(c.ID())
	if err != nil {
		return err
	}
	v := n.Views()
	w := bufio.NewWriter(a.stdout)
	ms, err := n.Members(c.ID())
	if err != nil {
		return err
	}
	// Roles, in members order (then any role holder not yet a member).
	shown := map[feed.AuthorID]bool{}
	var holders []feed.AuthorID
	for _, m := range ms {
		if st.Role(m.Author) != "" {
			holders = append(holders, m.Author)
			shown[m.Author] = true
		}
	}
	for _, adm := range c.Admins.IDs() {
		if !shown[adm] && st.Role(adm) != "" {
			holders = append(holders, adm)
			shown[adm] = true
		}
	}
	for au := range st.Roles {
		if !shown[au] {
			holders = append(holders, au)
		}
	}
	for _, au := range holders {
		if asJSON {
			b, err := json.Marshal(jsonMod{Kind: "role", Author: au.String(), Role: st.Role(au), Nick: v.Display(c.ID(), au)})
			if err != nil {
				return fmt.Errorf("mod list: %w", err)
			}
			fmt.Fprintf(w, "%s\n", b)
			continue
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", st.Role(au), printable(v.Display(c.ID(), au)), au)
	}
	for _, e := range st.Current {
		if e.Action == feed.ModUnhide || e.Action == feed.ModUnblock || e.Action == feed.ModRemoveMod ||
			e.Action == feed.ModRemoveAdmin || e.Action == feed.ModAddMod || e.Action == feed.ModAddAdmin {
			continue // roles are listed above; retractions do nothing
		}
		if asJSON {
			jm := jsonMod{Kind: "action", Moderator: e.Moderator.String(), Nick: v.Display(c.ID(), e.Moderator),
				Action: e.Action.String(), Target: e.Target.String(), Reason: e.Reason, Time: e.Time.UTC().Format(time.RFC3339)}
			if e.Message {
				s := int64(e.MsgSeq)
				jm.Seq = &s
			}
			b, err := json.Marshal(jm)
			if err != nil {
				return fmt.Errorf("mod list: %w", err)
			}
			fmt.Fprintf(w, "%s\n", b)
			continue
		}
		what := printable(v.Display(c.ID(), e.Target))
		if e.Message {
			what = fmt.Sprintf("message %d of %s", e.MsgSeq, what)
		}
		line := fmt.Sprintf("%s %s %s", printable(v.Display(c.ID(), e.Moderator)), e.Action, what)
		if e.Reason != "" {
			line += ": " + printable(e.Reason)
		}
		fmt.Fprintln(w, line)
	}
	if !asJSON {
		for au, f := range follows {
			state := "not followed"
			if f {
				state = "followed"
			}
			fmt.Fprintf(w, "(%s %s: local setting)\n", state, printable(v.Display(c.ID(), au)))
		}
	}
	return w.Flush()
}

// modHidden is the moderation state read uses to leave messages out.
func modHidden(n *node.Node, c feed.Channel) (func(views.Message) bool, error) {
	st, err := n.Moderation(c.ID())
	if err != nil {
		return nil, err
	}
	return hiddenBy(st, n.BlockedIn(c.ID())), nil
}

// hiddenBy reports whether moderation st or the local block list hides a
// message.
func hiddenBy(st *views.ModState, blocked map[feed.AuthorID]bool) func(views.Message) bool {
	return func(m views.Message) bool {
		if blocked[m.Author] {
			return true
		}
		_, hidden := st.Hides(m.Author, m.Seq)
		return hidden
	}
}

// quoteHidden reports whether m replies to a message hide hides (its
// quote is then left out, unless all: read --all shows everything).
func quoteHidden(hide func(views.Message) bool, m views.Message, all bool) bool {
	r := m.ReplyTo
	return !all && r != nil && hide != nil && hide(views.Message{Author: r.Author, Seq: r.Seq, Kind: feed.KindText})
}

// modCache keeps a channel's moderation between looks of a follow: reading
// it walks every moderation row of the channel, and it changes rarely. It
// is read again when the views' moderation generation moved since (or was
// moving while) it was read (views.ModGeneration).
type modCache struct {
	st    *views.ModState
	gen   uint64
	valid bool
}

// get returns c's moderation. Call it after reading the messages it is to
// judge: a message shown was committed after the generation moved for any
// moderation in its chunk.
func (mc *modCache) get(n *node.Node, c feed.Channel) (*views.ModState, error) {
	g := n.ModGeneration()
	if mc.valid && g == mc.gen {
		return mc.st, nil
	}
	st, err := n.Moderation(c.ID())
	if err != nil {
		return nil, err
	}
	g2 := n.ModGeneration()
	mc.st, mc.gen, mc.valid = st, g, g == g2 && g%2 == 0
	return st, nil
}

// lastVisible is the last limit messages of c that moderation and blocks do
// not hide (with all, the last limit messages, hidden ones marked).
func lastVisible(n *node.Node, c feed.Channel, limit int, all bool) ([]views.Message, []bool, func(views.Message) bool, error) {
	hide, err := modHidden(n, c)
	if err != nil {
		return nil, nil, nil, err
	}
	want := limit
	for {
		msgs, err := n.Views().Last(c.ID(), want)
		if err != nil {
			return nil, nil, nil, err
		}
		var out []views.Message
		var hidden []bool
		for _, m := range msgs {
			h := hide(m)
			if h && !all {
				continue
			}
			out = append(out, m)
			hidden = append(hidden, h)
		}
		if len(out) >= limit || len(msgs) < want {
			if len(out) > limit {
				out, hidden = out[len(out)-limit:], hidden[len(hidden)-limit:]
			}
			return out, hidden, hide, nil
		}
		want *= 2
	}
}

var _ ui.ModBackend = (*uiBackend)(nil)
var _ interface {
	JoinLink(context.Context, feed.Link) (feed.Channel, error)
} = (*uiBackend)(nil)
