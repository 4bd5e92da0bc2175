#!/usr/bin/env bash
# Installs what the test suite needs on a Debian-like machine, idempotently:
# each step checks first and does nothing when the thing is already there.
set -euo pipefail

APT_PACKAGES=(socat mosquitto mosquitto-clients)
# bridges: openssl makes the test CA and broker certificate for the MQTT TLS test.
APT_PACKAGES+=(openssl)
# lossy-network tests: test hosts in network namespaces (ip netns, veth,
# bridge) and iptables for random loss and partitions.
APT_PACKAGES+=(iproute2 iptables)
# NAT tests (issue 11): routers in namespaces turn forwarding on with sysctl.
APT_PACKAGES+=(procps)
# pycose 1.1 needs cbor2 5: cbor2 6 decodes tagged arrays as tuples,
# which pycose refuses ("Bytes cannot be decoded as COSE message").
PIP_PACKAGES=("pycose==1.1.0" "cbor2==5.6.5")
# deploy (issue 9): the aarch64 cross linker and qemu to run its binary,
# lintian for the .deb packages, systemd for `systemd-analyze verify`.
APT_PACKAGES+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static lintian systemd)
# deploy: a minimal Debian root to install the amd64 .deb into, and
# systemd-nspawn to boot it with systemd (tests/tests/systemd_container.rs).
APT_PACKAGES+=(debootstrap systemd-container)
# bridges: pymodbus is the real Modbus peer in the tests (RTU over a socat
# PTY pair, TCP on loopback); pyserial is its serial transport.
PIP_PACKAGES+=("pymodbus==3.16.1" "pyserial==3.5")
# discovery (issue 22): a third party's mDNS stack forges announcements
# (python-zeroconf; cryptography makes real keys for them, and comes with
# pycose already), and dnsmasq (the binary only, no service) serves seed
# TXT records in a namespace.
PIP_PACKAGES+=("zeroconf==0.154.0")
APT_PACKAGES+=(dnsmasq-base)
# web console (issue 21): headless Chromium driven over WebDriver by the
# selenium client (Debian's chromium and chromium-driver; selenium is told
# their paths, so it downloads nothing).
APT_PACKAGES+=(chromium chromium-driver)
PIP_PACKAGES+=("selenium==4.51.0")
# deploy: the Yocto layer's linter.
PIP_PACKAGES+=("oelint-adv==9.11.2")

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

pip_missing=()
for p in "${PIP_PACKAGES[@]}"; do
    name="${p%%==*}" want="${p#*==}"
    have="$(python3 -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p' || true)"
    [ -n "$have" ] && { [ "$want" = "$p" ] || [ "$have" = "$want" ]; } || pip_missing+=("$p")
done
if ((${#pip_missing[@]})); then
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "${pip_missing[@]}"
fi

rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

# deploy: the aarch64 standard library for the cross build, and cargo-deb
# (pinned; installed once, from source, with its own lock file).
rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu ||
    rustup target add aarch64-unknown-linux-gnu
CARGO_DEB_VERSION=3.8.0
cargo deb --version 2>/dev/null | grep -qF "$CARGO_DEB_VERSION" ||
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
