#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test in release mode (the
# property and end-to-end tests are much faster optimised). Starts a real Apache
# Kafka broker on 127.0.0.1 for the Kafka tests and stops it afterwards, unless
# CROWDPARK_KAFKA_BROKERS points at one already running; and a secured one
# (SASL_SSL, SCRAM, ACLs: `scripts/kafka.sh start --secure`) for
# tests/kafka_secure.rs, unless one runs already.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --release -- -D warnings
echo "== Kubernetes manifests against the Kubernetes JSON schemas"
scripts/validate-kubernetes.sh
echo "== cargo build"
cargo test --release --all-targets --no-run

stops=()
trap 'for s in "${stops[@]+"${stops[@]}"}"; do scripts/kafka.sh stop $s || true; done' EXIT
if [ -z "${CROWDPARK_KAFKA_BROKERS:-}" ]; then
    echo "== starting Apache Kafka"
    scripts/kafka.sh start
    stops+=("")
    export CROWDPARK_KAFKA_BROKERS="127.0.0.1:${KAFKA_PORT:-9092}"
fi
if ! scripts/kafka.sh status --secure >/dev/null; then
    echo "== starting a secured Apache Kafka (SASL_SSL, SCRAM-SHA-512, ACLs)"
    scripts/kafka.sh start --secure
    stops+=(--secure)
fi

echo "== cargo test"
# A failing test's message is then the last thing it prints, not a backtrace
# (CI keeps the tail of the output); every binary runs, so one failure does
# not hide the others.
export RUST_BACKTRACE=0
cargo test --release --all-targets --no-fail-fast
