#!/usr/bin/env bash
# A Debian 12 (bookworm) root made by debootstrap, cached, for the tests
# that install the .deb into a real Debian: scripts/deb-install-check.sh
# (dpkg in a chroot) and tests/tests/systemd_container.rs (systemd booted
# in it by systemd-nspawn). Prints the root's path on its last line.
#
# The root is built once per package list and kept in
# <target dir>/debian-root/<key>/root, so both tests of one CI run share
# one debootstrap, and later runs on the same machine reuse it. Callers
# copy it (cp -a) and never change it. DEBIAN_ROOT_REFRESH=1 builds it
# anew; a root older than 7 days is rebuilt (security updates).
#
# Besides debootstrap's minbase: systemd as PID 1 (systemd-sysv, dbus),
# what the package's postinst needs (adduser, init-system-helpers), man-db
# (`systemd-analyze verify` looks up Documentation=man:), and the test's
# devices: mosquitto (the package depends on it: the agent runs it as its
# local broker) and mosquitto-clients (an MQTT device publishing to it),
# python3 with pymodbus (a Modbus TCP device: the same
# version and server script as the other tests; pymodbus is pure Python,
# so the host's pip installs it into the root, --target, no pip inside),
# and openssl (reads the agent's key files).
#
# With --systemd-backports: the same root with systemd from
# bookworm-backports (254: Type=notify-reload), cached beside it, for the
# container test of the notify-reload drop-in.
#
# Needs root and debootstrap; the Debian mirror is the one apt uses
# (DEBIAN_MIRROR overrides it), pymodbus comes through pip.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "FAIL: $*" >&2; exit 1; }

SUITE=bookworm
PACKAGES=adduser,init-system-helpers,systemd,systemd-sysv,dbus,man-db,mosquitto,mosquitto-clients,python3,openssl,procps
PYMODBUS=pymodbus==3.16.1
MAX_AGE_DAYS=7

[ "$(id -u)" -eq 0 ] || fail "debootstrap needs root"
command -v debootstrap > /dev/null || fail "debootstrap not found (scripts/install-test-deps.sh installs it)"

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
key="$(printf '%s %s %s v1' "$SUITE" "$PACKAGES" "$PYMODBUS" | sha256sum | cut -c1-12)"
base="$target_dir/debian-root/$SUITE-$key"
root="$base/root"

variant=""
case "${1:-}" in
    "") ;;
    --systemd-backports) variant=systemd-backports ;;
    *) fail "unknown argument ${1}" ;;
esac

# fresh DIR: DIR holds a root built less than MAX_AGE_DAYS ago.
fresh() {
    [ -f "$1/done" ] && [ -z "${DEBIAN_ROOT_REFRESH:-}" ] &&
        [ -n "$(find "$1/done" -mtime -"$MAX_AGE_DAYS" 2>/dev/null)" ]
}

# The variant: a copy of the base root with systemd from backports.
backports() {
    local vbase="$base-$variant" started=$SECONDS
    if fresh "$vbase"; then
        echo "cached Debian $SUITE root, $variant ($(cat "$vbase/done"))" >&2
        echo "$vbase/root"
        return
    fi
    rm -rf --one-file-system "$vbase"
    mkdir -p "$vbase"
    cp -a "$root" "$vbase/root"
    local mirror
    mirror="$(awk '$1 == "deb" {print $2; exit}' "$vbase/root/etc/apt/sources.list")"
    echo "deb $mirror $SUITE-backports main" > "$vbase/root/etc/apt/sources.list.d/backports.list"
    cp /etc/resolv.conf "$vbase/root/etc/resolv.conf" 2> /dev/null || true
    echo "== systemd from $SUITE-backports into $vbase/root" >&2
    { chroot "$vbase/root" apt-get update -qq &&
        chroot "$vbase/root" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq -t "$SUITE-backports" systemd systemd-sysv; } \
        > "$vbase/apt.log" 2>&1 ||
        { tail -20 "$vbase/apt.log" >&2; fail "installing systemd from backports failed"; }
    rm -f "$vbase"/root/var/cache/apt/archives/*.deb
    echo "built $(date -u +%FT%TZ) in $((SECONDS - started)) s, $(chroot "$vbase/root" systemctl --version | head -n 1)" > "$vbase/done"
    echo "Debian $SUITE root, $variant: $(cat "$vbase/done")" >&2
    echo "$vbase/root"
}

mkdir -p "$target_dir/debian-root"
# One builder at a time; a second caller waits and then finds it done.
exec 9> "$target_dir/debian-root/.lock"
flock 9
if fresh "$base"; then
    echo "cached Debian $SUITE root ($(cat "$base/done"))" >&2
    if [ -n "$variant" ]; then backports; else echo "$root"; fi
    exit 0
fi

# The mirror apt already uses (deb822 sources first, then sources.list).
mirror="${DEBIAN_MIRROR:-$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk '/^URIs:/ {u = $2} /^Suites:/ && $2 !~ /security/ && u {print u; exit}')}"
[ -n "$mirror" ] || mirror="$(awk '$1 == "deb" && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)"
[ -n "$mirror" ] || fail "no Debian mirror found in apt's sources: set DEBIAN_MIRROR"

rm -rf --one-file-system "$base"
mkdir -p "$base"
started=$SECONDS
echo "== debootstrap $SUITE (minbase + $PACKAGES) into $root" >&2
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$mirror" > "$base/debootstrap.log" 2>&1 ||
    { tail -20 "$base/debootstrap.log" >&2; fail "debootstrap failed (log: $base/debootstrap.log)"; }

# Python's site directory inside the root, for the host's pip.
site="$(chroot "$root" python3 -c 'import sys; print(f"/usr/local/lib/python3.{sys.version_info[1]}/dist-packages")')"
echo "== $PYMODBUS into $site" >&2
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    --no-deps --no-compile --target "$root$site" "$PYMODBUS" ||
    fail "pip could not install $PYMODBUS into the root"
chroot "$root" python3 -c 'import pymodbus.server, pymodbus.simulator' ||
    fail "pymodbus does not import inside the root"

# A container boots faster and quieter without these; none is under test.
chroot "$root" systemctl mask -q \
    systemd-networkd-wait-online.service systemd-timesyncd.service \
    apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer 2> /dev/null || true
echo streembit-ct > "$root/etc/hostname"
# apt-get clean: the downloaded .debs are not needed again.
rm -f "$root"/var/cache/apt/archives/*.deb
echo "built $(date -u +%FT%TZ) in $((SECONDS - started)) s" > "$base/done"
echo "Debian $SUITE root ready: $(cat "$base/done"), $(du -sh "$root" | cut -f1)" >&2
if [ -n "$variant" ]; then backports; else echo "$root"; fi
