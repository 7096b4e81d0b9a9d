#!/usr/bin/env bash
# Scale benchmark for issue 13: N real `kchat seed` processes on 127.0.0.1 in one
# channel, joined through a private DHT, measured as a user would see them.
#
#   scripts/scale-bench.sh            # N = 8 16 32 48
#   scripts/scale-bench.sh 8 16       # any list of N
#
# For each N: seed 0 starts with `--bootstrap none` (it is the private DHT's first
# node), the others with `--bootstrap <seed 0's multiaddr>`; every process gets
# --no-mdns --no-nat --listen /ip4/127.0.0.1/tcp/0, so nothing leaves loopback and
# the public bootstrap list is never used. Seed 0 creates the channel, the others
# join it by key before their seeds start. Once every node has at least
# min(N-1, MESH_MIN) sync sessions (`kchat peers --json`, rows with session: true)
# or MESH_WAIT seconds passed, it measures, and prints one markdown table row:
#
#   sessions/node   mean and max of the rows with session: true per node (and the
#                   max a node opened itself, outbound: true), before the messages
#   CPU/msg/node    utime+stime of every seed (/proc/PID/stat) over M messages sent
#                   GAP seconds apart by rotating senders, minus the same seeds' idle
#                   CPU over as long (the mean rate of two idle spans of about the
#                   same length, just before and just after), / M / N; "raw" is
#                   without the idle correction
#   latency p50/max for each of those M messages, from just before `kchat send` until
#                   the last node printed it on `kchat read --follow --json` (one
#                   follower per node through its control socket, lines time-stamped
#                   as they arrive: what a user of that node would see)
#   burst           every node sends BURST messages at once (`send --stdin`): time
#                   until every node printed all N*BURST; with the CPU per message per
#                   node of that burst (no idle correction)
#   RSS/node        mean resident memory of the seeds after the burst
#   at the end      sessions/node mean and max again after the burst (a minute or
#                   more after the mesh formed: first sessions beyond a node's
#                   inbound bound are shed after 30 s)
#
# A node missing a message after TIMEOUT seconds is reported in the row ("lost").
# Environment: M (20), GAP (0.5 s), BURST (20), MESH_MIN (4, node.MeshOut), MESH_WAIT (180 s),
# TIMEOUT (120 s per message; the burst gets 5x), KCHAT (a built binary; default:
# go build -o $TMP/kchat ./cmd/kchat), KEEP=1 keeps the data dirs and logs,
# PROFILE=1 (with KEEP=1) has seeds 1..N-1 write CPU profiles of their whole run to
# nI/cpu.prof, PROFILE=burst of the burst only (from just before the sends until
# every node holds every message), PROFILE=idle of the first idle span only.
# It is a benchmark, not a test: it is not part of .ci/run.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d /tmp/kchat-scale.XXXXXX)
M=${M:-20}
GAP=${GAP:-0.5}
BURST=${BURST:-20}
MESH_MIN=${MESH_MIN:-4}
MESH_WAIT=${MESH_WAIT:-180}
TIMEOUT=${TIMEOUT:-120}
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(8 16 32 48)
TCK=$(getconf CLK_TCK)

PIDS=()  # every seed and follower started, killed by cleanup
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	PIDS=()
}
finish() {
	cleanup
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap finish EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date -u +%T)] $*" >&2; }
now() { date +%s.%N; }

if [ -n "${KCHAT:-}" ]; then
	BIN=$KCHAT
else
	BIN=$TMP/kchat
	log "building kchat"
	(cd "$ROOT" && go build -o "$BIN" ./cmd/kchat) || { echo "build failed" >&2; exit 1; }
fi
NET=(--no-mdns --no-nat --listen /ip4/127.0.0.1/tcp/0)

# cpu PIDS...: total utime+stime in clock ticks (fields 14 and 15 of /proc/PID/stat;
# the command name, field 2, is cut off first since it may hold spaces).
cpu() {
	local p t=0 rest
	for p in "$@"; do
		rest=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
		set -- $rest
		t=$((t + ${12} + ${13})) # the loop's list was expanded before this set --
	done
	echo "$t"
}

