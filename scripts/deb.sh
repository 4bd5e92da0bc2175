#!/usr/bin/env bash
# Debian packages (issue 9), as CI builds them: cargo-deb packs the release
# binaries that scripts/cross-aarch64.sh built (x86-64 -> amd64, aarch64 ->
# arm64; nothing is compiled again), then each .deb's control data and
# contents are checked and lintian must report no error.
#
# The packages land in <target dir>/debian/. Metadata: [package.metadata.deb]
# in agent/Cargo.toml; maintainer script: debian/postinst.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
out="$target_dir/debian"
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

x86="$target_dir/x86_64-unknown-linux-gnu/release/streembit"
for bin in "$x86" "$target_dir/aarch64-unknown-linux-gnu/release/streembit"; do
    [ -x "$bin" ] || fail "$bin not found: run scripts/cross-aarch64.sh first"
done

# The man page and bash completions come from the clap definition; they do
# not depend on the architecture, so the x86-64 binary writes both copies.
for dir in "$target_dir/x86_64-unknown-linux-gnu/release" "$target_dir/aarch64-unknown-linux-gnu/release"; do
    "$x86" man | gzip -9n > "$dir/streembit.1.gz"
    "$x86" completions bash > "$dir/streembit.bash"
done

rm -rf "$out"
mkdir -p "$out"
step "cargo deb, amd64"
# --no-strip: the release profile already strips (strip = "symbols").
cargo deb -p streembit-agent --no-build --no-strip --locked \
    --target x86_64-unknown-linux-gnu --output "$out/"
step "cargo deb, arm64 (from the cross-compiled binary)"
cargo deb -p streembit-agent --no-build --no-strip --locked \
    --target aarch64-unknown-linux-gnu --output "$out/"

version="$(cargo metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "streembit-agent"))')"

# check DEB ARCH ELF_MACHINE
check() {
    local deb="$1" arch="$2" machine="$3" x
    step "$(basename "$deb")"
    [ -f "$deb" ] || fail "$deb was not built"
    local info contents
    info="$(dpkg-deb -I "$deb")"
    contents="$(dpkg-deb -c "$deb" | awk '{print $1, $6}')"
    for x in "Package: streembit" "Version: $version-1" "Architecture: $arch" "Section: net"; do
        grep -qxF " $x" <<< "$info" || fail "$deb: control has no '$x'"
    done
    grep -q '^ Depends: .*libc6' <<< "$info" || fail "$deb: no libc6 dependency"
    grep -q '^ Depends: .*adduser' <<< "$info" || fail "$deb: no adduser dependency (postinst uses it)"
    for x in "-rwxr-xr-x ./usr/bin/streembit" \
        "-rw-r--r-- ./etc/streembit/agent.toml" \
        "-rw-r--r-- ./usr/share/man/man1/streembit.1.gz" \
        "-rw-r--r-- ./usr/share/bash-completion/completions/streembit" \
        "-rw-r--r-- ./usr/share/doc/streembit/copyright" \
        "-rw-r--r-- ./usr/share/doc/streembit/examples/bridges.d/sdm120.toml" \
        "-rw-r--r-- ./usr/share/doc/streembit/examples/bridges.d/climate-i2c.toml" \
        "-rw-r--r-- ./usr/share/doc/streembit/examples/bridges.d/tasmota-plug.toml" \
        "-rw-r--r-- ./usr/share/doc/streembit/examples/notify-reload.conf"; do
        grep -qxF -- "$x" <<< "$contents" || fail "$deb: no '$x' in:
$contents"
    done
    grep -Eq '^-rw-r--r-- \./(usr/)?lib/systemd/system/streembit\.service$' <<< "$contents" ||
        fail "$deb: no systemd unit"
    # Bridge files start devices: none may be installed where the agent reads them.
    if grep -q 'etc/streembit/bridges\.d/.' <<< "$contents"; then
        fail "$deb: installs a bridge file into /etc/streembit/bridges.d"
    fi

    local tmp
    tmp="$(mktemp -d)"
    dpkg-deb -x "$deb" "$tmp/root"
    dpkg-deb -e "$deb" "$tmp/control"
    grep -qxF /etc/streembit/agent.toml "$tmp/control/conffiles" ||
        fail "$deb: /etc/streembit/agent.toml is not a conffile"
    grep -q 'adduser .*--system .*streembit' "$tmp/control/postinst" ||
        fail "$deb: postinst does not create the streembit user"
    grep -q 'deb-systemd-helper' "$tmp/control/postinst" ||
        fail "$deb: postinst does not enable the unit"
    local unit
    unit="$(find "$tmp/root" -name streembit.service)"
    cmp -s "$unit" systemd/streembit.service || fail "$deb: the unit differs from systemd/streembit.service"
    cmp -s "$tmp/root/etc/streembit/agent.toml" etc/agent.example.toml ||
        fail "$deb: agent.toml differs from etc/agent.example.toml"
    local m
    m="$(readelf -h "$tmp/root/usr/bin/streembit" | sed -n 's/^ *Machine: *//p')"
    [[ "$m" == "$machine"* ]] || fail "$deb: /usr/bin/streembit is for '$m', not $machine"
    rm -rf "$tmp"

    # lintian: errors fail the build; warnings are listed (README, "Debian package").
    lintian --fail-on error --tag-display-limit 0 "$deb" ||
        fail "lintian reports errors for $deb"
    echo "$(basename "$deb"): $(stat -c %s "$deb") bytes, contents and control OK, lintian: no errors"
}

check "$out/streembit_${version}-1_amd64.deb" amd64 "Advanced Micro Devices X86-64"
check "$out/streembit_${version}-1_arm64.deb" arm64 "AArch64"
