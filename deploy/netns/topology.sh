#!/usr/bin/env bash
# Builds (or removes) a DS-Lite test topology of network namespaces and veth pairs:
#
#   [PFXsub]  b4 (2001:db8:b4::2/64, 192.168.1.10 behind the B4)
#      | veth PFXb4 <-> PFXsw
#   [PFXaftr] sw (2001:db8:b4::1/64)      in (203.0.113.1/24)   the AFTR board
#      | veth PFXin <-> PFXsrv
#   [PFXinet] srv (203.0.113.80/24, route to the pool via 203.0.113.1); the board's
#             default gateway
#
# The AFTR endpoint 2001:db8::1 is reached from the subscriber via 2001:db8:b4::1; the
# pool 198.51.100.0/24 from the Internet via 203.0.113.1. Offloads are off on every
# veth so the checksums on the wire are real (MACHINE-FACTS.md).
#
# Usage: topology.sh up|down|status [PREFIX]   (PREFIX defaults to "aftr-"; tests use
# their own so that runs never collide). `down` removes everything `up` made, and
# succeeds when nothing is there.
set -euo pipefail
cmd=${1:-}
P=${2:-aftr-}
SUB=${P}sub AFTR=${P}aftr INET=${P}inet

ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

down() {
    for ns in "$SUB" "$AFTR" "$INET"; do
        if ns_exists "$ns"; then ip netns del "$ns"; fi
    done
    # veth ends left in the root namespace by a half-made topology.
    for l in "${P}b4" "${P}sw" "${P}in" "${P}srv"; do
        if ip link show "$l" >/dev/null 2>&1; then ip link del "$l"; fi
    done
}

offloads_off() {
    local ns=$1 dev=$2
    ip netns exec "$ns" ethtool -K "$dev" tx off rx off gso off tso off gro off >/dev/null 2>&1 || true
}

up() {
    # Without ethtool the veths keep their offloads: what a kernel sends on them (an
    # echo server's UDP reply) carries a partial checksum, which the AFTR translates
    # as it is and the receiver then drops, so no reply ever comes back.
    if ! command -v ethtool >/dev/null; then
        echo "$0: ethtool is missing (bash scripts/setup.sh installs it); offloads cannot be turned off" >&2
        exit 1
    fi
    down
    trap 'down' ERR
    for ns in "$SUB" "$AFTR" "$INET"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    ip link add "${P}b4" type veth peer name "${P}sw"
    ip link set "${P}b4" netns "$SUB"
    ip link set "${P}sw" netns "$AFTR"
    ip link add "${P}in" type veth peer name "${P}srv"
    ip link set "${P}in" netns "$AFTR"
    ip link set "${P}srv" netns "$INET"
    for pair in "$SUB ${P}b4" "$AFTR ${P}sw" "$AFTR ${P}in" "$INET ${P}srv"; do
        set -- $pair
        ip -n "$1" link set "$2" mtu 1600 up
        offloads_off "$1" "$2"
    done
    # Subscriber side.
    ip -n "$SUB" -6 addr add 2001:db8:b4::2/64 dev "${P}b4" nodad
    ip -n "$SUB" -6 route add 2001:db8::/64 via 2001:db8:b4::1
    # The board: addresses for neighbour discovery and ARP on both sides.
    ip -n "$AFTR" -6 addr add 2001:db8:b4::1/64 dev "${P}sw" nodad
    ip -n "$AFTR" addr add 203.0.113.1/24 dev "${P}in"
    # The Internet namespace is the board's upstream router.
    ip -n "$AFTR" route add default via 203.0.113.80
    # The Internet side.
    ip -n "$INET" addr add 203.0.113.80/24 dev "${P}srv"
    ip -n "$INET" route add 198.51.100.0/24 via 203.0.113.1
    trap - ERR
}

status() {
    for ns in "$SUB" "$AFTR" "$INET"; do
        if ns_exists "$ns"; then echo "$ns: up"; ip -n "$ns" -br addr; else echo "$ns: absent"; fi
    done
}

case "$cmd" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status [PREFIX]" >&2; exit 2 ;;
esac
