#!/usr/bin/env bash
# End-to-end discovery try for issue 5, in network namespaces (run as root; CI).
#
#   1. LAN:   two namespaces on one bridge find each other by mDNS, no flags naming peers.
#   2. DHT:   two namespaces joined only through a namespace running a seed (DHT server,
#             relay, and the router between them) find each other through the DHT, mDNS off.
#   3. NAT:   a namespace behind a NAT (iptables masquerade in a router namespace) is
#             reached through the seed's circuit relay, and hole punching (DCUtR) is attempted.
# Each step prints how long discovery took.
#
# Isolation: every interface is created inside a test namespace (veth pairs are made with
# `ip -n NS link add ... peer ... netns NS2`), so the root namespace and the machine's real
# interfaces get nothing, and no namespace has a route to them. Every node gets an explicit
# bootstrap list (or none): the public bootstrap list is never used.
#
# Step 3 needs addresses that libp2p considers public on the "internet" segment between the
# NAT router, the seed and the public peer: AutoNAT, auto-relay and hole punching ignore
# private (RFC 1918) and documentation ranges. That segment exists only between test
# namespaces; set KCHAT_NETNS_INTERNET (first three octets, default 11.201.0) to change it.
#
# Drivers (KCHAT_NETNS_DRIVER), each runs the three steps:
#   kchat  the kchat binary, per the CLI contract in DESIGN.md (KCHAT=path, or built from
#          ./cmd/kchat): `kchat seed`, `kchat sync CHANNEL --timeout D`, `kchat read`, as a
#          user would. It cannot tell a relayed from a direct connection.
#   probe  discovery/internal/probe: the discovery package alone (no replication); it
#          checks the relay path and the hole punching attempt of step 3.
#   auto   (default) both: kchat when its `seed` command accepts --bootstrap, then probe.
#
# Exit status: 0 all steps passed or the whole script was skipped (prints SKIP), 1 a step failed.
# In CI (CI=true) a missing prerequisite is a failure, not a skip: CI must
# not pass without having run the checks.
set -uo pipefail

in_ci() { case "${CI:-}" in "" | false | 0) return 1 ;; *) return 0 ;; esac; }
skip() {
	if in_ci; then echo "FAIL (CI=$CI, a prerequisite is missing): $*"; exit 1; fi
	echo "SKIP: $*"
	exit 0
}
say() { echo "== $*"; }

[ "$(id -u)" = 0 ] || skip "needs root (ip netns, veth pairs, iptables)"
command -v ip >/dev/null || skip "ip (iproute2) is not installed"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/kchat-netns.XXXXXX)
RUN=$$
INET=${KCHAT_NETNS_INTERNET:-11.201.0}
NAMESPACES=()
PIDS=()

# teardown: stop our processes (by pid) and delete our namespaces.
teardown() {
	local p n deadline=$((SECONDS + 10))
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do
		while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
		kill -0 "$p" 2>/dev/null && { echo "pid $p ignored SIGTERM for 10 s: killed"; kill -KILL "$p" 2>/dev/null; }
		wait "$p" 2>/dev/null
	done
	for n in "${NAMESPACES[@]}"; do ip netns del "$n" 2>/dev/null; done
	PIDS=()
	NAMESPACES=()
}
cleanup() {
	teardown
	if [ -z "${KCHAT_NETNS_KEEP:-}" ]; then rm -rf "$WORK"; else echo "work dir kept: $WORK"; fi
}
trap cleanup EXIT

ns() { echo "kcd$RUN-$1"; }
mkns() {
	ip netns add "$(ns "$1")" || return 1
	NAMESPACES+=("$(ns "$1")")
	ip -n "$(ns "$1")" link set lo up
}
# link NS_A IF_A NS_B IF_B: a veth pair between two namespaces, both ends up.
link() {
	ip -n "$(ns "$1")" link add "$2" type veth peer name "$4" netns "$(ns "$3")" &&
		ip -n "$(ns "$1")" link set "$2" up && ip -n "$(ns "$3")" link set "$4" up
}
addr() { ip -n "$(ns "$1")" addr add "$3" dev "$2"; }
route() { ip -n "$(ns "$1")" route add default via "$2"; }
bridge() { ip -n "$(ns "$1")" link add br0 type bridge && ip -n "$(ns "$1")" link set br0 up; }
enslave() { ip -n "$(ns "$1")" link set "$2" master br0; }
inns() { local n=$1; shift; ip netns exec "$(ns "$n")" "$@"; }
forwarding() { inns "$1" sysctl -qw net.ipv4.ip_forward=1; }

# Can namespaces be made here at all?
if ! ip netns add "kcd$RUN-probe" 2>/dev/null; then
	skip "cannot create network namespaces here (ip netns add failed)"
fi
ip netns del "kcd$RUN-probe"

# ---- drivers ------------------------------------------------------------------------------
MODE=${KCHAT_NETNS_DRIVER:-auto}
KCHAT=${KCHAT:-}
PROBE=
build() { (cd "$ROOT" && go build -o "$WORK/$1" "$2") >"$WORK/build-$1.log" 2>&1; }
DRIVERS=()
if [ "$MODE" != probe ]; then
	if [ -z "$KCHAT" ] && command -v go >/dev/null && build kchat ./cmd/kchat; then KCHAT=$WORK/kchat; fi
	if [ -n "$KCHAT" ] && "$KCHAT" seed --help 2>&1 | grep -q -- --bootstrap; then
		DRIVERS+=(kchat)
	elif [ "$MODE" = kchat ]; then
		echo "FAIL: no kchat binary with a wired seed command (set KCHAT, or build ./cmd/kchat)"
		exit 1
	else
		in_ci && { echo "FAIL (CI): kchat binary missing or its seed command is not wired"; exit 1; }
		echo "note: kchat binary missing or its seed command is not wired yet: the kchat pass is skipped"
	fi
fi
if [ "$MODE" != kchat ]; then
	# The probe pass shows what the CLI cannot: the relay path and hole punching.
	if command -v go >/dev/null && build probe ./discovery/internal/probe; then
		PROBE=$WORK/probe
		DRIVERS+=(probe)
	elif [ "$MODE" = probe ]; then
		skip "the probe driver needs the Go toolchain to build discovery/internal/probe"
	fi
