#!/usr/bin/env bash
# The README's first command: builds the agent, then runs `streembit demo`:
# five agents on loopback, one a gateway with a simulated Modbus meter and a
# simulated MQTT plug on its embedded broker; readings signed by each
# device's own key, looked up in the DHT, fetched by another agent and
# verified; a write refused for an outsider and applied for a writer; a
# summary at the end. Extra arguments go to `streembit demo` (e.g.
# `--duration 60`, `--keep`). Ctrl-C ends it early, with the summary.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust >= 1.85 (e.g. with rustup), then re-run" >&2
    exit 2
fi
command -v cc >/dev/null || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"; $SUDO apt-get update -qq && $SUDO apt-get install -y -qq build-essential; }

cargo build --release --locked -p streembit-agent --bin streembit
exec ./target/release/streembit demo "$@"
