package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/internal/termtext"
	"github.com/kchat-p2p/kchat/node"
	"github.com/kchat-p2p/kchat/views"
	"github.com/spf13/cobra"
)

func (a *app) idCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "id",
		Short: "Print your author id (your public key)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withNode(cmd, false, func(_ context.Context, n *node.Node) error {
				fmt.Fprintln(a.stdout, n.Self())
				return nil
			})
		},
	}
}

func (a *app) nickCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "nick [NAME]",
		Short: "Set your nickname (announced in every joined channel); without NAME, print it",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withNode(cmd, false, func(ctx context.Context, n *node.Node) error {
				if len(args) == 0 {
					if nick := n.Nick(); nick != "" {
						fmt.Fprintln(a.stdout, nick)
						return nil
					}
					return errors.New("no nickname set: kchat nick NAME sets one")
				}
				if strings.TrimSpace(args[0]) == "" {
					return errors.New("empty nickname: give one, e.g. kchat nick ann")
				}
				if err := n.SetNick(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "you are now known as %s\n", printable(strings.TrimSpace(args[0])))
				return nil
			})
		},
	}
}

func (a *app) newCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "new NAME",
		Short: "Create a channel and print its key (share the key to invite people)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := feed.ValidateChannelName(args[0]); err != nil {
				return err
			}
			return a.withNode(cmd, false, func(ctx context.Context, n *node.Node) error {
				if _, err := n.Resolve(args[0]); err == nil {
					return fmt.Errorf("%w: %q", feed.ErrNameTaken, args[0])
				}
				c, err := n.Create(ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, c.Link())
				return nil
			})
		},
	}
}

func (a *app) joinCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "join KEY [NAME]",
		Short: "Join a channel by its kchat:// key, under NAME (default: the key's name hint)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := feed.ParseLink(args[0])
			if err != nil {
				return err
			}
			if len(args) == 2 {
				if name != "" && name != args[1] {
					return fmt.Errorf("two names given: %q and --name %q; give one", args[1], name)
				}
				name = args[1]
			}
			explicit := name != ""
			if name == "" {
				name = l.Name
			}
			if name != "" {
				if err := feed.ValidateChannelName(name); err != nil {
					return err
				}
			}
			return a.withNode(cmd, false, func(ctx context.Context, n *node.Node) error {
				l.Name = name
				c, err := n.JoinLink(ctx, l)
				if errors.Is(err, feed.ErrNameTaken) {
					alt := name + "-" + l.Key.DiscoveryID().Short()[:4]
					what := "the name"
					if !explicit {
						what = "the key's name hint"
					}
					return fmt.Errorf("%w: %s %q is another of your channels; join this one under another name, e.g. kchat join %s %s",
						feed.ErrNameTaken, what, name, args[0], alt)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "joined %s\n", c.Name)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "local name for the channel (default: the key's name hint)")
	return cmd
}

func (a *app) partCmd() *cobra.Command {
	var purge bool
	cmd := &cobra.Command{
		Use:   "part CHANNEL",
		Short: "Leave a channel (its history stays on disk unless --purge)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withNode(cmd, false, func(ctx context.Context, n *node.Node) error {
				c, err := n.Resolve(args[0])
				if err != nil {
					return err
				}
				if purge {
					if err := n.PurgeChannel(ctx, c.ID()); err != nil {
						return err
					}
					fmt.Fprintf(a.stdout, "left %s and deleted its history from this device\n", c.Name)
					return nil
				}
				if err := n.Part(ctx, c.ID()); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "left %s; its history stays here; to come back: kchat join %s\n", c.Name, c.Link())
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&purge, "purge", false, "also delete everything stored of the channel")
	return cmd
}

func (a *app) blockCmd() *cobra.Command {
	var purge bool
	cmd := &cobra.Command{
		Use:   "block CHANNEL WHO",
		Short: "Block an author in a channel: their feed is no longer stored or passed on, and they are hidden",
		Long: `Block an author in CHANNEL (on this device). Their entries are no longer
stored, so they are not passed on to other peers either, and their messages
are hidden, uncounted and never ring. --purge also deletes everything stored
of their feed in CHANNEL. WHO is a nick as shown (with its ~suffix where
shown), a 64-hex author id, or a unique id prefix of at least 8 hex digits.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withNode(cmd, false, func(ctx context.Context, n *node.Node) error {
				c, who, err := a.resolveWho(ctx, n, args[0], args[1])
				if err != nil {
					return err
				}
				display := printable(n.Views().Display(c.ID(), who))
				if err := n.Block(ctx, c.ID(), who, purge); err != nil {
					return err
				}
				verb := "blocked"
				if purge {
					verb = "blocked and purged"
				}
				fmt.Fprintf(a.stdout, "%s %s (%s) in %s\n", verb, display, who, c.Name)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&purge, "purge", false, "also delete everything stored of their feed in the channel")
	return cmd
}

func (a *app) unblockCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "unblock CHANNEL WHO",
		Short: "Lift a block: the author's feed is accepted again",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withNode(cmd, false, func(ctx context.Context, n *node.Node) error {
				c, who, err := a.resolveWho(ctx, n, args[0], args[1])
				if err != nil {
					return err
				}
				if err := n.Unblock(c.ID(), who); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "unblocked %s (%s) in %s\n", printable(n.Views().Display(c.ID(), who)), who, c.Name)
				return nil
			})
		},
	}
}

// resolveWho resolves CHANNEL and, among its authors as now indexed, WHO.
func (a *app) resolveWho(ctx context.Context, n *node.Node, channel, who string) (feed.Channel, feed.AuthorID, error) {
	c, err := n.Resolve(channel)
	if err != nil {
		return c, feed.AuthorID{}, err
	}
	if err := a.waitIndexed(ctx, n); err != nil {
		return c, feed.AuthorID{}, err
	}
	au, err := n.ResolveAuthor(c.ID(), who)
	if err != nil {
		return c, au, fmt.Errorf("in %s: %w", c.Name, err)
	}
	return c, au, nil
}

// jsonMember is one line of members --json.
type jsonMember struct {
	Author      string `json:"author"`
	Nick        string `json:"nick"` // as displayed, with its ~suffix where shown
	Messages    int    `json:"messages"`
	Bytes       int64  `json:"bytes"`
	LastArrival string `json:"last_arrival"` // RFC 3339; "" if nothing of theirs is stored
	Forked      bool   `json:"forked"`
	Blocked     bool   `json:"blocked"`
	Throttled   bool   `json:"throttled"`
	Role        string `json:"role"`
	Hidden      bool   `json:"hidden"`
}

func (a *app) membersCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "members CHANNEL",
		Short: "List the authors of a channel: nick, messages, bytes stored, last arrival, forked, blocked",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withNode(cmd, false, func(ctx context.Context, n *node.Node) error {
				c, err := n.Resolve(args[0])
				if err != nil {
					return err
				}
				if err := a.waitIndexed(ctx, n); err != nil {
					return err
				}
				ms, err := n.Members(c.ID())
				if err != nil {
					return err
				}
				w := bufio.NewWriter(a.stdout)
				for _, m := range ms {
					last := ""
					if !m.LastArrival.IsZero() {
						last = m.LastArrival.UTC().Format(time.RFC3339)
					}
					if asJSON {
						// throttled: always false until Node.Members reads
						// Store.Throttled(ch, a) bool (TODO there); role and
						// hidden: "" and false until moderation fills them.
						b, err := json.Marshal(jsonMember{Author: m.Author.String(), Nick: m.Display, Messages: m.Messages,
							Bytes: m.Bytes, LastArrival: last, Forked: m.Forked, Blocked: m.Blocked,
							Throttled: m.Throttled, Role: m.Role, Hidden: m.Hidden})
						if err != nil {
							return fmt.Errorf("members: %w", err)
						}
						fmt.Fprintf(w, "%s\n", b)
						continue
					}
					if last == "" {
						last = "-"
					}
					var flags []string
					for _, f := range []struct {
						on   bool
						name string
					}{{m.Forked, "forked"}, {m.Blocked, "blocked"}, {m.Throttled, "throttled"}, {m.Hidden, "hidden"}} {
						if f.on {
							flags = append(flags, f.name)
						}
					}
					if m.Role != "" {
						flags = append(flags, m.Role)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%d bytes\tlast %s", m.Author, printable(m.Display), messages(m.Messages), m.Bytes, last)
					if len(flags) > 0 {
						fmt.Fprintf(w, "\t%s", strings.Join(flags, " "))
					}
					fmt.Fprintln(w)
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per author per line")
	return cmd
}

func (a *app) channelsCmd() *cobra.Command {
	var keys bool
	cmd := &cobra.Command{
		Use:   "channels",
		Short: "List joined channels",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withNode(cmd, false, func(ctx context.Context, n *node.Node) error {
				chans, err := n.Channels()
				if err != nil {
					return err
				}
				if err := a.waitIndexed(ctx, n); err != nil {
					return err
				}
				if len(chans) == 0 {
					// On stderr: stdout stays one line per channel.
					fmt.Fprintln(a.stderr, "kchat: no channel joined yet: kchat new NAME creates one, kchat join KEY [NAME] joins one")
				}
				for _, c := range chans {
					count, err := n.Views().Count(c.ID())
					if err != nil {
						return err
					}
					if keys {
						fmt.Fprintf(a.stdout, "%s\t%s\t%s\n", c.Name, messages(count), c.Link())
					} else {
						fmt.Fprintf(a.stdout, "%s\t%s\n", c.Name, messages(count))
					}
					forks, err := n.Store().Forks(c.ID())
					if err != nil {
						return err
					}
					for _, f := range forks {
						fmt.Fprintf(a.stderr, "kchat: warning: in %s, author %s (%s) signed two different messages at seq %d; their later messages are not accepted\n",
							c.Name, printable(n.Views().Display(c.ID(), f.Author)), f.Author.Short(), f.Seq)
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&keys, "keys", false, "also print each channel's key")
	return cmd
}

// waitIndexed waits until the views hold everything stored, so that what a
// command prints is current. On a read-only store (a full disk) it warns
// about what cannot be indexed instead.
func (a *app) waitIndexed(ctx context.Context, n *node.Node) error {
	err := n.WaitIndexed(ctx)
	if errors.Is(err, views.ErrReadOnly) {
		fmt.Fprintf(a.stderr, "kchat: warning: %v; they are not shown until the store can be written\n", err)
		return nil
	}
	return err
}

func (a *app) sendCmd() *cobra.Command {
	var fromStdin, emote bool
	var replyTo string
	var edit, del uint64
	cmd := &cobra.Command{
		Use:   "send CHANNEL [TEXT...]",
		Short: "Send a message (works offline; peers get it when they meet you)",
		Long: `Send a message to CHANNEL (its name or key). The words of TEXT are joined by
spaces. With --stdin, every line of standard input is one message; each stored
message is acknowledged on stdout as "ok SEQ" once it is on disk.

--reply-to WHO:SEQ answers a message (WHO: a nick as shown, an author id or
8+ hex of one), --reply-to WHO answers WHO's latest; --edit SEQ replaces the
text of your message SEQ; --delete SEQ withdraws it (authors and seqs are in
read --json).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			editing, deleting := cmd.Flags().Changed("edit"), cmd.Flags().Changed("delete")
			changes := 0
			for _, set := range []bool{replyTo != "", editing, deleting} {
				if set {
					changes++
				}
			}
			switch {
			case changes > 1:
				return errors.New("give one of --reply-to, --edit and --delete")
			case changes > 0 && fromStdin:
				return errors.New("--reply-to, --edit and --delete send one message: give TEXT, not --stdin")
			case deleting && len(args) > 1:
				return errors.New("--delete takes no TEXT")
			case fromStdin && len(args) > 1:
				return errors.New("give either TEXT or --stdin, not both")
			case !fromStdin && !deleting && len(args) < 2:
				return errors.New("nothing to send: give TEXT or --stdin")
			}
			kind := feed.KindText
			if emote {
				kind = feed.KindEmote
			}
			return a.withNode(cmd, false, func(ctx context.Context, n *node.Node) error {
				c, err := n.Resolve(args[0])
				if err != nil {
					return err
				}
				if fromStdin {
					return a.sendLines(ctx, n, c, kind)
				}
				p := feed.Payload{Kind: kind, Text: strings.Join(args[1:], " ")}
				switch {
				case replyTo != "":
					if p.Ref, err = messageRef(n, c, replyTo); err != nil {
						return err
					}
				case editing:
					if err := ownMessage(n, c, edit); err != nil {
						return err
					}
					p = feed.Payload{Kind: feed.KindEdit, Text: p.Text, Ref: feed.NewRef(n.Self(), edit)}
				case deleting:
					if err := ownMessage(n, c, del); err != nil {
						return err
					}
					p = feed.Payload{Kind: feed.KindDelete, Ref: feed.NewRef(n.Self(), del)}
				}
				es, err := n.Send(ctx, c.ID(), p)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "ok %d\n", es[0].Seq)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "stdin", false, "send each line of standard input as a message")
	cmd.Flags().BoolVar(&emote, "me", false, "send as an action (/me)")
	cmd.Flags().StringVar(&replyTo, "reply-to", "", "answer message `WHO[:SEQ]` (WHO: a nick as shown, an id or 8+ hex of one; no SEQ: their latest)")
	cmd.Flags().Uint64Var(&edit, "edit", 0, "replace the text of your message `SEQ` with TEXT")
	cmd.Flags().Uint64Var(&del, "delete", 0, "withdraw your message `SEQ`")
	return cmd
}

// messageRef parses [WHO][:SEQ] and checks that the message is held in c.
// WHO is an author as everywhere (a nick as shown, a 64-hex id, or 8+ hex of
// one); without :SEQ it is WHO's latest message in c.
func messageRef(n *node.Node, c feed.Channel, s string) (*feed.Ref, error) {
	as, ss := s, ""
	if i := strings.LastIndex(s, ":"); i >= 0 {
		if _, err := strconv.ParseUint(s[i+1:], 10, 64); err == nil {
			as, ss = s[:i], s[i+1:]
		}
	}
	if as == "" {
		return nil, fmt.Errorf("--reply-to %q: want WHO or WHO:SEQ (WHO: a nick, an id or 8+ hex of one)", s)
	}
	au, err := n.ResolveAuthor(c.ID(), as)
	if err != nil {
		return nil, fmt.Errorf("--reply-to: %w", err)
	}
	if ss == "" {
		return latestBy(n, c, au)
	}
	seq, err := strconv.ParseUint(ss, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("--reply-to: seq %q is not a number", ss)
	}
	p, err := n.Message(c.ID(), au, seq)
	if err != nil {
		return nil, fmt.Errorf("--reply-to: message %d of %s in %s: %w", seq, au.Short(), c.Name, err)
	}
	if p.Kind != feed.KindText && p.Kind != feed.KindEmote {
		return nil, fmt.Errorf("--reply-to: message %d of %s is a %s, not a message", seq, au.Short(), p.Kind)
	}
	return feed.NewRef(au, seq), nil
}

// latestLook is how many of a channel's newest messages --reply-to WHO
// looks through for WHO's latest.
const latestLook = 1000

// latestBy is a reference to author au's latest message (text or emote,
// not deleted) among the newest latestLook of channel c.
func latestBy(n *node.Node, c feed.Channel, au feed.AuthorID) (*feed.Ref, error) {
	ms, err := n.Views().Last(c.ID(), latestLook)
	if err != nil {
		return nil, fmt.Errorf("--reply-to: %w", err)
	}
	for i := len(ms) - 1; i >= 0; i-- {
		m := ms[i]
		if m.Author == au && !m.Deleted && (m.Kind == feed.KindText || m.Kind == feed.KindEmote) {
			return feed.NewRef(au, m.Seq), nil
		}
	}
	return nil, fmt.Errorf("--reply-to: %s has no message among the last %d of %s: give WHO:SEQ (seq as in read --json)", au.Short(), latestLook, c.Name)
}

// ownMessage checks that the local user's message seq in c can be changed.
func ownMessage(n *node.Node, c feed.Channel, seq uint64) error {
	p, err := n.Message(c.ID(), n.Self(), seq)
	if err != nil {
		return fmt.Errorf("your message %d in %s: %w", seq, c.Name, err)
	}
	if p.Kind != feed.KindText && p.Kind != feed.KindEmote {
		return fmt.Errorf("your entry %d in %s is a %s, not a message", seq, c.Name, p.Kind)
	}
	return nil
}

// sendLines sends stdin line by line. Lines are batched while more input is
// ready (one fsync per batch); bad lines are reported and skipped.
func (a *app) sendLines(ctx context.Context, n *node.Node, c feed.Channel, kind feed.Kind) error {
	type line struct {
		no   int
		text string
		err  error
	}
	lines := make(chan line, 1024)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(lines)
		br := bufio.NewReaderSize(a.stdin, 64<<10)
		for no := 1; ; no++ {
			text, err := readLine(br, feed.MaxPayload)
			if errors.Is(err, io.EOF) && text == "" {
				return
			}
			l := line{no: no, text: text}
			if err != nil && !errors.Is(err, io.EOF) {
				l.err = err
			}
			select {
			case lines <- l:
			case <-ctx.Done():
				return
			}
			if err != nil && !errors.Is(err, errLineTooLong) {
				return
			}
		}
	}()
	failed := 0
	var batch []feed.Payload
	var nos []int
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		es, err := n.Send(ctx, c.ID(), batch...)
		if err != nil {
			return err
		}
		w := bufio.NewWriter(a.stdout)
		for _, e := range es {
			fmt.Fprintf(w, "ok %d\n", e.Seq)
		}
		batch, nos = batch[:0], nos[:0]
		return w.Flush()
	}
	for l := range lines {
		batch, nos, failed = a.addLine(l.no, l.text, l.err, kind, batch, nos, failed)
		// Gather what arrives within a moment (a pipe delivers many lines
		// at once), then store it as one batch with one fsync.
		linger := time.NewTimer(2 * time.Millisecond)
	drain:
		for len(batch) < 1000 {
			select {
			case l, ok := <-lines:
				if !ok {
					break drain
				}
				batch, nos, failed = a.addLine(l.no, l.text, l.err, kind, batch, nos, failed)
			case <-linger.C:
				break drain
			}
		}
		linger.Stop()
		if err := flush(); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d line(s) not sent", failed)
	}
	return nil
}

