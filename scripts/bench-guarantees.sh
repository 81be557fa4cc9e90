#!/usr/bin/env bash
# Throughput of `crowdpark run` in at_least_once and exactly_once mode over the
# same input, measured in the same run against a broker on 127.0.0.1.
#
#   scripts/kafka.sh start
#   scripts/bench-guarantees.sh [messages (300000)] [rounds (3)]
#
# Fills fresh input topics with the simulator's mix, then per round and mode
# starts `crowdpark run` on its own output topics and consumer group, and times
# from its first consumed message to the last (events/s from its own metrics).
# Prints each measurement and the median ratio exactly_once / at_least_once.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-300000}
ROUNDS=${2:-3}
BROKERS=${CROWDPARK_KAFKA_BROKERS:-127.0.0.1:9092}
BIN=target/release/crowdpark
cargo build --release --quiet --bin crowdpark

prefix="bench-guarantees-$$"
export CROWDPARK_KAFKA__BROKERS=$BROKERS
export CROWDPARK_TOPICS__CROWD_COUNTS=$prefix.crowd.counts
export CROWDPARK_TOPICS__PARKING_EVENTS=$prefix.parking.events
export CROWDPARK_TOPICS__PAYMENTS=$prefix.payments

outputs() { # $1: prefix for the run's own topics and group
    export CROWDPARK_TOPICS__CROWD_ALERTS=$1.crowd.alerts
    export CROWDPARK_TOPICS__CROWD_DENSITY=$1.crowd.density
    export CROWDPARK_TOPICS__PARKING_AVAILABILITY=$1.parking.availability
    export CROWDPARK_TOPICS__PAYMENTS_STATS=$1.payments.stats
    export CROWDPARK_TOPICS__DEADLETTER=$1.deadletter
    export CROWDPARK_TOPICS__STATE=$1.state
    export CROWDPARK_TOPICS__PAYMENTS_BY_ZONE=$1.payments-by-zone
    export CROWDPARK_KAFKA__GROUP_ID=$1
    export CROWDPARK_KAFKA__INSTANCE_ID=$1
}

consumed() { # $1: address
    curl -s "http://$1/metrics" | awk -v p="$prefix" '
        $1 ~ /^crowdpark_events_consumed_total\{/ && index($1, p ".") && $1 !~ /payments-by-zone/ { s += $2 }
        END { printf "%d\n", s }'
}

outputs "$prefix-input"
$BIN topics create >/dev/null
echo "filling input: $N messages"
$BIN simulate --brokers "$BROKERS" --rate 0 --messages "$N" >/dev/null

declare -A results
for round in $(seq 1 "$ROUNDS"); do
    for mode in at_least_once exactly_once; do
        outputs "$prefix-$mode-$round"
        $BIN topics create >/dev/null
        log=$(mktemp)
        CROWDPARK_KAFKA__PROCESSING_GUARANTEE=$mode RUST_LOG=warn \
            $BIN run --listen 127.0.0.1:0 >"$log" 2>/dev/null &
        pid=$!
        trap 'kill $pid 2>/dev/null || true' EXIT
        addr=""
        for _ in $(seq 1 300); do
            addr=$(grep -o 'HTTP on http://[0-9.:]*' "$log" | head -1 | sed 's|HTTP on http://||') || true
            [ -n "$addr" ] && break
            sleep 0.1
        done
        [ -n "$addr" ] || { echo "run did not start"; cat "$log"; exit 1; }
        while [ "$(consumed "$addr")" -eq 0 ]; do sleep 0.05; done
        start=$(date +%s.%N); c0=$(consumed "$addr")
        while [ "$(consumed "$addr")" -lt "$N" ]; do sleep 0.05; done
        end=$(date +%s.%N)
        rate=$(echo "($N - $c0) / ($end - $start)" | bc -l)
        results[$mode]+="$rate "
        printf "round %d %-14s %8.0f events/s\n" "$round" "$mode" "$rate"
        kill -TERM $pid; wait $pid || true
        rm -f "$log"
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
alo=$(echo "${results[at_least_once]}" | median)
eos=$(echo "${results[exactly_once]}" | median)
printf "median: at_least_once %.0f events/s, exactly_once %.0f events/s, ratio %.2f\n" \
    "$alo" "$eos" "$(echo "$eos / $alo" | bc -l)"