# idle SECONDS PIDS...: CPU ticks per second of PIDS while nothing is sent.
idle() {
	local len=$1 c0 c1 t0 t1
	shift
	c0=$(cpu "$@")
	t0=$(now)
	sleep "$len"
	c1=$(cpu "$@")
	t1=$(now)
	echo "scale=6; ($c1 - $c0) / ($t1 - $t0)" | bc
}

# rss_mb PIDS...: mean VmRSS in MB.
rss_mb() {
	local p kb=0
	for p in "$@"; do
		kb=$((kb + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
	done
	echo $((kb / 1024 / $#))
}

# holders TEXT: how many follow logs hold a message with exactly this text.
holders() {
	grep -l -F "\"text\":\"$1\"" "$TMP"/n*/follow.log 2>/dev/null | wc -l
}

# arrived_last TEXT: the latest arrival time stamp of TEXT over all follow logs.
arrived_last() {
	grep -h -F "\"text\":\"$1\"" "$TMP"/n*/follow.log | awk '$1 > m {m = $1} END {printf "%.3f", m}'
}

# wait_all TEXT N LIMIT: wait until N follow logs hold TEXT; 1 on timeout.
wait_all() {
	local end
	end=$(echo "$(now) + $3" | bc)
	while [ "$(holders "$1")" -lt "$2" ]; do
		if (($(echo "$(now) > $end" | bc))); then return 1; fi
		sleep 0.05
	done
}

# sessions I: "total outbound" session rows of node I.
sessions() {
	local r
	r=$("$BIN" --data "$TMP/n$1" peers bench --json 2>/dev/null |
		jq -rs '[.[] | select(.session)] | "\(length) \([.[] | select(.outbound)] | length)"')
	echo "${r:-0 0}"
}

bench() {
	local n=$1 i key addr pids=() fpids=() want mins
	rm -rf "$TMP"/n*
	log "N=$n: creating $n data dirs"
	for ((i = 0; i < n; i++)); do mkdir -p "$TMP/n$i"; done
	key=$("$BIN" --data "$TMP/n0" new bench) || { echo "new failed" >&2; return 1; }
	for ((i = 1; i < n; i++)); do
		"$BIN" --data "$TMP/n$i" join "$key" >/dev/null || { echo "join failed" >&2; return 1; }
	done

	"$BIN" --data "$TMP/n0" "${NET[@]}" --bootstrap none seed >"$TMP/n0/seed.out" 2>&1 &
	pids+=($!)
	PIDS+=($!)
	for ((i = 0; i < 100; i++)); do
		addr=$(grep -m1 '^/ip4/127.0.0.1/tcp/' "$TMP/n0/seed.out" 2>/dev/null)
		[ -n "$addr" ] && break
		sleep 0.1
	done
	[ -n "$addr" ] || { echo "seed 0 printed no address:" >&2; cat "$TMP/n0/seed.out" >&2; return 1; }
	log "N=$n: bootstrap seed at $addr; starting $((n - 1)) more"
	for ((i = 1; i < n; i++)); do
		KCHAT_CPUPROFILE=$([ "${PROFILE:-}" = 1 ] && echo "$TMP/n$i/cpu.prof") \
			KCHAT_CPUPROFILE_USR1=$([ "${PROFILE:-}" = burst ] || [ "${PROFILE:-}" = idle ] && echo "$TMP/n$i/cpu.prof") "$BIN" --data "$TMP/n$i" "${NET[@]}" --bootstrap "$addr" seed >"$TMP/n$i/seed.out" 2>&1 &
		pids+=($!)
		PIDS+=($!)
	done
	for ((i = 0; i < n; i++)); do # each seed is up once it printed "replicating"
		until grep -q '^replicating' "$TMP/n$i/seed.out" 2>/dev/null; do
			kill -0 "${pids[i]}" 2>/dev/null || { echo "seed $i died:" >&2; cat "$TMP/n$i/seed.out" >&2; return 1; }
			sleep 0.1
		done
	done

	# The mesh: every node with at least min(N-1, MESH_MIN) sessions.
	want=$((n - 1 < MESH_MIN ? n - 1 : MESH_MIN))
	local start end formed=no s tot out smin
	start=$(now)
	end=$(echo "$start + $MESH_WAIT" | bc)
	while :; do
		smin=999
		for ((i = 0; i < n; i++)); do
			s=$(sessions "$i")
			tot=${s% *}
			((tot < smin)) && smin=$tot
			((tot < want)) && break
		done
		if ((smin >= want)); then formed=yes; break; fi
		(($(echo "$(now) > $end" | bc))) && break
		sleep 1
	done
	mins=$(printf '%.1f' "$(echo "$(now) - $start" | bc)")
	log "N=$n: mesh formed: $formed after ${mins}s (each node >= $want sessions)"
	sleep 3 # let the first syncs settle
	local stot=0 smax=0 omax=0 per=()
	for ((i = 0; i < n; i++)); do
		s=$(sessions "$i")
		tot=${s% *}
		out=${s#* }
		per+=("$tot")
		stot=$((stot + tot))
		((tot > smax)) && smax=$tot
		((out > omax)) && omax=$out
	done
	local smean
	smean=$(printf '%.1f' "$(echo "scale=2; $stot / $n" | bc)")
	log "N=$n: sessions per node (node 0 is the bootstrap seed): ${per[*]}"

	# One follower per node, every line stamped with its arrival time.
	for ((i = 0; i < n; i++)); do
		"$BIN" --data "$TMP/n$i" read bench --follow --json --limit 1 \
			> >(perl -MTime::HiRes=time -ne '$|=1; printf "%.3f %s", time, $_' >"$TMP/n$i/follow.log") 2>/dev/null &
		PIDS+=($!)
		fpids+=($!)
	done
	sleep 2

	# Idle CPU over as long as the message phase will take (about M * GAP plus latency).
	local c0 c1 t0 t1 idle_rate idle_len
	idle_len=$(echo "$M * $GAP + 5" | bc)
	[ "${PROFILE:-}" = idle ] && kill -USR1 "${pids[@]:1}"
	idle_rate=$(idle "$idle_len" "${pids[@]}")
	[ "${PROFILE:-}" = idle ] && kill -USR1 "${pids[@]:1}"

	# M messages, one at a time, from rotating nodes.
	local lats=() lost=0 ts tl text
	c0=$(cpu "${pids[@]}")
	t0=$(now)
	for ((i = 0; i < M; i++)); do
		text="lat-$n-$i"
		ts=$(now)
		"$BIN" --data "$TMP/n$((i % n))" send bench "$text" >/dev/null || log "send $text failed"
		if wait_all "$text" "$n" "$TIMEOUT"; then
			tl=$(arrived_last "$text")
			lats+=("$(echo "$tl - $ts" | bc)")
		else
			lost=$((lost + 1))
			log "N=$n: $text reached $(holders "$text") of $n nodes in ${TIMEOUT}s"
		fi
		sleep "$GAP"
	done
	c1=$(cpu "${pids[@]}")
	t1=$(now)
	# Idle again after, as long: the correction is the mean of both idle rates.
	idle_rate=$(echo "scale=6; ($idle_rate + $(idle "$idle_len" "${pids[@]}")) / 2" | bc)
	local cpu_ms cpu_raw p50 pmax
	cpu_ms=$(printf '%.2f' "$(echo "scale=4; (($c1 - $c0) - $idle_rate * ($t1 - $t0)) * 1000 / $TCK / $M / $n" | bc)")
	cpu_raw=$(printf '%.2f' "$(echo "scale=4; ($c1 - $c0) * 1000 / $TCK / $M / $n" | bc)")
	if [ ${#lats[@]} -gt 0 ]; then
		read -r p50 pmax < <(printf '%s\n' "${lats[@]}" | sort -g |
			awk '{a[NR] = $1} END {printf "%.2f %.2f", a[int((NR + 1) / 2)], a[NR]}')
	else
		p50=- pmax=-
	fi
	log "N=$n: $M messages: CPU/msg/node ${cpu_ms} ms (raw ${cpu_raw} ms, idle $(printf '%.1f' "$(echo "$idle_rate * 1000 / $TCK / $n" | bc -l)") ms/s/node), latency p50 ${p50}s max ${pmax}s, lost $lost"

	# The burst: every node sends BURST messages at once.
	local sends=() got total burst bcpu f0 f1
	total=$((n * BURST))
	[ "${PROFILE:-}" = burst ] && kill -USR1 "${pids[@]:1}"
	c0=$(cpu "${pids[@]}")
	f0=$(cpu "${fpids[@]}")
	t0=$(now)
	for ((i = 0; i < n; i++)); do
		seq 1 "$BURST" | sed "s/^/burst-$n-$i-/" | "$BIN" --data "$TMP/n$i" send bench --stdin >/dev/null &
		sends+=($!)
	done
	for i in "${sends[@]}"; do wait "$i" || log "a burst send failed"; done
	end=$(echo "$t0 + 5 * $TIMEOUT" | bc)
	# One grep for all nodes per look, 4 looks a second: the arrival times
	# come from the follow logs' stamps, so looking less often changes
	# nothing measured, and a grep per node 10 times a second took CPU from
	# the seeds under test.
	while :; do
		got=$(grep -c -F "\"text\":\"burst-$n-" "$TMP"/n*/follow.log | awk -F: -v t="$total" '$NF >= t {g++} END {print g + 0}')
		((got == n)) && break
		(($(echo "$(now) > $end" | bc))) && break
		sleep 0.25
	done
	c1=$(cpu "${pids[@]}")
	f1=$(cpu "${fpids[@]}")
	[ "${PROFILE:-}" = burst ] && kill -USR1 "${pids[@]:1}"
	if ((got == n)); then
		t1=$(grep -h "\"text\":\"burst-$n-" "$TMP"/n*/follow.log | awk '$1 > m {m = $1} END {printf "%.3f", m}')
		burst=$(printf '%.2f s' "$(echo "$t1 - $t0" | bc)")
	else
		burst="> $((5 * TIMEOUT)) s ($got of $n nodes hold all)"
	fi
	bcpu=$(printf '%.2f' "$(echo "scale=4; ($c1 - $c0) * 1000 / $TCK / $total / $n" | bc)")
	local rss
	rss=$(rss_mb "${pids[@]}")
	log "N=$n: burst $burst, CPU/msg/node ${bcpu} ms, RSS/node ${rss} MB; seeds $(((c1 - c0) * 1000 / TCK)) CPU-ms, followers $(((f1 - f0) * 1000 / TCK)) CPU-ms"

	# Sessions again, a minute or more after the mesh formed (nodes shed
	# first sessions beyond their inbound bound after 30 s).
	local atot=0 amax=0 aper=()
	for ((i = 0; i < n; i++)); do
		s=$(sessions "$i")
		tot=${s% *}
		aper+=("$tot")
		atot=$((atot + tot))
		((tot > amax)) && amax=$tot
	done
	local amean
	amean=$(printf '%.1f' "$(echo "scale=2; $atot / $n" | bc)")
	log "N=$n: sessions per node at the end: ${aper[*]}"

	printf '| %d | %s / %d (opened <= %d) | %s / %d | %s ms (raw %s) | %s s / %s s | %d | %s | %s ms | %d MB |\n' \
		"$n" "$smean" "$smax" "$omax" "$amean" "$amax" "$cpu_ms" "$cpu_raw" "$p50" "$pmax" "$lost" "$burst" "$bcpu" "$rss" >>"$TMP/table"
	cleanup
}

echo "| N | sessions/node mean / max | at the end | CPU/msg/node | latency p50 / max | lost | burst (N x $BURST) | burst CPU/msg/node | RSS/node |" >"$TMP/table"
echo "|---|---|---|---|---|---|---|---|---|" >>"$TMP/table"
for n in "${SIZES[@]}"; do
	t=$(now)
	bench "$n" || log "N=$n failed"
	log "N=$n took $(echo "$(now) - $t" | bc | cut -d. -f1)s"
done
echo
echo "kchat scale bench, $(nproc) cores, ${KCHAT:-kchat built from $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)}, M=$M GAP=${GAP}s BURST=$BURST"
cat "$TMP/table"
