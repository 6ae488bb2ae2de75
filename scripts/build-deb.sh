#!/usr/bin/env bash
# Builds the Debian package of the AFTR with dpkg-deb from a staging tree:
#   bash scripts/build-deb.sh [--bin-dir DIR] [--out DIR]
# Without --bin-dir it builds the release binaries first (cargo build --release);
# with it, it packages the aftrd, aftrctl and aftr-gen-docs already in DIR (the tests
# pass the binaries their own run built). Writes OUT/aftr_VERSION_ARCH.deb (OUT:
# target/deb) and prints its path.
#
# Contents: /usr/sbin/aftrd, /usr/bin/aftrctl, the systemd unit aftrd@.service, the man
# pages aftrd(8), aftrctl(8), aftr.conf(5), bash/zsh/fish completions, the example
# configurations as conffiles in /etc/aftr/, and the Prometheus alerts and Grafana
# dashboard in /usr/share/aftr/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin_dir="" out="$root/target/deb"
while (($#)); do
    case "$1" in
        --bin-dir) bin_dir=$(cd "$2" && pwd); shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) echo "usage: $0 [--bin-dir DIR] [--out DIR]" >&2; exit 2 ;;
    esac
done
if [ -z "$bin_dir" ]; then
    cargo build --release -p control --bins --manifest-path "$root/Cargo.toml"
    bin_dir="$root/target/release"
fi
for b in aftrd aftrctl aftr-gen-docs; do
    [ -x "$bin_dir/$b" ] || { echo "build-deb: no $bin_dir/$b" >&2; exit 1; }
done
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$root/Cargo.toml")
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg="$stage/aftr"

install -d "$pkg/DEBIAN" "$pkg/usr/sbin" "$pkg/usr/bin" "$pkg/lib/systemd/system" "$pkg/etc/aftr" \
    "$pkg/usr/share/man/man5" "$pkg/usr/share/man/man8" "$pkg/usr/share/doc/aftr/examples" \
    "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/zsh/vendor-completions" \
    "$pkg/usr/share/fish/vendor_completions.d" "$pkg/usr/share/aftr/prometheus" "$pkg/usr/share/aftr/grafana"
# Debug information stays out of the package (the release profile keeps line tables).
install -m 0755 "$bin_dir/aftrd" "$pkg/usr/sbin/aftrd"
install -m 0755 "$bin_dir/aftrctl" "$pkg/usr/bin/aftrctl"
strip --strip-debug "$pkg/usr/sbin/aftrd" "$pkg/usr/bin/aftrctl"
install -m 0644 "$root/deploy/aftrd@.service" "$pkg/lib/systemd/system/aftrd@.service"
for conf in aftr-ha.conf aftr-two-locations.conf; do
    # The examples hold inline lab keys: readable by root only.
    install -m 0600 "$root/deploy/$conf" "$pkg/etc/aftr/$conf"
    install -m 0644 "$root/deploy/$conf" "$pkg/usr/share/doc/aftr/examples/$conf"
done
install -m 0644 "$root/deploy/prometheus/alerts.yml" "$pkg/usr/share/aftr/prometheus/alerts.yml"
install -m 0644 "$root/deploy/grafana/aftr.json" "$pkg/usr/share/aftr/grafana/aftr.json"

docs="$stage/docs"
"$bin_dir/aftr-gen-docs" "$docs"
install -m 0644 "$docs/man/aftrd.8" "$docs/man/aftrctl.8" "$pkg/usr/share/man/man8/"
install -m 0644 "$docs/man/aftr.conf.5" "$pkg/usr/share/man/man5/"
gzip -9n "$pkg"/usr/share/man/man*/*
for b in aftrd aftrctl; do
    install -m 0644 "$docs/completions/bash/$b.bash" "$pkg/usr/share/bash-completion/completions/$b"
    install -m 0644 "$docs/completions/zsh/_$b" "$pkg/usr/share/zsh/vendor-completions/_$b"
    install -m 0644 "$docs/completions/fish/$b.fish" "$pkg/usr/share/fish/vendor_completions.d/$b.fish"
done
cat >"$pkg/usr/share/doc/aftr/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: aftr
License: Apache-2.0
Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
COPYRIGHT

printf '%s\n' /etc/aftr/aftr-ha.conf /etc/aftr/aftr-two-locations.conf >"$pkg/DEBIAN/conffiles"
installed_size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: aftr
Version: $version
Architecture: $arch
Maintainer: AFTR developers <aftr@localhost>
Installed-Size: $installed_size
Depends: libc6
Section: net
Priority: optional
Description: DS-Lite AFTR (RFC 6333) with CGN NAT44 over AF_XDP
 aftrd runs one board of a DS-Lite AFTR: softwires from B4 routers ended and
 translated to public IPv4 on pinned AF_XDP workers, with hot backup of NAT
 sessions between two boards, NAT logs and Prometheus metrics. aftrctl talks
 to it. One systemd unit instance per board: systemctl enable --now aftrd@1.
CONTROL
# The unit's changes are seen at once where systemd runs.
for script in postinst postrm; do
    cat >"$pkg/DEBIAN/$script" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
SCRIPT
    chmod 0755 "$pkg/DEBIAN/$script"
done
cat >>"$pkg/DEBIAN/postrm" <<'SCRIPT'
if [ "$1" = purge ]; then
    rmdir /etc/aftr 2>/dev/null || true
fi
SCRIPT

mkdir -p "$out"
deb="$out/aftr_${version}_${arch}.deb"
dpkg-deb --build --root-owner-group -Zgzip "$pkg" "$deb" >/dev/null
echo "$deb"
