#!/usr/bin/env bash
# The web console's extra resident memory (README, "The web console"): two
# release agents with the same workload (an MQTT plug, 4 points, 5 readings
# a second), one with the console off, one with it on and 4 pages open.
# Needs `cargo build --release -p streembit-agent`, mosquitto and curl.
set -eu
BIN="$(cd "$(dirname "$0")/.." && pwd)/target/release/streembit"
WORK="$(mktemp -d)"
cd "$WORK" && mkdir -p a/bridges.d b/bridges.d
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
mosquitto -p $PORT >/dev/null 2>&1 & MOS=$!
sleep 0.5
for d in a b; do
cat > $d/bridges.d/plug.toml <<T
[mqtt]
host = "127.0.0.1"
port = $PORT
client_id = "gw-$d"
[[mqtt.devices]]
name = "plug"
points = [
  { name = "power", topic = "tele/plug/SENSOR", pointer = "/P", type = "float", unit = "W" },
  { name = "voltage", topic = "tele/plug/SENSOR", pointer = "/V", type = "float", unit = "V" },
  { name = "current", topic = "tele/plug/SENSOR", pointer = "/A", type = "float", unit = "A" },
  { name = "energy", topic = "tele/plug/SENSOR", pointer = "/E", type = "float", unit = "kWh" },
]
T
done
printf 'listen = "127.0.0.1:0"\nlog_level = "warn"\n[mqtt]\nembedded = false\n[discovery]\nmdns = false\n[web]\nenabled = false\n' > a/agent.toml
printf 'listen = "127.0.0.1:0"\nlog_level = "warn"\n[mqtt]\nembedded = false\n[discovery]\nmdns = false\n[web]\nlisten = "127.0.0.1:17481"\n' > b/agent.toml
(cd a && exec $BIN run --config agent.toml 2>log) & echo $! > a/pid
(cd b && exec $BIN run --config agent.toml 2>log) & echo $! > b/pid
sleep 2
( i=0; while [ $i -lt 900 ]; do mosquitto_pub -p $PORT -t tele/plug/SENSOR -m "{\"P\":$((i%50)).5,\"V\":230.$((i%9)),\"A\":0.$((i%7)),\"E\":$i.0}"; i=$((i+1)); sleep 0.2; done ) & PUB=$!
rss() { grep VmRSS /proc/$(cat $1/pid)/status | awk '{print $2}'; }
sleep 60
echo "t=60s  console off: $(rss a) KiB   console on, no page: $(rss b) KiB"
URL=$(cd b && $BIN console --config agent.toml | head -1); TOKEN=${URL##*token=}
curl -s -c "$WORK/cj" -H 'Content-Type: application/json' -d "{\"token\":\"$TOKEN\"}" http://127.0.0.1:17481/login >/dev/null
STREAMS=""
for n in 1 2 3 4; do curl -s -N -b "$WORK/cj" http://127.0.0.1:17481/api/events > /dev/null & STREAMS="$STREAMS $!"; done
for n in $(seq 1 20); do for p in / /app.js /uPlot.iife.min.js /api/v1/status /api/v1/devices "/api/history?prefix="; do curl -s -b "$WORK/cj" "http://127.0.0.1:17481$p" >/dev/null; done; done
sleep 60
echo "t=120s console off: $(rss a) KiB   console on, 4 pages open: $(rss b) KiB"
kill $PUB $STREAMS $(cat a/pid) $(cat b/pid) $MOS 2>/dev/null || true
rm -rf "$WORK"
