#!/usr/bin/env bash
# The README's first command: builds the agent, then runs `streembit demo`:
# five agents on loopback, one a gateway with a simulated Modbus meter and a
# simulated MQTT plug on its local broker (mosquitto, which the agent runs:
# installed here when missing); readings signed by each
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
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
command -v cc >/dev/null || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq build-essential; }
# The gateway's MQTT broker: the agent runs the system's mosquitto (in sbin,
# which is not in every user's PATH).
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends mosquitto
    # Only the binary is wanted: Debian's own service would hold port 1883.
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        $SUDO systemctl disable --now mosquitto.service >/dev/null 2>&1 || true
    fi
fi

cargo build --release --locked -p streembit-agent --bin streembit
exec ./target/release/streembit demo "$@"
