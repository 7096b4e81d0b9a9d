package views

import (
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/kchat-p2p/kchat/feed"
)

func modOn(action feed.ModAction, target *author, reason string) feed.Payload {
	id := target.ID()
	return feed.Payload{Kind: feed.KindMod, Action: action, Target: id[:], Reason: reason}
}

func modMsg(action feed.ModAction, target *author, seq uint64) feed.Payload {
	return feed.Payload{Kind: feed.KindMod, Action: action, Ref: feed.NewRef(target.ID(), seq)}
}

func (e *env) mod(admins ...*author) *ModState {
	e.t.Helper()
	e.wait()
	ids := make([]feed.AuthorID, len(admins))
	for i, a := range admins {
		ids[i] = a.ID()
	}
	s, err := e.v.Moderation(e.d, ids)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// TestModerationBasics: an admin's hide, hide of an author and block count;
// the latest entry per (moderator, target) wins; entries by someone nobody
// follows count for nothing; moderation entries are not messages.
func TestModerationBasics(t *testing.T) {
	e := newEnv(t)
	adm, m, x := newAuthor(t), newAuthor(t), newAuthor(t)
	e.say(m, t0, text("spam 0"), text("spam 1"), text("ok 2"))
	e.say(adm, t0, modMsg(feed.ModHide, m, 0), modMsg(feed.ModHide, m, 1), modMsg(feed.ModUnhide, m, 1),
		modOn(feed.ModBlock, x, "flood"))
	e.say(x, t0, modOn(feed.ModBlock, m, "x is nobody"), modOn(feed.ModHide, adm, ""))
	s := e.mod(adm)
	if _, ok := s.Hides(m.ID(), 0); !ok {
		t.Fatal("message 0 should be hidden")
	}
	if _, ok := s.Hides(m.ID(), 1); ok {
		t.Fatal("message 1 was unhidden by a later entry")
	}
	if b, ok := s.Blocked[x.ID()]; !ok || b.Reason != "flood" || b.Moderator != adm.ID() {
		t.Fatalf("x should be blocked by adm for flood: %+v %v", b, ok)
	}
	if _, ok := s.Blocked[m.ID()]; ok {
		t.Fatal("x's block of m counts though nobody follows x")
	}
	if s.Role(adm.ID()) != RoleAdmin || s.Role(x.ID()) != "" {
		t.Fatalf("roles %v", s.Roles)
	}
	if n, _ := e.v.Count(e.d); n != 3 {
		t.Fatalf("count %d, want 3 (moderation entries are not messages)", n)
	}
	// Without the admin in the key, nothing is moderated.
	if s := e.mod(); len(s.HiddenMessages)+len(s.Blocked) != 0 {
		t.Fatalf("no admin, yet %d hidden %d blocked", len(s.HiddenMessages), len(s.Blocked))
	}
	evs, err := e.v.ModEvents(e.d, 0, 100)
	if err != nil || len(evs) != 6 {
		t.Fatalf("events %d (%v), want 6", len(evs), err)
	}
	if evs[0].Action != feed.ModHide || !evs[0].Message || evs[0].MsgSeq != 0 || evs[5].Target != adm.ID() {
		t.Fatalf("events %+v", evs)
	}
}

// TestModerationFollow: unfollowing the key's admin drops their moderation;
// following someone makes their moderation (and appointments) count.
func TestModerationFollow(t *testing.T) {
	e := newEnv(t)
	adm, m, x := newAuthor(t), newAuthor(t), newAuthor(t)
	e.say(m, t0, text("hello"))
	e.say(adm, t0, modOn(feed.ModBlock, m, ""))
	e.say(x, t0, modOn(feed.ModHide, adm, ""))
	if _, ok := e.mod(adm).Blocked[m.ID()]; !ok {
		t.Fatal("m should be blocked")
	}
	g := e.v.ModGeneration()
	if err := e.v.SetFollow(e.d, adm.ID(), false); err != nil {
		t.Fatal(err)
	}
	if e.v.ModGeneration() == g {
		t.Fatal("a follow change must change the moderation generation")
	}
	s := e.mod(adm)
	if _, ok := s.Blocked[m.ID()]; ok || s.Role(adm.ID()) != "" {
		t.Fatalf("unfollowed admin still counts: %v %v", s.Blocked, s.Roles)
	}
	if err := e.v.SetFollow(e.d, x.ID(), true); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.mod(adm).HiddenAuthors[adm.ID()]; !ok {
		t.Fatal("x is followed: x's hide of adm (no longer a role holder) should count")
	}
	if err := e.v.ClearFollow(e.d, adm.ID()); err != nil {
		t.Fatal(err)
	}
	s = e.mod(adm)
	if _, ok := s.HiddenAuthors[adm.ID()]; ok {
		t.Fatal("adm is an admin again: actions against a role holder do not count")
	}
	if _, ok := s.Blocked[m.ID()]; !ok {
		t.Fatal("adm followed again by default: m should be blocked")
	}
}

// TestModerationAppointments: an admin appoints a moderator, whose actions
// then count; a removal voids them whatever order the entries arrive in.
func TestModerationAppointments(t *testing.T) {
	for _, removeFirst := range []bool{false, true} {
		e := newEnv(t)
		adm, mod, m := newAuthor(t), newAuthor(t), newAuthor(t)
		e.say(m, t0, text("spam"))
		e.say(adm, t0, modOn(feed.ModAddMod, mod, "helps"))
		s := e.mod(adm)
		if s.Role(mod.ID()) != RoleMod {
			t.Fatalf("mod's role %q", s.Role(mod.ID()))
		}
		// The race: adm removes mod while mod hides m's message. The
		// expected outcome is the same in both arrival orders: mod's
		// action counts for nothing once mod's role is gone.
		rm := adm.entries(e.d, t0, modOn(feed.ModRemoveMod, mod, "rogue"))
		hide := mod.entries(e.d, t0, modMsg(feed.ModHide, m, 0), modOn(feed.ModAddMod, m, ""))
		if removeFirst {
			e.apply(adm, rm)
			e.apply(mod, hide)
		} else {
			e.apply(mod, hide)
			if _, ok := e.mod(adm).Hides(m.ID(), 0); !ok {
				t.Fatal("before the removal, the mod's hide counts")
			}
			e.apply(adm, rm)
		}
		s = e.mod(adm)
		if _, ok := s.Hides(m.ID(), 0); ok {
			t.Fatalf("removeFirst=%v: a removed moderator's hide still counts", removeFirst)
		}
		if s.Role(mod.ID()) != "" || s.Role(m.ID()) != "" {
			t.Fatalf("roles after removal %v (a mod cannot appoint either)", s.Roles)
		}
	}
}

// TestModerationAdminChain: an admin cannot remove the admin who appointed
// them, nor an admin the key names; the root admin can remove anyone it
// appointed, and with them whomever only they appointed.
func TestModerationAdminChain(t *testing.T) {
	e := newEnv(t)
	root, b, c, d := newAuthor(t), newAuthor(t), newAuthor(t), newAuthor(t)
	e.say(root, t0, modOn(feed.ModAddAdmin, b, ""))
	e.say(b, t0, modOn(feed.ModAddAdmin, c, ""), modOn(feed.ModAddMod, d, ""))
	e.say(c, t0, modOn(feed.ModRemoveAdmin, b, "coup"), modOn(feed.ModRemoveAdmin, root, "coup"),
		modOn(feed.ModRemoveMod, d, ""))
	s := e.mod(root)
	// Expected: root stays admin (the key names it); b stays admin (c was
	// appointed by b: a removal counts only from an admin closer to the
	// roots than the one removed); c is admin; d stays mod (d was decided
	// in c's own layer, by root's and b's entries only).
	for a, want := range map[*author]string{root: RoleAdmin, b: RoleAdmin, c: RoleAdmin, d: RoleMod} {
		if got := s.Role(a.ID()); got != want {
			t.Fatalf("role %q, want %q (roles %v)", got, want, s.Roles)
		}
	}
	// root removes b: b goes, and c and d, whom only b appointed, with them.
	e.say(root, t0, modOn(feed.ModRemoveAdmin, b, ""))
	s = e.mod(root)
	if len(s.Roles) != 1 || s.Role(root.ID()) != RoleAdmin {
		t.Fatalf("roles %v, want root only", s.Roles)
	}
}

// TestModerationNotAgainstSelf: a moderator's block of the local user or of
// a role holder counts for nothing.
func TestModerationNotAgainstSelf(t *testing.T) {
	e := newEnv(t)
	adm, mod := newAuthor(t), newAuthor(t)
	e.say(adm, t0, modOn(feed.ModAddMod, mod, ""))
	e.say(mod, t0, modOn(feed.ModBlock, e.me, ""), modOn(feed.ModBlock, adm, ""))
	s := e.mod(adm)
	if len(s.Blocked) != 0 {
		t.Fatalf("blocked %v", s.Blocked)
	}
}

// TestModerationRebuild: the view survives a version bump (rebuild) with
// the same outcome, and follows (local state) survive it too.
func TestModerationRebuild(t *testing.T) {
	e := newEnv(t)
	adm, m := newAuthor(t), newAuthor(t)
	e.say(adm, t0, modOn(feed.ModBlock, m, "r"))
	if err := e.v.SetFollow(e.d, m.ID(), false); err != nil {
		t.Fatal(err)
	}
	e.wait()
	e.close()
	e.openStore()
	// Forget the view's state: the next open rebuilds it.
	if err := e.db.Update(func(txn *badger.Txn) error { return txn.Delete(stateKey("moderation")) }); err != nil {
		t.Fatal(err)
	}
	e.openViews()
	s := e.mod(adm)
	if b, ok := s.Blocked[m.ID()]; !ok || b.Reason != "r" {
		t.Fatal("block lost in the rebuild")
	}
	if f, _ := e.v.Follows(e.d); f[m.ID()] {
		t.Fatal("follow setting changed")
	} else if _, set := f[m.ID()]; !set {
		t.Fatal("follow setting lost in the rebuild")
	}
}

// TestModerationInvalidIgnored: moderation entries that break §3.1 (an
// unknown action, a block of a message, text) are stored and do nothing;
// the indexer goes on.
func TestModerationInvalidIgnored(t *testing.T) {
	e := newEnv(t)
	adm, m := newAuthor(t), newAuthor(t)
	id := m.ID()
	target := append([]byte{0x06, 0x58, 0x20}, id[:]...)
	for _, raw := range [][]byte{
		append([]byte{0xa3, 0x01, 0x07, 0x04, 0x09}, target...),                                                  // action 9
		append([]byte{0xa4, 0x01, 0x07, 0x02, 0x61, 0x78, 0x04, 0x03}, target...),                                // text
		append(append([]byte{0xa3, 0x01, 0x07, 0x03, 0xa2, 0x01, 0x58, 0x20}, id[:]...), 0x02, 0x00, 0x04, 0x03), // block of a message
	} {
		e.apply(adm, []feed.Entry{adm.entryRaw(e.d, t0, raw)})
	}
	e.say(m, t0, text("still here"))
	s := e.mod(adm)
	if len(s.Blocked)+len(s.HiddenAuthors)+len(s.HiddenMessages)+len(s.Current) != 0 {
		t.Fatalf("invalid entries had an effect: %+v", s)
	}
	if n, _ := e.v.Count(e.d); n != 1 {
		t.Fatalf("count %d, want 1", n)
	}
	if evs, _ := e.v.ModEvents(e.d, 0, 10); len(evs) != 0 {
		t.Fatalf("invalid entries logged: %+v", evs)
	}
}

// TestTopicOfHiddenAuthor: the topic set last by an author moderation
// hides (or blocks) in the channel, or by an author blocked locally, is not
// the channel's topic: the latest of anyone else's is; an unhide restores
// it.
func TestTopicOfHiddenAuthor(t *testing.T) {
	blocked := map[feed.AuthorID]bool{}
	adm := newAuthor(t)
	e := newEnvAdmins(t, []*author{adm}, WithBlocked(func() map[feed.AuthorID]bool { return blocked }))
	bob, carol, mallory := newAuthor(t), newAuthor(t), newAuthor(t)
	e.say(bob, t0, topic("bob's old topic"))
	e.say(carol, t0.Add(time.Second), topic("carol's topic"))
	e.say(bob, t0.Add(2*time.Second), topic("bob's topic"))
	e.say(mallory, t0.Add(3*time.Second), topic("spam topic"))
	got := func() string {
		t.Helper()
		e.wait()
		s, err := e.v.Topic(e.d)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := got(); s != "spam topic" {
		t.Fatalf("topic %q, want the latest", s)
	}
	e.say(adm, t0.Add(4*time.Second), modOn(feed.ModHide, mallory, "spam"))
	if s := got(); s != "bob's topic" {
		t.Fatalf("topic %q after hiding mallory, want bob's latest", s)
	}
	blocked[bob.ID()] = true
	if s := got(); s != "carol's topic" {
		t.Fatalf("topic %q with bob blocked too, want carol's", s)
	}
	delete(blocked, bob.ID())
	e.say(adm, t0.Add(5*time.Second), modOn(feed.ModUnhide, mallory, ""))
	if s := got(); s != "spam topic" {
		t.Fatalf("topic %q after the unhide, want mallory's again", s)
	}
}
