#!/usr/bin/env bash
# Mutation check: each mutant below breaks one promise of the code on a
# temporary copy of the tree; the tests of that package must then FAIL.
# Prints "KILLED by TestX" or "SURVIVED" per mutant and exits non-zero if any
# mutant survives, or if a mutant's pattern no longer matches the code
# ("PATTERN NOT FOUND": the code was rewritten; update the pattern so it
# again breaks the same promise).
#
# Usage: scripts/mutants.sh [NAME...]   (default: every mutant)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The copy holds what git tracks plus new, not yet committed files.
(cd "$root" && git ls-files -co --exclude-standard -z | xargs -0 tar cf - 2>/dev/null) | (cd "$work" && tar xf -)

# Each mutant: NAME, FILE, PACKAGE, and a perl substitution run with
# `perl -0777 -pe` over FILE (the whole file is one string). Keep each one
# small, and anchored on the lines it changes.
names=() files=() pkgs=() subs=()
mutant() { names+=("$1"); files+=("$2"); pkgs+=("$3"); subs+=("$4"); }

# (a) Apply: a batch starting at the held length must chain to the held
# head. Mutant: drop that check (the `else if batch[0].Prev != h.Hash`
# branch), so a fork exactly at the head is stored.
mutant apply-head-chain feed/store.go ./feed/ \
  's/\}\s*else if batch\[0\]\.Prev != h\.Hash \{\n[^\n]*\n\s*\}/}/'

# (b) proofMAC: the role byte is in the MAC, so the initiator's proof
# cannot be reflected back as the responder's. Mutant: leave it out.
mutant proof-role replicate/session.go ./replicate/ \
  's/\n\s*m\.Write\(\[\]byte\{role\}\)//'

# (c) commitOnce: a view's rows and its clock commit in one transaction.
# Mutant: write the clocks in a second transaction (txn2), committed after
# the rows' transaction, as a natural refactoring would. Three anchored
# substitutions, all of which must match.
mutant views-one-txn views/indexer.go ./views/ \
  's/(\n(\s*)txn := v\.db\.NewTransaction\(true\)\n\s*defer txn\.Discard\(\)\n)/$1$2txn2 := v.db.NewTransaction(true)\n$2defer txn2.Discard()\n/ &&
   s/writeState\(txn, vw\.Name\(\), viewState\{version: vw\.Version\(\), clock: last\}\)/writeState(txn2, vw.Name(), viewState{version: vw.Version(), clock: last})/ &&
   s/(\n(\s*)err := txn\.Commit\(\)\n)/$1$2if err == nil {\n$2\terr = txn2.Commit()\n$2}\n/'

# (d) the layout cleans a message body before drawing it. Mutant: skip
# cleanLines on the body but still split it at newlines (drawText still
# drops zero-width clusters such as ESC and BEL).
mutant layout-clean ui/layout.go ./ui/ \
  's/ls := cleanLines\(s\.text\)/ls := strings.Split(s.text, "\\n")/'

mutant seal-author seal/seal.go ./seal/ \
  's/(subtle\.ConstantTimeCompare\(m\.From\[:\], author\[:\]\)) != 1/$1 == 2/'

mutant seal-body-key seal/seal.go ./seal/ \
  's/h\.Write\(head\)//'

mutant private-not-in-channel views/messages.go ./views/ \
  's/if it\.Kind == feed\.KindSealed \{\n\s*continue[^\n]*\n\s*\}//'

# (e) a catch-up defers the unread recount of a channel whose moderation
# changed, and marks the channel so the recount happens once caught up.
# Mutant: forget the mark (the counts keep what hides took back).
mutant unread-recount-mark views/unread.go ./views/ \
  's/\n\s*if err := txn\.Set\(chanKey\(tagRecount, ch\), nil\); err != nil \{\n\s*return err\n\s*\}//'

# (f) a mention by an author moderation hides rings no bell. Mutant: check
# only the local block list, as before.
mutant mod-hidden-bell ui/pump.go ./ui/ \
  's/ &&\n\s*!p\.modHidden\(id, &mod, m\) \{/ \&\& mod == nil {/'

# (g) a hidden author's topic is not the channel's. Mutant: moderation's
# author hides do not count for the topic.
mutant topic-hidden views/topics.go ./views/ \
  's/if st\.HidesAuthor\(a\) \{/if false \&\& st.HidesAuthor(a) {/'

want=("$@")
selected() {
  [ ${#want[@]} -eq 0 ] && return 0
  local w
  for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done
  return 1
}

bad=0
cd "$work"
for i in "${!names[@]}"; do
  name=${names[$i]} file=${files[$i]} pkg=${pkgs[$i]} sub=${subs[$i]}
  selected "$name" || continue
  cp "$file" "$file.orig"
  if ! perl -0777 -pe "\$n += ($sub); END { exit(\$n ? 0 : 42) }" "$file.orig" > "$file"; then
    echo "$name ($file): PATTERN NOT FOUND"
    mv "$file.orig" "$file"
    bad=1
    continue
  fi
  if cmp -s "$file" "$file.orig"; then
    echo "$name ($file): PATTERN NOT FOUND (no change)"
    mv "$file.orig" "$file"
    bad=1
    continue
  fi
  log="$work/$name.log"
  if go test -count=1 "$pkg" >"$log" 2>&1; then
    echo "$name ($file): SURVIVED ($pkg passes)"
    bad=1
  elif grep -qE '\[build failed\]|\[setup failed\]|^# ' "$log"; then
    echo "$name ($file): MUTANT DOES NOT BUILD (fix the pattern):"
    sed -n 1,20p "$log"
    bad=1
  else
    killers=$(grep -oE '^--- FAIL: [^ ]+' "$log" | sed 's/^--- FAIL: //' | sort -u | tr '\n' ' ')
    echo "$name ($file): KILLED by ${killers:-(package failed: $(tail -n 3 "$log" | tr '\n' ' '))}"
  fi
  mv "$file.orig" "$file"
done
exit $bad