fi
[ ${#DRIVERS[@]} -gt 0 ] || skip "neither a wired kchat binary nor the Go toolchain (for the probe) is available"

FAILED=0
fail() { echo "FAIL: $*"; FAILED=1; }

# bg NS NAME CMD...: start CMD in namespace NS in the background, output in $WORK/NAME.out
# (ip netns exec execs the command, so $! is the command's own pid.)
bg() {
	local n=$1 name=$2; shift 2
	ip netns exec "$(ns "$n")" "$@" >"$WORK/$name.out" 2>&1 &
	PIDS+=($!)
	eval "PID_$name=$!"
}
# wait_line FILE REGEX SECONDS: wait until FILE has a line matching REGEX; print it.
wait_line() {
	local deadline=$((SECONDS + $3)) line
	while [ $SECONDS -lt $deadline ]; do
		line=$(grep -E -m1 -- "$2" "$1" 2>/dev/null) && { echo "$line"; return 0; }
		sleep 0.1
	done
	return 1
}
# seed_addr OUTFILE IPPREFIX: the seed's TCP multiaddr on the given subnet.
seed_addr() { wait_line "$1" "/ip4/$2[0-9.]*/tcp/[0-9]+/p2p/" 20 | grep -Eo "/ip4/$2[0-9.]*/tcp/[0-9]+/p2p/[A-Za-z0-9]+"; }
now_ms() { date +%s%3N; }

# start_seed NS NAME [BOOTSTRAP]: a DHT server + relay (default: a first node).
start_seed() {
	local bs=${3:-none}
	if [ "$DRIVER" = probe ]; then
		bg "$1" "$2" "$PROBE" -seed -bootstrap "$bs" -no-mdns -no-nat \
			-listen /ip4/0.0.0.0/tcp/4001 -listen /ip4/0.0.0.0/udp/4001/quic-v1 -log "$WORK/$2.log"
	else
		bg "$1" "$2" "$KCHAT" --data "$WORK/$2" seed --bootstrap "$bs" --no-mdns --no-nat \
			--listen /ip4/0.0.0.0/tcp/4001 --listen /ip4/0.0.0.0/udp/4001/quic-v1
	fi
}

# kchat helpers: a channel with one message in data dir $1, joined in data dir $2.
kchat_channel() {
	local key
	key=$("$KCHAT" --data "$WORK/$1" new general | grep -Eo 'kchat://[0-9a-f]{64}[^ ]*' | head -1) || return 1
	"$KCHAT" --data "$WORK/$1" send general "hello from $1" >/dev/null || return 1
	"$KCHAT" --data "$WORK/$2" join "$key" --name general >/dev/null || return 1
}
kchat_check_read() {
	"$KCHAT" --data "$WORK/$1" read general | grep -q "hello from $2" ||
		fail "$1 does not show the message of $2"
}

# report_probe NAME STEP: print the FOUND line of a probe run.
report_probe() {
	local f
	local _ peer src ms
	f=$(grep -m1 '^FOUND' "$WORK/$1.out") || {
		fail "$2: $1 found no peer"
		sed 's/^/    /' "$WORK/$1.out"
		echo "    -- last lines of $1.log:"
		tail -n 25 "$WORK/$1.log" 2>/dev/null | cut -c1-400 | sed 's/^/    /'
		return 1
	}
	read -r _ peer src ms <<<"$f"
	echo "   $2: $1 found ${peer:0:16}... by $src in $ms ms"
}

# ---- step 1: LAN, mDNS --------------------------------------------------------------------
step1() {
	say "step 1: LAN - two namespaces on one bridge, mDNS, no peer flags"
	mkns lan && mkns a && mkns b || { fail "step 1: namespaces"; return; }
	bridge lan
	link a eth0 lan va && link b eth0 lan vb || { fail "step 1: links"; return; }
	enslave lan va && enslave lan vb
	addr a eth0 10.201.1.2/24 && addr b eth0 10.201.1.3/24
	if [ "$DRIVER" = probe ]; then
		bg a lan_a "$PROBE" -bootstrap none -no-dht -no-nat -topic lan -wait 30s -stay 10s -log "$WORK/lan_a.log"
		bg b lan_b "$PROBE" -bootstrap none -no-dht -no-nat -topic lan -wait 30s -stay 10s -log "$WORK/lan_b.log"
		wait "$PID_lan_a"; wait "$PID_lan_b"
		report_probe lan_a "step 1"; report_probe lan_b "step 1"
	else
		kchat_channel A B || { fail "step 1: channel setup"; return; }
		bg a lan_seed "$KCHAT" --data "$WORK/A" seed --no-dht --no-nat
		local t0=$(now_ms)
		if inns b "$KCHAT" --data "$WORK/B" sync general --no-dht --no-nat --timeout 30s >"$WORK/lan_sync.out" 2>&1; then
			echo "   step 1: B synced with A (found by mDNS) in $(($(now_ms) - t0)) ms"
			kchat_check_read B A
		else
			fail "step 1: kchat sync over mDNS"; sed 's/^/    /' "$WORK/lan_sync.out"
		fi
	fi
}

# ---- step 2: DHT through a seed -----------------------------------------------------------
step2() {
	say "step 2: DHT - two namespaces joined only through a seed namespace, mDNS off"
	mkns s && mkns c && mkns d || { fail "step 2: namespaces"; return; }
	link c eth0 s vc && link d eth0 s vd || { fail "step 2: links"; return; }
	addr s vc 10.201.2.1/24 && addr c eth0 10.201.2.2/24 && route c 10.201.2.1
	addr s vd 10.201.3.1/24 && addr d eth0 10.201.3.2/24 && route d 10.201.3.1
	forwarding s
	start_seed s dht_seed
	local seed_c seed_d
	seed_c=$(seed_addr "$WORK/dht_seed.out" 10.201.2.) || { fail "step 2: seed did not start"; cat "$WORK/dht_seed.out"; return; }
	seed_d=${seed_c/10.201.2.1/10.201.3.1}
	if [ "$DRIVER" = probe ]; then
		bg c dht_c "$PROBE" -bootstrap "$seed_c" -no-mdns -no-nat -topic wan -wait 60s -stay 10s -log "$WORK/dht_c.log"
		bg d dht_d "$PROBE" -bootstrap "$seed_d" -no-mdns -no-nat -topic wan -wait 60s -stay 10s -log "$WORK/dht_d.log"
		wait "$PID_dht_c"; wait "$PID_dht_d"
		report_probe dht_c "step 2"; report_probe dht_d "step 2" || {
			echo "    -- last lines of dht_seed.log:"
			tail -n 25 "$WORK/dht_seed.log" 2>/dev/null | cut -c1-400 | sed 's/^/    /'
		}
	else
		kchat_channel C D || { fail "step 2: channel setup"; return; }
		bg c dht_holder "$KCHAT" --data "$WORK/C" seed --bootstrap "$seed_c" --no-mdns --no-nat
		local t0=$(now_ms)
		if inns d "$KCHAT" --data "$WORK/D" sync general --bootstrap "$seed_d" --no-mdns --no-nat --timeout 60s >"$WORK/dht_sync.out" 2>&1; then
			echo "   step 2: D synced with C (found through the DHT) in $(($(now_ms) - t0)) ms"
			kchat_check_read D C
		else
			fail "step 2: kchat sync through the DHT"; sed 's/^/    /' "$WORK/dht_sync.out"
		fi
	fi
}

# ---- step 3: NAT, relay, hole punching ----------------------------------------------------
step3() {
	say "step 3: NAT - a namespace behind a masquerading router reached through the seed's relay"
	if ! command -v iptables >/dev/null; then
		if in_ci; then fail "step 3: iptables is not installed (CI)"; return; fi
		echo "SKIP step 3: iptables is not installed"
		return
	fi
	mkns inet && mkns s3 && mkns r && mkns n && mkns p || { fail "step 3: namespaces"; return; }
	bridge inet
	link s3 eth0 inet vs && link r pub inet vr && link p eth0 inet vp && link n eth0 r priv ||
		{ fail "step 3: links"; return; }
	enslave inet vs && enslave inet vr && enslave inet vp
	addr s3 eth0 "$INET.1/24" && addr r pub "$INET.2/24" && addr p eth0 "$INET.3/24"
	addr r priv 192.168.201.1/24 && addr n eth0 192.168.201.2/24 && route n 192.168.201.1
	forwarding r
	inns r iptables -t nat -A POSTROUTING -s 192.168.201.0/24 -o pub -j MASQUERADE &&
		inns r iptables -A FORWARD -i pub -o priv -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT &&
		inns r iptables -A FORWARD -i pub -o priv -j DROP || { fail "step 3: iptables NAT"; return; }
	# p has no route to the NATed network at all.
	inns p ip route get 192.168.201.2 >/dev/null 2>&1 && fail "step 3: the NATed namespace is routable from p"

	start_seed s3 nat_seed
	local seed seeds i o
	seed=$(seed_addr "$WORK/nat_seed.out" "$INET.") || { fail "step 3: seed did not start"; cat "$WORK/nat_seed.out"; return; }
	# Three more seeds: libp2p trusts an observed (NAT-mapped) address only once 4
	# distinct peers report it, and hole punching needs that address.
	seeds=(--bootstrap "$seed")
	for i in 1 2 3; do
		mkns "o$i" && link "o$i" eth0 inet "vo$i" && enslave inet "vo$i" && addr "o$i" eth0 "$INET.$((3 + i))/24" ||
			{ fail "step 3: observer namespace"; return; }
		start_seed "o$i" "nat_obs$i" "$seed"
		o=$(seed_addr "$WORK/nat_obs$i.out" "$INET.") || { fail "step 3: seed o$i did not start"; return; }
		seeds+=(--bootstrap "$o")
	done
	# n reaches the seed through the NAT (TCP connect with bash's /dev/tcp).
	inns n timeout 5 bash -c "exec 3<>/dev/tcp/$INET.1/4001" 2>/dev/null ||
		fail "step 3: n cannot reach the seed through the NAT"
	if [ "$DRIVER" = probe ]; then
		# n may not open connections to p itself: it runs the same DHT find
		# loop as p, and when its round found p first it dialled p directly
		# (outbound through the NAT works), so p never used the relay this
		# step is about (a flake in CI). With the router dropping n's
		# connections to p, p can reach n only through the seed's relay;
		# the hole punch is still attempted (and fails: n's half of it is
		# a connection to p).
		inns r iptables -I FORWARD -i priv -d "$INET.3" -j DROP || { fail "step 3: iptables n to p"; return; }
		bg n nat_n "$PROBE" "${seeds[@]/#--/-}" -no-mdns -no-nat -topic nat -wait 180s -direct-wait 30s -log "$WORK/nat_n.log"
		local relay
		if relay=$(wait_line "$WORK/nat_n.out" '^RELAYADDR' 90); then
			echo "   step 3: the NATed node got a relay address after ${relay#RELAYADDR } ms"
		else
			fail "step 3: the NATed node got no relay reservation"; sed 's/^/    /' "$WORK/nat_n.out"
		fi
		bg p nat_p "$PROBE" -bootstrap "$seed" -no-mdns -no-nat -topic nat -wait 120s -direct-wait 30s -log "$WORK/nat_p.log"
		wait "$PID_nat_p"
		report_probe nat_p "step 3"
		local conn
		conn=$(grep -m1 '^CONN' "$WORK/nat_p.out")
		case $conn in
		*limited*) echo "   step 3: p reached n through the relay (limited connection)" ;;
		*direct*) fail "step 3: p reached n directly, not through the relay (n found p first?)"; sed 's/^/    /' "$WORK/nat_n.out" ;;
		esac
		if grep -q '^DIRECT' "$WORK/nat_p.out"; then
			echo "   step 3: a direct connection replaced the relay after $(grep -m1 '^DIRECT' "$WORK/nat_p.out" | awk '{print $3}') ms"
		fi
		if grep -q 'hole punch' "$WORK/nat_n.log" "$WORK/nat_p.log" 2>/dev/null; then
			echo "   step 3: hole punching attempted:"
			grep -h 'hole punch' "$WORK/nat_n.log" "$WORK/nat_p.log" | head -5 | sed 's/^/    /'
		else
			fail "step 3: no hole punching attempt logged"
		fi
	else
		kchat_channel N P || { fail "step 3: channel setup"; return; }
		# n is not a seed (a seed claims public reachability and never uses relays):
		# it waits in `kchat sync` for p, which joins once n had time to reserve a relay slot.
		bg n nat_n_sync "$KCHAT" --data "$WORK/N" sync general "${seeds[@]}" --no-mdns --no-nat --timeout 120s
		sleep 15
		local t0=$(now_ms)
		if inns p "$KCHAT" --data "$WORK/P" sync general --bootstrap "$seed" --no-mdns --no-nat --timeout 90s >"$WORK/nat_sync.out" 2>&1; then
			echo "   step 3: P synced with the NATed N in $(($(now_ms) - t0)) ms"
			kchat_check_read P N
		else
			fail "step 3: kchat sync with the NATed peer"; sed 's/^/    /' "$WORK/nat_sync.out"
		fi
	fi
}

# Nothing of ours may appear in the root namespace.
check_isolation() {
	if ip -o link show | grep -Eq ' (va|vb|vc|vd|vs|vr|vp|vo[0-9]|pub|priv)(@|:)'; then
		fail "a test interface appeared in the root namespace"
	fi
}

for DRIVER in "${DRIVERS[@]}"; do
	say "driver: $DRIVER"
	step1; check_isolation
	step2; check_isolation
	step3; check_isolation
	teardown
done

if [ $FAILED = 0 ]; then say "PASS (drivers: ${DRIVERS[*]})"; else say "FAILED (drivers: ${DRIVERS[*]}; keep logs with KCHAT_NETNS_KEEP=1)"; fi
exit $FAILED