func (a *app) addLine(no int, text string, err error, kind feed.Kind, batch []feed.Payload, nos []int, failed int) ([]feed.Payload, []int, int) {
	if err == nil {
		p := feed.Payload{Kind: kind, Text: text}
		if err = p.Validate(); err == nil {
			if _, err = p.Marshal(); err == nil {
				return append(batch, p), append(nos, no), failed
			}
		}
	}
	fmt.Fprintf(a.stderr, "kchat: line %d not sent: %v\n", no, err)
	return batch, nos, failed + 1
}

// errLineTooLong reports a line over the message size limit; the rest of
// the line is consumed so the next line is read normally.
var errLineTooLong = errors.New("line too long")

// readLine reads one line without its newline (and a trailing \r).
func readLine(br *bufio.Reader, max int) (string, error) {
	var sb strings.Builder
	for {
		frag, err := br.ReadSlice('\n')
		if sb.Len()+len(frag) <= max+2 {
			sb.Write(frag)
		} else if sb.Len() <= max+2 {
			sb.Write(frag[:max+3-sb.Len()])
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		s := strings.TrimSuffix(strings.TrimSuffix(sb.String(), "\n"), "\r")
		if len(s) > max {
			if err == nil || errors.Is(err, io.EOF) {
				return "", fmt.Errorf("%w: more than %d bytes", errLineTooLong, max)
			}
		}
		if err != nil {
			return s, err
		}
		return s, nil
	}
}

func (a *app) readCmd() *cobra.Command {
	var limit int
	var asJSON, follow, all bool
	cmd := &cobra.Command{
		Use:   "read CHANNEL",
		Short: "Print the last messages of a channel, oldest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 && !(follow && limit == 0) {
				return errors.New("--limit must be at least 1 (or 0 with --follow: only new messages)")
			}
			return a.withNode(cmd, false, func(ctx context.Context, n *node.Node) error {
				c, err := n.Resolve(args[0])
				if err != nil {
					return err
				}
				if follow && n.ReadOnly() {
					return fmt.Errorf("cannot follow: %w", node.ErrReadOnly)
				}
				if follow && a.served == nil {
					// This process holds the store (no node ran here):
					// it serves the control socket while it follows, so
					// that `kchat send` in another terminal goes through
					// it instead of failing on the store's lock.
					srv, err := a.serve(ctx, n)
					if err != nil {
						return err
					}
					defer srv.Close()
				}
				if err := a.waitIndexed(ctx, n); err != nil {
					return err
				}
				// Taken before Last: whatever is indexed in between is
				// printed by follow (which skips what Last showed).
				indexed := n.Views().Indexed()
				var msgs []views.Message
				var hidden []bool
				var hide func(views.Message) bool
				if limit > 0 {
					if msgs, hidden, hide, err = lastVisible(n, c, limit, all); err != nil {
						return err
					}
				}
				w := bufio.NewWriter(a.stdout)
				for i, m := range msgs {
					a.printMessageHidden(w, m, asJSON, hidden[i], quoteHidden(hide, m, all))
				}
				if err := w.Flush(); err != nil || !follow {
					return err
				}
				return a.follow(ctx, n, c, indexed, msgs, asJSON, all)
			})
		},
	}
	cmd.Flags().IntVarP(&limit, "limit", "n", 50, "how many messages (0 with --follow: only new ones)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per message per line")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new messages as they arrive (and, with no kchat running on the data dir, let other kchat commands run through this one)")
	cmd.Flags().BoolVar(&all, "all", false, "include messages hidden or blocked by moderation or a block (--json marks them \"hidden\": true)")
	return cmd
}

