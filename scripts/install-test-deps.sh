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
# pycose 1.1 needs cbor2 5: cbor2 6 decodes tagged arrays as tuples,
# which pycose refuses ("Bytes cannot be decoded as COSE message").
PIP_PACKAGES=("pycose==1.1.0" "cbor2==5.6.5")
# bridges: pymodbus is the real Modbus peer in the tests (RTU over a socat
# PTY pair, TCP on loopback); pyserial is its serial transport.
PIP_PACKAGES+=("pymodbus==3.16.1" "pyserial==3.5")

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
    have="$(python3 -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')"
    [ -n "$have" ] && { [ "$want" = "$p" ] || [ "$have" = "$want" ]; } || pip_missing+=("$p")
done
if ((${#pip_missing[@]})); then
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "${pip_missing[@]}"
fi

rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
