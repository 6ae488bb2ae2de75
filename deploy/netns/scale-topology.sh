#!/usr/bin/env bash
# Builds (or removes) a scale-out test topology: two hosts, each with a pair of AFTR
# boards in hot backup for its own service-location, behind one upstream router that
# reaches the boards only by what they announce over BGP (deploy/README.md, "Many
# hosts"; docs/decisions/0022-scale-out-by-ecmp.md):
#
#   [PFXsub] B4s (2001:db8:b4::/64, default via the router)
#       | b4 -- up-b4
#   [PFXup] the upstream router: 2001:db8:b4::1 to the B4s, 2001:db8:fa::80 (host A's
#           softwire segment), 2001:db8:fb::80 (host B's), 203.0.113.80 on the Internet
#           segment (the echo server's address too). IPv6 forwarding on; ECMP hashed on
#           the outer source address alone (policy 3, fields 0x0001), so that the flow
#           labels of one B4 never split it over two hosts.
#       | up-swa (bridge bswa)            | up-swb (bridge bswb)
#   [PFXa1] a1-sw 2001:db8:fa::1        [PFXa3] a3-sw 2001:db8:fb::3
#   [PFXa2] a2-sw 2001:db8:fa::2        [PFXa4] a4-sw 2001:db8:fb::4
#       host A: a1-ha 192.0.2.1 -- a2-ha 192.0.2.2   host B: a3-ha 192.0.2.3 -- a4-ha 192.0.2.4
#   every board's aN-in 203.0.113.N/24 on bridge bin with the router's up-in
#
# The bridges live in PFXlan. Boards: default route via 203.0.113.80, the B4s via
# their segment's router address. Offloads off (see ha-topology.sh).
#
# Usage: scale-topology.sh up|down [PREFIX]   (PREFIX defaults to "so-")
set -euo pipefail
cmd=${1:-}
P=${2:-so-}
NSS=("${P}sub" "${P}up" "${P}a1" "${P}a2" "${P}a3" "${P}a4" "${P}lan")

. "$(dirname "$0")/lib.sh"

up() {
    need_ethtool
    trap 'down' ERR
    namespaces
    L=${P}lan
    U=${P}up
    for br in bswa bswb bin; do
        ip -n "$L" link add "$br" type bridge forward_delay 0 mcast_snooping 0
        ip -n "$L" link set "$br" up
    done
    link "${P}sub" b4 "$U" up-b4
    link "$U" up-swa "$L" p-upa
    link "$U" up-swb "$L" p-upb
    link "$U" up-in "$L" p-upi
    ip -n "$L" link set p-upa master bswa
    ip -n "$L" link set p-upb master bswb
    ip -n "$L" link set p-upi master bin
    for s in 1 2 3 4; do
        if [ "$s" -le 2 ]; then seg=a; else seg=b; fi
        link "${P}a$s" "a$s-sw" "$L" "p-a${s}s"
        link "${P}a$s" "a$s-in" "$L" "p-a${s}i"
        ip -n "$L" link set "p-a${s}s" master "bsw$seg"
        ip -n "$L" link set "p-a${s}i" master bin
        ip -n "${P}a$s" -6 addr add "2001:db8:f$seg::$s/64" dev "a$s-sw" nodad
        ip -n "${P}a$s" -6 route add 2001:db8:b4::/64 via "2001:db8:f$seg::80"
        ip -n "${P}a$s" addr add "203.0.113.$s/24" dev "a$s-in"
        ip -n "${P}a$s" route add default via 203.0.113.80
    done
    link "${P}a1" a1-ha "${P}a2" a2-ha
    link "${P}a3" a3-ha "${P}a4" a4-ha
    for s in 1 2 3 4; do ip -n "${P}a$s" addr add "192.0.2.$s/24" dev "a$s-ha"; done

    ip -n "${P}sub" -6 addr add 2001:db8:b4::2/64 dev b4 nodad
    ip -n "${P}sub" -6 route add default via 2001:db8:b4::1
    ip -n "$U" -6 addr add 2001:db8:b4::1/64 dev up-b4 nodad
    ip -n "$U" -6 addr add 2001:db8:fa::80/64 dev up-swa nodad
    ip -n "$U" -6 addr add 2001:db8:fb::80/64 dev up-swb nodad
    ip -n "$U" addr add 203.0.113.80/24 dev up-in
    ip netns exec "$U" sysctl -qw net.ipv6.conf.all.forwarding=1
    # ECMP on the outer source address alone: the B4's address, never its flow label.
    ip netns exec "$U" sysctl -qw net.ipv6.fib_multipath_hash_policy=3
    ip netns exec "$U" sysctl -qw net.ipv6.fib_multipath_hash_fields=0x0001
    trap - ERR
}

case "$cmd" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down [PREFIX]" >&2; exit 2 ;;
esac
