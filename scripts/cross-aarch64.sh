#!/usr/bin/env bash
# The aarch64 release build and its checks (issue 9), as CI runs them:
#
#   1. cross-compile the release binary for aarch64-unknown-linux-gnu with
#      Debian's cross gcc as the linker, and check it is a stripped AArch64
#      executable of at most 12 MB;
#   2. run it under qemu-aarch64-static: keygen, sign/verify, and envelopes
#      signed on one architecture verified on the other, both ways;
#   3. a mixed network on loopback: two aarch64 agents (under qemu) and two
#      x86-64 agents, each joining through an agent of the other
#      architecture; status and lookups both ways through both CLIs;
#   4. device readings: an aarch64 agent and an x86-64 agent each host a
#      Modbus TCP device (a pymodbus server, as in the tests); each device's
#      signed reading is verified by the other architecture's binary, and
#      each device record is found from the other architecture, naming its
#      gateway, and each device is read over the network (`streembit read
#      KEY`) by an agent of the other architecture.
#
# Needs: scripts/install-test-deps.sh (gcc-aarch64-linux-gnu,
# qemu-user-static, the rustup target). Both release binaries are left in
# the target directory for scripts/deb.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
HOST=x86_64-unknown-linux-gnu
MAX_BYTES=12000000
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# ring's C and assembly parts, for the target.
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# Where qemu finds the aarch64 dynamic loader and glibc (libc6-arm64-cross).
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

# One cargo run for both targets: fat LTO ends in one long single-threaded
# link per binary, and cargo runs the two links side by side.
step "release build, $HOST and $TARGET (the x86-64 one is reused by the amd64 .deb)"
time cargo build --release --locked -p streembit-agent --bin streembit \
    --target "$HOST" --target "$TARGET"

x86="$target_dir/$HOST/release/streembit"
arm_bin="$target_dir/$TARGET/release/streembit"
arm() { qemu-aarch64-static "$arm_bin" "$@"; }

step "the aarch64 binary"
machine="$(readelf -h "$arm_bin" | sed -n 's/^ *Machine: *//p')"
[ "$machine" = "AArch64" ] || fail "$arm_bin is built for '$machine', not AArch64"
readelf -S "$arm_bin" | grep -q '\.symtab' && fail "$arm_bin is not stripped (has .symtab)"
size="$(stat -c %s "$arm_bin")"
echo "stripped aarch64 binary: $size bytes ($(awk "BEGIN{printf \"%.1f\", $size/1000000}") MB; goal <= 12 MB)"
[ "$size" -le "$MAX_BYTES" ] || fail "aarch64 binary is $size bytes, over $MAX_BYTES"
echo "x86-64 binary: $(stat -c %s "$x86") bytes"
arm --version

