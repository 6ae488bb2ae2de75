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
# End-to-end tests record packets with tcpdump, then read them with scapy (Python).
command -v tcpdump >/dev/null || need_apt+=(tcpdump)
# promtool checks the metrics' exposition and the alert rules (control/tests/operator.rs).
command -v promtool >/dev/null || need_apt+=(prometheus)
# The package (scripts/build-deb.sh strips the binaries) and its test (systemd-analyze
# verify on the installed unit).
command -v strip >/dev/null || need_apt+=(binutils)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
# Announcements by BGP: the end-to-end test runs BIRD 2 on both boards and the upstream.
command -v bird >/dev/null || need_apt+=(bird2)
# NAT logging: tshark decodes what aftrd exports by IPFIX (an independent decoder), and a
# real rsyslog collects its syslog over TCP (control/tests/natlog_e2e.rs).
command -v tshark >/dev/null || need_apt+=(tshark)
command -v rsyslogd >/dev/null || need_apt+=(rsyslog)
# The worker's profile (scripts/profile-worker.sh): perf record.
command -v perf >/dev/null || need_apt+=(linux-perf)
# The benchmarks' sink drops what reaches the generator at the ingress hook (nftables),
# so its kernel's IP stack costs neither DUT anything (bench/src/lab.rs).
command -v nft >/dev/null || need_apt+=(nftables)
if ! command -v python3 >/dev/null; then
    need_apt+=(python3 python3-pip)
elif ! python3 -m pip --version >/dev/null 2>&1; then
    need_apt+=(python3-pip)
fi
if ((${#need_apt[@]})); then
    apt-get update -qq
    # wireshark-common asks whether non-root users may capture: no.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
# The Python packages of the tests, at the versions pinned in requirements.txt, for the
# python3 that the tests run (the first on PATH: a venv's, if one is active).
requirements="$(dirname "$0")/requirements.txt"
pinned_present() {
    python3 - "$requirements" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, want = (w.strip() for w in line.split("=="))
        try:
            if version(name) != want:
                sys.exit(1)
        except PackageNotFoundError:
            sys.exit(1)
PY
}
if ! pinned_present; then
    # (Root is who runs the tests here: no warning about it.)
    pip_install=(env PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check -r "$requirements")
    if ! said=$("${pip_install[@]}" 2>&1); then
        # Debian's own python3 refuses outside a venv (PEP 668, "externally managed"):
        # these are tools for the tests, installed for root, so override it there only.
        if grep -q externally-managed-environment <<<"$said"; then
            "${pip_install[@]}" --break-system-packages
        else
            printf '%s\n' "$said" >&2
            exit 1
        fi
    fi
    pinned_present || { echo "setup: $requirements not satisfied after pip install" >&2; exit 1; }
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy
