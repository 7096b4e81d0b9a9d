#!/usr/bin/env bash
# End-to-end test of the terminal UI, done the way a new user would do it:
# two kchat UIs with two data dirs on loopback (no mDNS, DHT or NAT), driven
# through tmux (send-keys, capture-pane).
#
#   ann: /nick ann, /new lobby (the UI shows the key), /peers (shows her address)
#   ben: starts with --peer ANN_ADDR, /nick ben, /join KEY
#   each types a line; both screens must show both lines.
#
# The final screens are written to docs/ui-session.txt (OUT=... to change).
# KCHAT=/path/to/kchat uses that binary instead of building ./cmd/kchat.
# Exit status 0 only if both screens show both lines.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/docs/ui-session.txt}
TIMEOUT=${TIMEOUT:-60}
WORK=$(mktemp -d)
SOCK="kchat-e2e-$$" # a private tmux server: the user's sessions are not touched
W=110
H=30

tm() { tmux -L "$SOCK" "$@"; }
cleanup() {
	tm kill-server 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${KCHAT:-}" ]; then
	(cd "$ROOT" && go build -o "$WORK/kchat" ./cmd/kchat)
	KCHAT=$WORK/kchat
fi
NET=(--no-mdns --no-nat --no-dht --listen /ip4/127.0.0.1/tcp/0)

screen() { tm capture-pane -p -t "e2e:$1"; }

# wait_for WINDOW REGEX: poll the screen until it matches (grep -E).
wait_for() {
	local win=$1 re=$2 deadline=$((SECONDS + TIMEOUT))
	while ! screen "$win" | grep -Eq -- "$re"; do
		if screen "$win" | grep -q '^KCHAT EXITED'; then
			echo "FAIL: kchat in window $win exited while waiting for /$re/:" >&2
			screen "$win" >&2
			return 1
		fi
		if ((SECONDS > deadline)); then
			echo "FAIL: timed out after ${TIMEOUT}s waiting for /$re/ in window $win:" >&2
			screen "$win" >&2
			return 1
		fi
		sleep 0.2
	done
}

# say WINDOW TEXT: type a line and press Enter.
say() {
	tm send-keys -t "e2e:$1" -l -- "$2"
	tm send-keys -t "e2e:$1" Enter
}

start() { # start WINDOW DATADIR ARGS...
	local win=$1 dir=$2
	shift 2
	local cmd
	cmd=$(printf '%q ' "$KCHAT" --data "$dir" "${NET[@]}" "$@")
	if [ "$win" = ann ]; then
		tm new-session -d -s e2e -x $W -y $H -n "$win" "$cmd; echo KCHAT EXITED \$?; sleep 600"
	else
		tm new-window -t e2e -n "$win" "$cmd; echo KCHAT EXITED \$?; sleep 600"
	fi
	tm resize-window -t "e2e:$win" -x $W -y $H 2>/dev/null || true
}

echo "== ann starts kchat for the first time"
start ann "$WORK/ann"
wait_for ann 'Welcome to kchat'
say ann "/nick ann"
say ann "/new lobby"
wait_for ann 'kchat://[0-9a-f]{64}'
KEY=$(screen ann | grep -Eo 'kchat://[0-9a-f]{64}(\?name=[A-Za-z0-9._-]+)?' | head -n1)
echo "   key: $KEY"
say ann "/peers"
wait_for ann '/ip4/127\.0\.0\.1/tcp/[0-9]+/p2p/[A-Za-z0-9]+'
ADDR=$(screen ann | grep -Eo '/ip4/127\.0\.0\.1/tcp/[0-9]+/p2p/[A-Za-z0-9]+' | head -n1)
echo "   address: $ADDR"

echo "== ben starts kchat with --peer and joins with the key"
start ben "$WORK/ben" --peer "$ADDR"
wait_for ben 'Welcome to kchat'
say ben "/nick ben"
say ben "/join $KEY"
wait_for ben 'Joined #lobby'

echo "== each types a line"
say ann "hello from ann"
say ben "hi ann, ben here"

ok=0
wait_for ann 'hi ann, ben here' && wait_for ann 'hello from ann' &&
	wait_for ben 'hello from ann' && wait_for ben 'hi ann, ben here' && ok=1

echo "== ben replies to ann, ann edits her line"
if [ $ok = 1 ]; then
	ok=0
	say ben "/reply ann nice to meet you"
	say ann "/edit hello from ann, edited"
	wait_for ann '↪ ann: hello from ann, edited nice to meet you' &&
		wait_for ben 'hello from ann, edited \(edited\)' &&
		wait_for ben '↪ ann: hello from ann, edited nice to meet you' && ok=1
fi
# The status bars should show the peer once connected (not required).
TIMEOUT=10 wait_for ann '1 peer' >/dev/null 2>&1 || true
TIMEOUT=10 wait_for ben '1 peer' >/dev/null 2>&1 || true

mkdir -p "$(dirname "$OUT")"
{
	echo "# kchat UI session, captured by scripts/tmux-e2e.sh (tmux capture-pane, ${W}x${H})."
	echo "# Two kchat UIs on loopback: ann created #lobby with /new, ben joined with /join KEY"
	echo "# (started with --peer ANN_ADDR, no mDNS/DHT/NAT); each typed one line; ben replied"
	echo "# to ann with /reply and ann edited her line with /edit."
	echo
	echo "## ann"
	screen ann
	echo
	echo "## ben"
	screen ben
} >"$OUT"
echo "== screens written to $OUT"

if [ $ok = 1 ]; then
	echo "PASS: both screens show both lines, the reply and the edit"
else
	echo "FAIL: the lines did not reach both screens" >&2
	exit 1
fi
