#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: install test dependencies,
# then formatting, lints, and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-test-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The DHT simulator and its bench build only with the `sim` feature.
cargo clippy -p streembit-agent --all-targets --features sim --locked -- -D warnings
# The multi-process tests run the real binary: build it first.
cargo build --workspace --bins --locked
cargo test --workspace --locked
# Every fuzz target for 20 s on its saved corpus (about 2.5 min plus the
# fuzz build); a crash fails CI and leaves the input in fuzz/artifacts/.
./scripts/fuzz-smoke.sh
