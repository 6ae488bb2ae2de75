#!/usr/bin/env bash
# Builds (or removes) a hot-backup test topology: two AFTR boards that share the
# subscriber segment and the Internet segment (one bridge each), and a direct HA link:
#
#   [PFXsub] b4 (2001:db8:b4::2/64; the AFTR endpoint 2001:db8::1 on-link)
#        |                         bridge bsw (in PFXlan)
#   [PFXa1] a1-sw  a1-in  a1-ha ---- a2-ha  a2-in  a2-sw [PFXa2]
#        |      192.0.2.1/24   192.0.2.2/24      |
#                                  bridge bin (in PFXlan)
#   [PFXinet] srv (203.0.113.80/24; the pool 198.51.100.0/24 on-link)
#
# Neither board's kernel owns the endpoint or the pool: the active board answers ARP
# and neighbour discovery for them (control/src/announce.rs). The boards' own Internet
# addresses are 203.0.113.1 and .2, default route via 203.0.113.80. Offloads off and
# multicast snooping off (the witness heartbeats are link-local multicast).
#
# `relay` moves the HA link of a topology that is up into the lan namespace: a1-ha to
# p-a1h and a2-ha to p-a2h there, not joined, so that a program forwarding between the
# two can make the link lossy or slow (this kernel may have no netem). Before the
# boards start: their HA addresses go with the old link.
#
# Usage: ha-topology.sh up|down|relay [PREFIX]   (PREFIX defaults to "ha-")
set -euo pipefail
cmd=${1:-}
P=${2:-ha-}
NSS=("${P}sub" "${P}a1" "${P}a2" "${P}inet" "${P}lan")

. "$(dirname "$0")/lib.sh"

up() {
    need_ethtool
    trap 'down' ERR
    namespaces
    L=${P}lan
    for br in bsw bin; do
        ip -n "$L" link add "$br" type bridge forward_delay 0 mcast_snooping 0
        ip -n "$L" link set "$br" up
    done
    link "${P}sub" b4 "$L" p-b4
    link "${P}a1" a1-sw "$L" p-a1s
    link "${P}a2" a2-sw "$L" p-a2s
    link "${P}a1" a1-in "$L" p-a1i
    link "${P}a2" a2-in "$L" p-a2i
    link "${P}inet" srv "$L" p-srv
    for p in p-b4 p-a1s p-a2s; do ip -n "$L" link set "$p" master bsw; done
    for p in p-a1i p-a2i p-srv; do ip -n "$L" link set "$p" master bin; done
    link "${P}a1" a1-ha "${P}a2" a2-ha
    ip -n "${P}a1" addr add 192.0.2.1/24 dev a1-ha
    ip -n "${P}a2" addr add 192.0.2.2/24 dev a2-ha
    ip -n "${P}sub" -6 addr add 2001:db8:b4::2/64 dev b4 nodad
    ip -n "${P}sub" -6 route add 2001:db8::1/128 dev b4
    ip -n "${P}a1" addr add 203.0.113.1/24 dev a1-in
    ip -n "${P}a2" addr add 203.0.113.2/24 dev a2-in
    ip -n "${P}a1" route add default via 203.0.113.80
    ip -n "${P}a2" route add default via 203.0.113.80
    ip -n "${P}inet" addr add 203.0.113.80/24 dev srv
    ip -n "${P}inet" route add 198.51.100.0/24 dev srv
    trap - ERR
}

relay() {
    L=${P}lan
    ip -n "${P}a1" link del a1-ha
    link "${P}a1" a1-ha "$L" p-a1h
    link "${P}a2" a2-ha "$L" p-a2h
    ip -n "${P}a1" addr add 192.0.2.1/24 dev a1-ha
    ip -n "${P}a2" addr add 192.0.2.2/24 dev a2-ha
}

case "$cmd" in
    up) up ;;
    down) down ;;
    relay) relay ;;
    *) echo "usage: $0 up|down|relay [PREFIX]" >&2; exit 2 ;;
esac
