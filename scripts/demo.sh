#!/usr/bin/env bash
# The main job, today: build the agent, create an identity, seal a reading
# and verify it — the signed-envelope round trip every later feature rests on.
# (Once the network exists this becomes `streembit demo`.)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust >= 1.85 (e.g. with rustup), then re-run" >&2
    exit 2
fi
command -v cc >/dev/null || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"; $SUDO apt-get update -qq && $SUDO apt-get install -y -qq build-essential; }

cargo build --release --locked -p streembit-agent --bin streembit
bin="$PWD/target/release/streembit"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

echo "== streembit keygen (state in $work/.streembit)"
"$bin" keygen
echo "== streembit id"
"$bin" id
echo '== echo {"temp": 21.5, "unit": "C"} | streembit sign --kind reading --hex'
echo '{"temp": 21.5, "unit": "C"}' | "$bin" sign --kind reading --hex | tee reading.hex
echo "== streembit verify --hex"
"$bin" verify --hex reading.hex
echo "== the same envelope with one byte flipped"
python3 - reading.hex <<'PY' > flipped.hex
import sys
b = bytearray.fromhex(open(sys.argv[1]).read().strip()); b[-1] ^= 1; print(b.hex())
PY
if "$bin" verify --hex flipped.hex; then echo "flipped envelope accepted?!" >&2; exit 1; fi
echo "(refused, as it must be)"
