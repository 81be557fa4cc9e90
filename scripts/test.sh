#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test in release mode (the
# property and end-to-end tests are much faster optimised).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --release -- -D warnings
echo "== cargo test"
cargo test --release --all-targets