repo="$PWD"
work="$(mktemp -d)"
pids=()
cleanup() {
    exec 3>&- 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

step "keygen on each architecture"
arm_key="$(arm keygen --out arm.pem)"
x86_key="$("$x86" keygen --out x86.pem)"
for k in "$arm_key" "$x86_key"; do
    [[ "$k" =~ ^[0-9a-f]{64}$ ]] || fail "keygen printed '$k', not a 64-hex public key"
done
[ "$(stat -c %a arm.pem)" = 600 ] || fail "arm.pem has mode $(stat -c %a arm.pem), not 600"
echo "aarch64 key $arm_key"
echo "x86-64 key  $x86_key"

# verify_as BIN FILE EXPECTED_SENDER [verify args...]: the envelope is valid
# and was signed by EXPECTED_SENDER.
verify_as() {
    local bin="$1" file="$2" sender="$3"
    shift 3
    local out
    out="$($bin verify --json "$@" "$file")" || fail "$bin refused $file: $out"
    python3 - "$sender" "$out" <<'EOF' || fail "unexpected verify output: $out"
import json, sys
want, out = sys.argv[1], json.loads(sys.argv[2])
sender = out["sender"]
assert sender == want, f"sender {sender!r}, expected {want!r}"
EOF
}

step "signed readings: aarch64 signs, x86-64 verifies, and the other way"
echo '{"temp": 21.5, "unit": "C", "from": "aarch64"}' | arm sign --kind reading --key arm.pem > arm-reading.cose
echo '{"temp": 19.0, "unit": "C", "from": "x86-64"}' | "$x86" sign --kind reading --key x86.pem > x86-reading.cose
verify_as "$x86" arm-reading.cose "$arm_key"
verify_as "arm" x86-reading.cose "$x86_key"
verify_as "arm" arm-reading.cose "$arm_key"
verify_as "$x86" x86-reading.cose "$x86_key"
"$x86" verify arm-reading.cose | grep -q '"aarch64"' || fail "payload of the aarch64 reading not shown"
echo "both envelopes verified on both architectures"

step "point-to-point (a ping to the x86-64 key, signed on aarch64) and a private network"
echo ping | arm sign --kind ping --key arm.pem --to "$x86_key" --hex > ping.hex
verify_as "$x86" ping.hex "$arm_key" --hex --to "$x86_key"
echo '{"v": 1}' | "$x86" sign --kind reading --key x86.pem --network acme-hq --base64 > acme.b64
verify_as "arm" acme.b64 "$x86_key" --base64 --network acme-hq

step "what must be refused, on both architectures"
for bin in "$x86" arm; do
    $bin verify --hex --to "$arm_key" ping.hex > /dev/null 2>&1 && fail "$bin accepted a ping addressed to another key"
    $bin verify --base64 acme.b64 > /dev/null 2>&1 && fail "$bin accepted a private-network envelope as public"
done
python3 - arm-reading.cose <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[-1] ^= 1  # one bit of the signature
open(p + ".bad", "wb").write(bytes(b))
EOF
for bin in "$x86" arm; do
    set +e
    $bin verify arm-reading.cose.bad > /dev/null 2>&1
    rc=$?
    set -e
    [ "$rc" -eq 1 ] || fail "$bin: a flipped signature bit gave exit code $rc, expected 1"
done
echo "refused: wrong recipient, wrong network, flipped bit"

step "a mixed network on loopback: x86-64 and aarch64 agents"
# A random base port, so that two runs on one machine do not collide.
base=$((20000 + RANDOM % 20000))
# agent NAME ARCH PORT SEED_NAME: start `streembit run` in $work/NAME and
# wait until its API answers.
agent() {
    local name="$1" arch="$2" port="$3" seed="${4:-}" seeds=""
    mkdir -p "$work/$name"
    if [ -n "$seed" ]; then
        seeds="seeds = [\"$(cat "$work/$seed/key")@127.0.0.1:$(cat "$work/$seed/port")\"]"
    fi
    printf 'listen = "127.0.0.1:%s"\n%s\n' "$port" "$seeds" > "$work/$name/agent.toml"
    echo "$port" > "$work/$name/port"
    echo "$arch" > "$work/$name/arch"
    local run=("$x86")
    [ "$arch" = aarch64 ] && run=(qemu-aarch64-static "$arm_bin")
    (cd "$work/$name" && exec "${run[@]}" run --config agent.toml 2> agent.log) &
    pids+=($!)
    for _ in $(seq 300); do
        if ask "$name" "$arch" id > "$work/$name/key" 2>/dev/null &&
            ask "$name" "$arch" status > /dev/null 2>&1; then
            echo "$name ($arch) on 127.0.0.1:$port, key $(cat "$work/$name/key")"
            return 0
        fi
        sleep 0.1
    done
    cat "$work/$name/agent.log" >&2
    fail "agent $name ($arch) did not start"
}
# ask NAME ARCH CMD...: a CLI command, by the ARCH binary, to agent NAME.
ask() {
    local name="$1" arch="$2"
    shift 2
    if [ "$arch" = aarch64 ]; then
        (cd "$work/$name" && qemu-aarch64-static "$arm_bin" "$@" --config agent.toml)
    else
        (cd "$work/$name" && "$x86" "$@" --config agent.toml)
    fi
}
# Two Modbus devices on one simulated Modbus TCP server (unit ids 1 and 2,
# input register 0 = 215 and 190): arm-b hosts the first, x86-c the second.
modbus_port=$((base + 10))
mkfifo "$work/modbus.in"
python3 "$repo/tests/py/modbus_server.py" --tcp-port "$modbus_port" --ids 1,2 \
    < "$work/modbus.in" > "$work/modbus.out" 2> "$work/modbus.err" &
pids+=($!)
exec 3> "$work/modbus.in"
for _ in $(seq 100); do grep -q READY "$work/modbus.out" 2>/dev/null && break; sleep 0.1; done
grep -q READY "$work/modbus.out" || { cat "$work/modbus.err" >&2; fail "the pymodbus server did not start"; }
echo "set 1 ir 0 215" >&3
echo "set 2 ir 0 190" >&3
# bridge NAME DEVICE UNIT: a bridge file beside NAME's agent.toml.
bridge() {
    mkdir -p "$work/$1/bridges.d"
    cat > "$work/$1/bridges.d/sim.toml" <<TOML
[modbus_tcp]
host = "127.0.0.1"
port = $modbus_port

[[modbus_tcp.devices]]
name = "$2"
unit_id = $3
poll_ms = 500
points = [
  { name = "temp", table = "input_register", address = 0, type = "i16", scale = 0.1, unit = "C" },
]
TOML
}
bridge arm-b arm-meter 1
bridge x86-c x86-meter 2

# Each agent joins through one of the other architecture, so QUIC
# handshakes go x86-64 -> aarch64 and aarch64 -> x86-64.
agent seed-arm aarch64 "$base"
agent x86-a x86-64 $((base + 1)) seed-arm
agent arm-b aarch64 $((base + 2)) x86-a
agent x86-c x86-64 $((base + 3)) arm-b
names=(seed-arm x86-a arm-b x86-c)

# lookup FROM_NAME CLI_ARCH TARGET_NAME: FROM_NAME finds TARGET_NAME's
# record, asked through the CLI_ARCH binary; the record carries its port.
lookup() {
    local from="$1" arch="$2" target="$3" out=""
    local key port
    key="$(cat "$work/$target/key")"
    port="$(cat "$work/$target/port")"
    for _ in $(seq 100); do
        out="$(ask "$from" "$arch" lookup "$key" --json 2>&1)" && break
        sleep 0.2
    done
    grep -q "127.0.0.1:$port" <<< "$out" ||
        fail "$from ($arch CLI) did not find $target ($key at port $port): $out"
    echo "$from -> $target ($(cat "$work/$target/arch")) found at 127.0.0.1:$port, asked by the $arch CLI"
}
for from in "${names[@]}"; do
    for target in "${names[@]}"; do
        [ "$from" = "$target" ] && continue
        [ "$(cat "$work/$from/arch")" = "$(cat "$work/$target/arch")" ] && continue
        lookup "$from" "$(cat "$work/$from/arch")" "$target"
    done
done
# The API is HTTP on a Unix socket: either architecture's CLI talks to
# either architecture's agent.
lookup arm-b x86-64 x86-c
lookup x86-c aarch64 seed-arm

step "status of every agent, through the CLI of the other architecture"
for name in "${names[@]}"; do
    other=aarch64
    [ "$(cat "$work/$name/arch")" = aarch64 ] && other=x86-64
    out="$(ask "$name" "$other" status --json)" || fail "status of $name: $out"
    python3 - "$name" "$(cat "$work/$name/key")" "$out" <<'EOF' || fail "status of $name: $out"
import json, sys
name, key, s = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
assert s["key"] == key, f"status of {name} names key {s['key']}, not {key}"
assert s["network"] == "public", s
assert s["table_size"] >= 1, f"{name} knows no peer: {s}"
print(f"{name}: {s['network']} network, {s['table_size']} contacts, {s['connections']} connections")
EOF
done
echo "mixed network OK"

step "device readings signed on one architecture, verified on the other"
# device_key GATEWAY ARCH DEVICE VALUE: waits until GATEWAY's device reads
# VALUE, prints the device's key.
device_key() {
    local out=""
    for _ in $(seq 100); do
        out="$(ask "$1" "$2" devices --json 2>&1)" &&
            python3 - "$3" "$4" "$out" <<'EOF' 2>/dev/null && return 0
import json, sys
name, value, devices = sys.argv[1], float(sys.argv[2]), json.loads(sys.argv[3])
d = next(d for d in devices if d["name"] == name)
assert d["points"]["temp"]["value"] == value
print(d["key"])
EOF
        sleep 0.2
    done
    fail "$1 ($2 CLI): $3 never read $4: $out"
}
arm_dev="$(device_key arm-b aarch64 arm-meter 21.5)"
x86_dev="$(device_key x86-c x86-64 x86-meter 19)"
echo "arm-meter $arm_dev on arm-b (aarch64); x86-meter $x86_dev on x86-c (x86-64)"
# reading GATEWAY DEVICE_KEY FILE: the device's latest signed reading, hex.
reading() {
    ask "$1" "$(cat "$work/$1/arch")" read "$2" temp --cose | awk '$1 == "temp" {print $2}' > "$3"
    [ -s "$3" ] || fail "no signed reading of $2 on $1"
}
reading arm-b "$arm_dev" arm-meter.hex
reading x86-c "$x86_dev" x86-meter.hex
# check_reading BIN FILE DEVICE_KEY VALUE: valid, signed by the device's own key.
check_reading() {
    local out
    out="$($1 verify --hex --json "$2")" || fail "$1 refused $2: $out"
    python3 - "$3" "$4" "$out" <<'EOF' || fail "$1 on $2: $out"
import json, sys
key, value, r = sys.argv[1], float(sys.argv[2]), json.loads(sys.argv[3])
assert r["valid"] and r["kind"] == "reading" and r["sender"] == key, r
assert r["payload"]["value"] == value, r["payload"]
EOF
}
check_reading "$x86" arm-meter.hex "$arm_dev" 21.5
check_reading arm x86-meter.hex "$x86_dev" 19
echo "arm-meter's reading (signed on aarch64) verified by x86-64; x86-meter's by aarch64"

step "device records found from the other architecture, naming their gateway"
# device_lookup FROM DEVICE_KEY GATEWAY
device_lookup() {
    local arch out="" gw
    arch="$(cat "$work/$1/arch")"
    gw="$(cat "$work/$3/key")"
    for _ in $(seq 100); do
        out="$(ask "$1" "$arch" lookup "$2" --json 2>&1)" &&
            python3 -c 'import json, sys; r = json.loads(sys.argv[1]); assert r["kind"] == "device" and r["gateway"] == sys.argv[2]' "$out" "$gw" 2>/dev/null &&
            { echo "$1 ($arch) -> device $2: gateway $3"; return 0; }
        sleep 0.2
    done
    fail "$1 ($arch) did not find device $2 hosted by $3: $out"
}
device_lookup x86-a "$arm_dev" arm-b
device_lookup seed-arm "$x86_dev" x86-c

step "remote reads: a device read over the network by an agent of the other architecture"
# remote_read FROM DEVICE_KEY VALUE: FROM's agent fetches the reading from
# the device's gateway and verifies it with the device key.
remote_read() {
    local arch out=""
    arch="$(cat "$work/$1/arch")"
    for _ in $(seq 100); do
        out="$(ask "$1" "$arch" read "$2" temp --json 2>&1)" &&
            python3 -c 'import json, sys; d = json.loads(sys.argv[1]); assert any(r["point"] == "temp" and float(r["value"]) == float(sys.argv[2]) for r in d["readings"])' "$out" "$3" 2>/dev/null &&
            { echo "$1 ($arch) read device $2 over the network: temp $3"; return 0; }
        sleep 0.2
    done
    fail "$1 ($arch) could not read device $2 remotely: $out"
}
remote_read x86-a "$arm_dev" 21.5
remote_read seed-arm "$x86_dev" 19
echo "device readings OK"
