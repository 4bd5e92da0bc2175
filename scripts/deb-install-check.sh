#!/usr/bin/env bash
# Installs the amd64 .deb (from scripts/deb.sh) into a fresh Debian 12
# minimal root made by debootstrap, and checks what the maintainer scripts
# do: the user `streembit` with the groups dialout and i2c, the unit
# enabled, the conffile kept across a reinstall and after `dpkg -r`, and
# everything gone after `dpkg -P`. No systemd runs in the chroot, so the
# service itself is not started here.
#
# Needs root (chroot) and debootstrap; the Debian mirror is the one apt uses.
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

# The mirror apt already uses (deb822 sources first, then sources.list);
# DEBIAN_MIRROR overrides it.
mirror="${DEBIAN_MIRROR:-$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk '/^URIs:/ {u = $2} /^Suites:/ && $2 !~ /security/ && u {print u; exit}')}"
[ -n "$mirror" ] || mirror="$(awk '$1 == "deb" && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)"
[ -n "$mirror" ] || fail "no Debian mirror found in apt's sources: set DEBIAN_MIRROR"

root="$(mktemp -d)"
trap 'rm -rf --one-file-system "$root"' EXIT
step "debootstrap bookworm (minbase) into $root"
debootstrap --variant=minbase --include=adduser,init-system-helpers \
    bookworm "$root" "$mirror" > "$root.log" 2>&1 ||
    { tail -20 "$root.log" >&2; fail "debootstrap failed"; }
rm -f "$root.log"
cp "$deb" "$root/tmp/streembit.deb"
in_root() { chroot "$root" /bin/sh -c "$1"; }

step "dpkg -i $(basename "$deb")"
in_root 'dpkg -i /tmp/streembit.deb' > /dev/null
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
