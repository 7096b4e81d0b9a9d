#!/usr/bin/env bash
# End-to-end test of the terminal UI, done the way a new user would do it:
# two kchat UIs with two data dirs on loopback (no mDNS, DHT or NAT), driven
# through tmux (send-keys, capture-pane).
#
#   ann: /nick ann, /new lobby (the UI shows the key), /peers (shows her address)
#   ben: starts with --peer ANN_ADDR, /nick ben, /join KEY
#   each types a line; both screens must show both lines.
#   A part through the control socket (kchat --data ANN part) leaves ann's
#   sidebar within 2 s. Ctrl+C with a draft asks and keeps it; ben quits,
#   restarts on a new port with no --peer: the nodes find each other again
#   (remembered peers) within 20 s both ways, and ben's draft is back.
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
	# The UIs get SIGHUP and shut down, writing their stores and state files
	# as they go: wait for them to exit before removing their data dirs (an
	# rm racing a shutdown fails with "Directory not empty").
	local deadline=$((SECONDS + 30))
	while pgrep -f -- "--data $WORK/" >/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
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

# wait_gone WINDOW REGEX: poll the screen until it no longer matches.
wait_gone() {
	local win=$1 re=$2 deadline=$((SECONDS + TIMEOUT))
	while screen "$win" | grep -Eq -- "$re"; do
		if ((SECONDS > deadline)); then
			echo "FAIL: /$re/ still in window $win after ${TIMEOUT}s:" >&2
			screen "$win" >&2
			return 1
		fi
		sleep 0.1
	done
}

# wait_exited WINDOW: poll until kchat in WINDOW has exited with status 0.
wait_exited() {
	local deadline=$((SECONDS + TIMEOUT))
	while ! screen "$1" | grep -q '^KCHAT EXITED 0'; do
		if ((SECONDS > deadline)); then
			echo "FAIL: kchat in window $1 did not quit:" >&2
			screen "$1" >&2
			return 1
		fi
		sleep 0.1
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
echo "== a channel joined and left through the control socket follows in ann's UI"
if [ $ok = 1 ]; then
	ok=0
	"$KCHAT" --data "$WORK/ann" new zzz >/dev/null
	wait_for ann '^ *[0-9] zzz ' &&
		"$KCHAT" --data "$WORK/ann" part zzz &&
		TIMEOUT=2 wait_gone ann '^ *[0-9] zzz ' && ok=1
fi

echo "== Ctrl+C with a draft asks and keeps it; ben restarts on a new port"
if [ $ok = 1 ]; then
	ok=0
	tm send-keys -t "e2e:ben" -l -- "my unsent draft"
	tm send-keys -t "e2e:ben" C-c
	wait_for ben 'Ctrl\+C again quits' && wait_for ben 'my unsent draft' && ok=1
fi
if [ $ok = 1 ]; then
	ok=0
	tm send-keys -t "e2e:ben" C-c
	wait_exited ben &&
		start ben2 "$WORK/ben" && # no --peer; tcp/0: another port
		wait_for ben2 'my unsent draft' &&
		TIMEOUT=20 wait_for ben2 '1 peer' && TIMEOUT=20 wait_for ann '1 peer' && ok=1
fi
if [ $ok = 1 ]; then
	ok=0
	tm send-keys -t "e2e:ben2" Enter # sends the draft
	say ann "welcome back ben"
	TIMEOUT=20 wait_for ann 'my unsent draft' && TIMEOUT=20 wait_for ben2 'welcome back ben' && ok=1
fi

# The status bars should show the peer once connected (not required).
TIMEOUT=10 wait_for ann '1 peer' >/dev/null 2>&1 || true
TIMEOUT=10 wait_for ben '1 peer' >/dev/null 2>&1 || true

mkdir -p "$(dirname "$OUT")"
{
	echo "# kchat UI session, captured by scripts/tmux-e2e.sh (tmux capture-pane, ${W}x${H})."
	echo "# Two kchat UIs on loopback: ann created #lobby with /new, ben joined with /join KEY"
	echo "# (started with --peer ANN_ADDR, no mDNS/DHT/NAT); each typed one line; ben replied"
	echo "# to ann with /reply and ann edited her line with /edit. Then ben pressed Ctrl+C with a"
	echo "# draft typed (asked, kept), quit, and came back on another port with no --peer: the"
	echo "# nodes found each other again and ben sent the draft kept from before."
	echo
	echo "## ann"
	screen ann
	echo
	echo "## ben (restarted on a new port, no --peer)"
	screen ben2
} >"$OUT"
echo "== screens written to $OUT"

if [ $ok = 1 ]; then
	echo "PASS: both screens show both lines, the reply and the edit; the part, the draft and the restart"
else
	echo "FAIL: the lines did not reach both screens" >&2
	exit 1
fi
