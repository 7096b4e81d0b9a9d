package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/kchat-p2p/kchat/feed"
	"github.com/kchat-p2p/kchat/node"
	"github.com/kchat-p2p/kchat/ui"
	"github.com/kchat-p2p/kchat/views"
	"github.com/spf13/cobra"
)

// Private messages (issue 16): sealed entries in the sender's feed of a
// channel both people are in (node/private.go, package seal).

// The UI offers /msg and /query when its backend can send them.
var _ ui.PrivateBackend = (*uiBackend)(nil)

func (a *app) msgCmd() *cobra.Command {
	var via string
	cmd := &cobra.Command{
		Use:   "msg WHO TEXT...",
		Short: "Send a private message, sealed so that only WHO (and you) can read it",
		Long: `Send a private message to WHO: a nick as shown (with its ~suffix where shown),
a 64-hex author id, or a unique id prefix of at least 8 hex digits. The words
of TEXT are joined by spaces.

It is an entry of your feed in a channel you both are in (--via CHANNEL, or
by default the one where WHO wrote most recently): every peer and seed of
that channel carries it, but only WHO and you can open it. They see that you
wrote something, when, and how long; not what, nor to whom. Works offline.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			text := strings.Join(args[1:], " ")
			if strings.TrimSpace(text) == "" {
				return errors.New("empty message")
			}
			return a.withNode(cmd, false, func(ctx context.Context, n *node.Node) error {
				if err := a.waitIndexed(ctx, n); err != nil {
					return err
				}
				c, to, err := n.FindRecipient(args[0], via)
				if err != nil {
					return err
				}
				e, err := n.SendPrivate(ctx, c.ID(), to, text)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "ok %d (to %s via %s)\n", e.Seq, printable(n.Views().Display(c.ID(), to)), c.Name)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&via, "via", "", "the `CHANNEL` to carry it (default: one you share with WHO)")
	return cmd
}

// jsonPrivate is one line of msgs --json.
type jsonPrivate struct {
	Time   string `json:"time"`
	From   string `json:"from"` // nicks as displayed in the channel
	To     string `json:"to"`
	FromID string `json:"from_id"`
	ToID   string `json:"to_id"`
	Text   string `json:"text"`
	Via    string `json:"via"` // the channel's local name
	// Undecryptable: addressed to you but changed or forged: never shown.
	Undecryptable bool `json:"undecryptable,omitempty"`
}

func (a *app) msgsCmd() *cobra.Command {
	var asJSON, follow bool
	var limit int
	cmd := &cobra.Command{
		Use:   "msgs [WHO]",
		Short: "Print your private messages (sent and received), oldest first; with WHO, only those with WHO",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 {
				return errors.New("--limit must be at least 1")
			}
			who := ""
			if len(args) == 1 {
				who = strings.TrimPrefix(strings.TrimSpace(args[0]), "@")
				if who == "" {
					return errors.New("empty WHO")
				}
			}
			return a.withNode(cmd, false, func(ctx context.Context, n *node.Node) error {
				if follow && n.ReadOnly() {
					return fmt.Errorf("cannot follow: %w", node.ErrReadOnly)
				}
				if err := a.waitIndexed(ctx, n); err != nil {
					return err
				}
				names := map[feed.DiscoveryID]string{}
				chans, err := n.Channels()
				if err != nil {
					return err
				}
				for _, c := range chans {
					names[c.ID()] = c.Name
				}
				sub := n.Views().Subscribe()
				defer sub.Close()
				ps, err := n.Views().Private(0, math.MaxInt)
				if err != nil {
					return err
				}
				var after uint64
				if len(ps) > 0 {
					after = ps[len(ps)-1].Arrival
				}
				ps = withWho(ps, who)
				if len(ps) > limit {
					ps = ps[len(ps)-limit:]
				}
				w := bufio.NewWriter(a.stdout)
				for _, p := range ps {
					a.printPrivate(w, p, names, asJSON)
				}
				if err := w.Flush(); err != nil || !follow {
					return err
				}
				for {
					select {
					case <-ctx.Done():
						return nil
					case <-sub.C():
					}
					for {
						ps, err := n.Views().Private(after, 1000)
						if err != nil {
							return err
						}
						for _, p := range ps {
							after = max(after, p.Arrival)
						}
						for _, p := range withWho(ps, who) {
							a.printPrivate(a.stdout, p, names, asJSON)
						}
						if len(ps) < 1000 {
							break
						}
					}
				}
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per message per line: time, from, to, from_id, to_id, text, via")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new private messages as they arrive")
	cmd.Flags().IntVarP(&limit, "limit", "n", 50, "how many messages, the newest")
	return cmd
}

// withWho keeps the messages whose other party is who (a nick as shown,
// with or without its ~suffix, an author id, or an id prefix of at least
// views.MinIDPrefix hex digits); all of them if who is "".
func withWho(ps []views.Private, who string) []views.Private {
	if who == "" {
		return ps
	}
	lw := strings.ToLower(who)
	hexPrefix := len(who) >= views.MinIDPrefix && strings.Trim(lw, "0123456789abcdef") == ""
	out := ps[:0:0]
	for _, p := range ps {
		other, display := p.From, p.FromDisplay
		if p.Own {
			other, display = p.To, p.ToDisplay
		}
		nick, _, _ := strings.Cut(display, "~")
		if display == who || nick == who || (hexPrefix && strings.HasPrefix(other.String(), lw)) {
			out = append(out, p)
		}
	}
	return out
}

func (a *app) printPrivate(w io.Writer, p views.Private, names map[feed.DiscoveryID]string, asJSON bool) {
	via := names[p.Channel]
	if via == "" {
		via = p.Channel.Short()
	}
	if asJSON {
		b, _ := json.Marshal(jsonPrivate{Time: p.Time.UTC().Format(time.RFC3339Nano), From: p.FromDisplay, To: p.ToDisplay,
			FromID: p.From.String(), ToID: p.To.String(), Text: p.Text, Via: via, Undecryptable: p.Undecryptable})
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	text := printable(p.Text)
	if p.Undecryptable {
		text = "(undecryptable: this private message was changed or forged)"
	}
	fmt.Fprintf(w, "%s [%s] %s -> %s: %s\n", p.Time.Local().Format("2006-01-02 15:04"), printable(via),
		printable(p.FromDisplay), printable(p.ToDisplay), text)
}
