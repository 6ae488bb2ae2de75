#!/usr/bin/env bash
# Installs what building and testing the AFTR needs on a fresh Debian machine of this
# project's kind (Rust is already there). Idempotent; run as root.
set -euo pipefail
need_apt=()
command -v cc >/dev/null || need_apt+=(gcc)
# The XDP program is C, built for BPF by clang (dataplane/build.rs) with libbpf's headers;
# the tests also attach it with iproute2 to check that stale programs are removed.
command -v clang >/dev/null || need_apt+=(clang)
[ -f /usr/include/bpf/bpf_helpers.h ] || need_apt+=(libbpf-dev)
[ -f /usr/include/linux/bpf.h ] || need_apt+=(linux-libc-dev)
# Test topologies: namespaces and veth pairs, offloads off.
command -v ip >/dev/null || need_apt+=(iproute2)
command -v ethtool >/dev/null || need_apt+=(ethtool)
# kill and pgrep in the tests and benchmarks.
command -v pgrep >/dev/null || need_apt+=(procps)
# Real applications in the end-to-end tests.
command -v curl >/dev/null || need_apt+=(curl)
command -v python3 >/dev/null || need_apt+=(python3 python3-pip)
if ((${#need_apt[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
# End-to-end tests craft and check packets with scapy.
python3 -c "import scapy" 2>/dev/null || python3 -m pip install -q scapy
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy
