#!/usr/bin/env bash
# Installs the amd64 .deb (from scripts/deb.sh) into a fresh copy of a
# Debian 12 root made by debootstrap, and checks what the maintainer scripts
# do: the user `streembit` with the groups dialout and i2c, the unit
# enabled, the conffile kept across a reinstall and after `dpkg -r`, and
# everything gone after `dpkg -P`. No systemd runs in the chroot, so the
# service itself is not started here: tests/tests/systemd_container.rs
# boots the same root with systemd and installs the package there.
#
# Needs root (chroot) and debootstrap (scripts/debian-root.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIPPED: installing into a chroot needs root"
    exit 0
fi
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
deb="$(ls "$target_dir"/debian/streembit_*_amd64.deb 2>/dev/null | head -n 1)"
[ -n "$deb" ] || fail "no amd64 .deb in $target_dir/debian: run scripts/deb.sh first"

# The Debian 12 root scripts/debian-root.sh made (and cached: the container
# test boots the same one), copied so the cache stays pristine.
cached="$(./scripts/debian-root.sh | tail -n 1)"
root="$(mktemp -d)"
trap 'rm -rf --one-file-system "$root"' EXIT
step "a copy of the cached Debian 12 root in $root"
cp -a --reflink=auto "$cached/." "$root/"
cp "$deb" "$root/tmp/streembit.deb"
in_root() { chroot "$root" /bin/sh -c "$1"; }

step "dpkg -i $(basename "$deb")"
said="$(in_root 'dpkg -i /tmp/streembit.deb' 2>&1)" || fail "dpkg -i failed: $said"
# adduser warned "The home dir /var/lib/streembit ... can't be accessed"
# until the postinst made the directory first.
if grep -q "can't be accessed" <<< "$said"; then
    fail "the install warns: $said"
fi
groups="$(in_root 'id -nG streembit')"
for g in streembit dialout i2c; do
    grep -qw "$g" <<< "$groups" || fail "user streembit is not in group $g (groups: $groups)"
done
[ "$(in_root 'getent passwd streembit | cut -d: -f6,7')" = "/var/lib/streembit:/usr/sbin/nologin" ] ||
    fail "user streembit: unexpected home or shell"
[ -L "$root/etc/systemd/system/multi-user.target.wants/streembit.service" ] ||
    fail "the unit was not enabled"
[ -d "$root/etc/streembit/bridges.d" ] || fail "no /etc/streembit/bridges.d"
out="$(in_root 'streembit check-config')" || fail "check-config in the chroot: $out"
echo "$out"
grep -q "0 bridge files" <<< "$out" || fail "a bridge file is installed: $out"
echo "user streembit ($groups), unit enabled, config valid"

step "reinstall keeps an edited conffile; remove keeps config and state; purge removes them"
in_root 'echo "# edited by the test" >> /etc/streembit/agent.toml'
in_root 'dpkg -i /tmp/streembit.deb' > /dev/null
tail -n 1 "$root/etc/streembit/agent.toml" | grep -q "edited by the test" ||
    fail "reinstalling overwrote the edited agent.toml"
in_root 'mkdir -p /var/lib/streembit && touch /var/lib/streembit/identity.pem'
in_root 'dpkg -r streembit' > /dev/null
[ -f "$root/etc/streembit/agent.toml" ] && [ -f "$root/var/lib/streembit/identity.pem" ] ||
    fail "dpkg -r removed the config or the state"
in_root 'dpkg -P streembit' > /dev/null
[ ! -e "$root/etc/streembit" ] && [ ! -e "$root/var/lib/streembit" ] ||
    fail "dpkg -P left /etc/streembit or /var/lib/streembit"
[ ! -e "$root/etc/systemd/system/multi-user.target.wants/streembit.service" ] ||
    fail "dpkg -P left the unit enabled"
echo "install, reinstall, remove and purge behave"
