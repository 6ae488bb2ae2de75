# What the topology scripts of this directory share (sourced, not run): NSS names the
# script's namespaces.

ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

# Removes every namespace of NSS that is there.
down() {
    for ns in "${NSS[@]}"; do
        if ns_exists "$ns"; then ip netns del "$ns"; fi
    done
}

# A veth pair between two namespaces, up, MTU 1600, offloads off.
link() { # NS1 IF1 NS2 IF2
    ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
    for end in "$1 $2" "$3 $4"; do
        set -- $end
        ip -n "$1" link set "$2" mtu 1600 up
        ip netns exec "$1" ethtool -K "$2" tx off rx off gso off tso off gro off >/dev/null 2>&1 || true
    done
}

# Without ethtool the veths keep their offloads: what a kernel sends on them (an echo
# server's UDP reply) carries a partial checksum, which the AFTR translates as it is
# and the receiver then drops, so no reply ever comes back.
need_ethtool() {
    if ! command -v ethtool >/dev/null; then
        echo "$0: ethtool is missing (bash scripts/setup.sh installs it); offloads cannot be turned off" >&2
        exit 1
    fi
}

# Makes the namespaces of NSS, each with its loopback up (removing them first).
namespaces() {
    down
    for ns in "${NSS[@]}"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
}
