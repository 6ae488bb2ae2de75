#!/usr/bin/env bash
# Quickstart: on a fresh machine (as root), install what is needed, build, bring up a
# test topology of network namespaces, start aftrd (one board) and a user-space B4,
# download a file with curl from a web server on the Internet side through the
# softwire, show what aftrctl displays, and remove everything again.
set -euo pipefail
cd "$(dirname "$0")/.."
P=qs-
WORK=$(mktemp -d /tmp/aftr-quickstart.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    bash deploy/netns/topology.sh down "$P" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== installing what is needed, building"
bash scripts/setup.sh
cargo build --release --workspace --bins --quiet
BIN=$PWD/target/release

echo "== topology: ${P}sub (subscriber + B4) -- ${P}aftr (aftrd) -- ${P}inet (web server)"
bash deploy/netns/topology.sh up "$P"

cat > "$WORK/aftr.conf" <<CONF
sysname quickstart
#
slot 1
 worker-cores 0
 interface softwire ${P}sw
 interface internet ${P}in
#
# One board without backup (a pair needs both boards' ha-address and a key:
# deploy/aftr-ha.conf).
service-location 1
 location slot 1
service-instance-group group1
 service-location 1 weight 100
#
ds-lite address-group pool1
 section 0 198.51.100.0 mask 24
ds-lite instance dslite1 id 1
 service-instance-group group1
 local-ipv6 2001:db8::1
 remote-ipv6 2001:db8:b4:: prefix-length 64
 ds-lite address-group pool1
CONF
"$BIN/aftrd" --check --config "$WORK/aftr.conf"

echo "== starting aftrd in ${P}aftr"
ip netns exec "${P}aftr" "$BIN/aftrd" --config "$WORK/aftr.conf" --slot 1 --socket "$WORK/slot1.sock" 2> "$WORK/aftrd.log" &
PIDS+=($!)
echo "== starting the B4 in ${P}sub (TUN device, IPv4 default route into the softwire)"
ip netns exec "${P}sub" "$BIN/b4" --b4 2001:db8:b4::2 --aftr 2001:db8::1 --ipv4 192.168.1.10 2> "$WORK/b4.log" &
PIDS+=($!)
mkdir -p "$WORK/www"
head -c 20000000 /dev/urandom > "$WORK/www/file.bin"
echo "== a web server in ${P}inet on 203.0.113.80:8080"
ip netns exec "${P}inet" python3 -m http.server 8080 --bind 203.0.113.80 --directory "$WORK/www" > /dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -S "$WORK/slot1.sock" ] && break; sleep 0.1; done
for _ in $(seq 100); do ip -n "${P}sub" route show default | grep -q b4tun && break; sleep 0.1; done
for _ in $(seq 100); do ip netns exec "${P}inet" python3 -c "import socket; socket.create_connection(('203.0.113.80', 8080), 1)" 2>/dev/null && break; sleep 0.1; done
cat "$WORK/aftrd.log"

echo "== curl from the subscriber, through the B4 and aftrd"
ip netns exec "${P}sub" curl -sS -m 60 -o "$WORK/got.bin" -w "HTTP %{http_code}, %{size_download} bytes at %{speed_download} bytes/s\n" http://203.0.113.80:8080/file.bin
cmp "$WORK/got.bin" "$WORK/www/file.bin" && echo "the file arrived intact"

CTL="$BIN/aftrctl --socket $WORK/slot1.sock"
echo "== aftrctl display sessions"
$CTL display sessions
echo "== aftrctl display subscribers"
$CTL display subscribers
echo "== aftrctl display statistics (non-zero)"
$CTL display statistics | awk '$2 != 0'
echo "== done; removing the topology"