func (a *app) searchCmd() *cobra.Command {
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "search CHANNEL TEXT...",
		Short: "Print the messages of a channel that contain TEXT (case-insensitive), oldest first",
		Long: `Search CHANNEL's history, newest first, for messages whose text contains TEXT
(the words joined by spaces), ignoring case, and print the newest --limit of
them, oldest first. Edited messages are searched as edited; deleted ones never.`,
		Args: func(_ *cobra.Command, args []string) error {
			switch len(args) {
			case 0:
				return errors.New("search what? kchat search CHANNEL TEXT, e.g. kchat search general lunch")
			case 1:
				return fmt.Errorf("search %s for what? give the text to look for: kchat search %s TEXT", args[0], args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 {
				return errors.New("--limit must be at least 1")
			}
			query := strings.Join(args[1:], " ")
			return a.withNode(cmd, false, func(ctx context.Context, n *node.Node) error {
				c, err := n.Resolve(args[0])
				if err != nil {
					return err
				}
				if err := a.waitIndexed(ctx, n); err != nil {
					return err
				}
				// What read leaves out (blocked authors, moderation's
				// hides), search leaves out too.
				hide, err := modHidden(n, c)
				if err != nil {
					return err
				}
				var found []views.Message
				var cur views.Cursor
				for len(found) < limit {
					// Each call looks at a bounded number of messages;
					// go on from where it stopped until enough are found.
					page, next, err := n.Views().Search(c.ID(), query, cur, limit-len(found))
					if err != nil {
						return err
					}
					found = append(slices.DeleteFunc(page, hide), found...)
					if next == "" || ctx.Err() != nil {
						break
					}
					cur = next
				}
				w := bufio.NewWriter(a.stdout)
				for _, m := range found {
					a.printMessageHidden(w, m, asJSON, false, quoteHidden(hide, m, false))
				}
				if err := w.Flush(); err != nil {
					return err
				}
				if len(found) == 0 {
					fmt.Fprintf(a.stderr, "kchat: no message in %s contains %q\n", c.Name, query)
					return exitError{1}
				}
				return nil
			})
		},
	}
	cmd.Flags().IntVarP(&limit, "limit", "n", 20, "how many matches, the newest")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per message per line")
	return cmd
}

// follow prints messages as they are indexed, in arrival order, until ctx
// ends; and edits and deletes of earlier messages, as lines of their own.
func (a *app) follow(ctx context.Context, n *node.Node, c feed.Channel, after uint64, shown []views.Message, asJSON, all bool) error {
	sub := n.Views().Subscribe()
	defer sub.Close()
	seen := map[[2]any]bool{}
	for _, m := range shown {
		seen[[2]any{m.Author, m.Seq}] = true
	}
	afterEdit := after
	// One write per look, not per line: through the control socket each
	// write is a reply frame and a syscall. One buffer for every look.
	w := bufio.NewWriterSize(a.stdout, 64<<10)
	var mod modCache
	for {
		msgs, err := n.Views().Arrived(c.ID(), after, 1000)
		if err != nil {
			return err
		}
		st, err := mod.get(n, c)
		if err != nil {
			return err
		}
		hide := hiddenBy(st, n.BlockedIn(c.ID()))
		for _, m := range msgs {
			after = max(after, m.Arrival)
			if !seen[[2]any{m.Author, m.Seq}] && (all || !hide(m)) {
				a.printMessageHidden(w, m, asJSON, hide(m), quoteHidden(hide, m, all))
			}
		}
		eds, err := n.Views().Edits(c.ID(), afterEdit, 1000)
		if err != nil {
			return err
		}
		for _, ed := range eds {
			afterEdit = ed.Arrival
			a.printEdit(w, c.ID(), n.Views(), ed, asJSON)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if len(msgs) == 1000 || len(eds) == 1000 {
			continue
		}
		clear(seen)
		select {
		case <-ctx.Done():
			return nil
		case <-sub.C():
		}
	}
}

// jsonEdit is a change to an earlier message, as read --follow prints it.
type jsonEdit struct {
	Kind   string `json:"kind"` // "edit" or "delete"
	Author string `json:"author"`
	Seq    uint64 `json:"seq"`
	Text   string `json:"text,omitempty"`
}

func (a *app) printEdit(w io.Writer, ch feed.DiscoveryID, v *views.Views, ed views.Edit, asJSON bool) {
	kind := feed.KindEdit
	if ed.Deleted {
		kind = feed.KindDelete
	}
	if asJSON {
		b, _ := json.Marshal(jsonEdit{Kind: kind.String(), Author: ed.Author.String(), Seq: ed.Seq, Text: ed.Text})
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	who := printable(v.Display(ch, ed.Author))
	if ed.Deleted {
		fmt.Fprintf(w, "-- %s deleted their message %d\n", who, ed.Seq)
		return
	}
	fmt.Fprintf(w, "-- %s edited their message %d: %s\n", who, ed.Seq, printable(ed.Text))
}

type jsonMessage struct {
	Time    string   `json:"time"`
	Claimed string   `json:"claimed_time"`
	Author  string   `json:"author"`
	Nick    string   `json:"nick"`
	Seq     uint64   `json:"seq"`
	Kind    string   `json:"kind"`
	Text    string   `json:"text"`
	Edited  bool     `json:"edited,omitempty"`
	Deleted bool     `json:"deleted,omitempty"`
	ReplyTo *jsonRef `json:"reply_to,omitempty"`
	Hidden  bool     `json:"hidden,omitempty"` // read --all: hidden by moderation or a block
}

// jsonRef is the message another one replies to.
type jsonRef struct {
	Author string `json:"author"`
	Seq    uint64 `json:"seq"`
}

// printMessageHidden prints m, marked as hidden (read --all) if hidden;
// quoteHidden leaves out the quote of the message it replies to (hidden
// here).
func (a *app) printMessageHidden(w io.Writer, m views.Message, asJSON, hidden, quoteHidden bool) {
	if asJSON {
		jm := jsonMessage{Time: m.Time.UTC().Format(time.RFC3339Nano), Claimed: m.Claimed.UTC().Format(time.RFC3339Nano),
			Author: m.Author.String(), Nick: m.Nick, Seq: m.Seq, Kind: m.Kind.String(), Text: m.Text,
			Edited: m.Edited, Deleted: m.Deleted, Hidden: hidden}
		if r := m.ReplyTo; r != nil {
			jm.ReplyTo = &jsonRef{Author: r.Author.String(), Seq: r.Seq}
		}
		b, _ := json.Marshal(jm)
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	ts := m.Time.Local().Format("2006-01-02 15:04")
	nick, text := printable(m.Display), printable(m.Text)
	switch {
	case m.Deleted:
		text = "(deleted)"
	case m.Edited:
		text += " (edited)"
	}
	if hidden {
		text = "(hidden) " + text
	}
	if r := m.ReplyTo; r != nil {
		quote := printable(r.Text)
		if n := []rune(quote); len(n) > 40 {
			quote = string(n[:39]) + "…"
		}
		switch {
		case quoteHidden:
			text = "↪ (a hidden message) | " + text
		case r.Missing:
			quote = "(a message not here yet)"
		case r.Deleted:
			quote = "(deleted)"
		}
		if !quoteHidden {
			text = fmt.Sprintf("↪ %s: %s | %s", printable(r.Display), quote, text)
		}
	}
	switch m.Kind {
	case feed.KindEmote:
		fmt.Fprintf(w, "%s * %s %s\n", ts, nick, text)
	case feed.KindTopic:
		fmt.Fprintf(w, "%s -- %s set the topic: %s\n", ts, nick, text)
	case feed.KindNick:
		was := m.PrevNick
		if was == "" {
			was = m.Author.Short() // their first nickname
		}
		fmt.Fprintf(w, "%s -- %s is now known as %s\n", ts, printable(was), text)
	default:
		fmt.Fprintf(w, "%s <%s> %s\n", ts, nick, text)
	}
}

// printable makes peer-written text safe for a terminal on one line
// (internal/termtext, the sanitiser the UI uses too): escape sequences are
// removed with their tails, bidi controls and invisible characters are
// removed, other controls are shown as visible symbols, line breaks as ⏎.
func printable(s string) string { return termtext.Inline(s) }

// messages says a count of messages: "1 message", "3 messages".
func messages(n int) string {
	if n == 1 {
		return "1 message"
	}
	return strconv.Itoa(n) + " messages"
}
