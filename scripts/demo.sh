#!/usr/bin/env bash
# The main job, today: build the agent, run three agents on loopback that
# find each other through the DHT over QUIC, then seal a signed reading and
# verify it (the envelope every message travels in). Devices as peers and
# `streembit demo` come with the devices issue.
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
h="$(tr -d '\n' < reading.hex)"
last="${h: -1}"
if [ "$last" = "0" ]; then flip=1; else flip=0; fi
echo "${h%?}$flip" > flipped.hex
if "$bin" verify --hex flipped.hex; then echo "flipped envelope accepted?!" >&2; exit 1; fi
echo "(refused, as it must be)"

echo
echo "== three agents on loopback: a seed and two that join through it"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
agent() { # name, port, extra config
    mkdir -p "$work/$1"
    printf 'listen = "127.0.0.1:%s"\n%s' "$2" "$3" > "$work/$1/agent.toml"
    (cd "$work/$1" && exec "$bin" run --config agent.toml 2> agent.log) &
    pids+=($!)
    for _ in $(seq 100); do
        (cd "$work/$1" && "$bin" status --config agent.toml > /dev/null 2>&1) && return 0
        sleep 0.1
    done
    echo "agent $1 did not start; its log:" >&2; cat "$work/$1/agent.log" >&2; exit 1
}
ask() { (cd "$work/$1" && shift && "$bin" "$@" --config agent.toml); }
agent seed 17470 ""
seed_key="$(ask seed id)"
agent alice 17471 "seeds = [\"$seed_key@127.0.0.1:17470\"]"
agent bob 17472 "seeds = [\"$seed_key@127.0.0.1:17470\"]"
alice_key="$(ask alice id)"
echo "== bob looks up alice ($alice_key) in the DHT"
for _ in $(seq 50); do ask bob lookup "$alice_key" 2>/dev/null && break; sleep 0.2; done
echo "== bob's status"
ask bob status
echo "== bob's routing table"
ask bob peers

