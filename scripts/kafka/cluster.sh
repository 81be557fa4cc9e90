#!/usr/bin/env bash
# A 3-node Apache Kafka cluster (KRaft, every node broker and controller) on
# 127.0.0.1, as production clusters are run: replication factor 3,
# min.insync.replicas 2, the internal topics replicated likewise. Called as
# `scripts/kafka.sh <command> --cluster`:
#
#   start            fetch the jars if needed, format, start the three nodes, wait until ready
#   stop             stop every node and delete the data
#   status           say which nodes run
#   brokers          print the bootstrap list (127.0.0.1:9191,127.0.0.1:9192,127.0.0.1:9193)
#   kill N           SIGKILL node N (1-3), keeping its data: a crash
#   restart N        stop node N (SIGTERM: a controlled shutdown) and start it again
#   launch N         start node N again on its kept data, wait until it serves
#   pause N          SIGSTOP node N: it keeps its sockets and answers nothing
#   resume N         SIGCONT node N
#   pid N            print node N's pid
#
# Ports: KAFKA_CLUSTER_PORT (9190) + N for clients, + 10 + N for the controllers.
# Folders: CROWDPARK_KAFKA_CLUSTER_RUN (.cache/kafka-cluster-run) for pids, logs
# and configuration; the data in a temporary folder that `stop` removes.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${CROWDPARK_KAFKA_CACHE:-$ROOT/.cache/kafka}
RUN=${CROWDPARK_KAFKA_CLUSTER_RUN:-$ROOT/.cache/kafka-cluster-run}
BASE=${KAFKA_CLUSTER_PORT:-9190}
NODES=(1 2 3)
cp="$CACHE/libs/*"
read -r -a heap <<<"${KAFKA_HEAP_OPTS:--Xms192m -Xmx384m}"

log() { echo "kafka cluster: $*" >&2; }
client_port() { echo $((BASE + $1)); }
controller_port() { echo $((BASE + 10 + $1)); }
pidfile() { echo "$RUN/node$1/kafka.pid"; }

running() {
    local f
    f=$(pidfile "$1")
    [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

brokers() {
    local list=() n
    for n in "${NODES[@]}"; do list+=("127.0.0.1:$(client_port "$n")"); done
    (IFS=,; echo "${list[*]}")
}

java_opts() {
    echo "${heap[@]}" -XX:+UseG1GC -Djava.awt.headless=true \
        "-Dkafka.logs.dir=$RUN/node$1" "-Dlog4j2.configurationFile=$ROOT/scripts/kafka/log4j2.properties"
}

properties() { # node, data folder
    local voters=() n
    for n in "${NODES[@]}"; do voters+=("$n@127.0.0.1:$(controller_port "$n")"); done
    cat <<PROPS
process.roles=broker,controller
node.id=$1
controller.quorum.voters=$(IFS=,; echo "${voters[*]}")
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$(client_port "$1"),CONTROLLER://127.0.0.1:$(controller_port "$1")
advertised.listeners=PLAINTEXT://127.0.0.1:$(client_port "$1")
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$2/node$1
num.partitions=3
default.replication.factor=3
min.insync.replicas=2
auto.create.topics.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
log.cleaner.backoff.ms=1000
PROPS
}

launch() { # node
    local n=$1 dir=$RUN/node$1
    if running "$n"; then return; fi
    : >"$dir/server.log"
    # shellcheck disable=SC2046
    nohup java -cp "$cp" $(java_opts "$n") kafka.Kafka "$dir/server.properties" >"$dir/kafka.out" 2>&1 &
    echo $! >"$(pidfile "$n")"
}

wait_serving() { # node
    local n=$1 dir=$RUN/node$1
    for _ in $(seq 1 180); do
        if ! running "$n"; then
            log "node $n exited during start-up:"
            tail -n 30 "$dir/kafka.out" "$dir/server.log" >&2 || true
            exit 1
        fi
        if grep -q "Kafka Server started" "$dir/server.log" 2>/dev/null && port_open "$(client_port "$n")"; then
            return
        fi
        sleep 0.5
    done
    log "node $n not ready after 90 s:"
    tail -n 30 "$dir/server.log" >&2 || true
    exit 1
}

start() {
    local n
    for n in "${NODES[@]}"; do
        if running "$n"; then log "already running: $(brokers)"; return; fi
        if port_open "$(client_port "$n")" || port_open "$(controller_port "$n")"; then
            log "port $(client_port "$n") or $(controller_port "$n") is taken; set KAFKA_CLUSTER_PORT"
            exit 1
        fi
    done
    "$ROOT/scripts/kafka.sh" fetch
    local data cluster_id
    data=$(mktemp -d "${TMPDIR:-/tmp}/crowdpark-kafka-cluster.XXXXXX")
    mkdir -p "$RUN"
    echo "$data" >"$RUN/data-dir"
    # shellcheck disable=SC2046
    cluster_id=$(java -cp "$cp" $(java_opts 1) kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
    for n in "${NODES[@]}"; do
        mkdir -p "$RUN/node$n"
        properties "$n" "$data" >"$RUN/node$n/server.properties"
        # shellcheck disable=SC2046
        java -cp "$cp" $(java_opts "$n") kafka.tools.StorageTool format -t "$cluster_id" \
            -c "$RUN/node$n/server.properties" >"$RUN/node$n/format.log" 2>&1 \
            || { log "formatting node $n failed:"; cat "$RUN/node$n/format.log" >&2; exit 1; }
    done
    for n in "${NODES[@]}"; do launch "$n"; done
    for n in "${NODES[@]}"; do wait_serving "$n"; done
    log "ready on $(brokers) (data $data)"
}

end_node() { # node, signal
    local f pid
    f=$(pidfile "$1")
    running "$1" || { rm -f "$f"; return; }
    pid=$(cat "$f")
    kill "-$2" "$pid" 2>/dev/null || true
    kill -CONT "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
}

stop() {
    local n
    for n in "${NODES[@]}"; do end_node "$n" TERM; done
    if [ -f "$RUN/data-dir" ]; then
        rm -rf "$(cat "$RUN/data-dir")"
        rm -f "$RUN/data-dir"
    fi
    log "stopped"
}

node_arg() {
    case "${1:-}" in
        1|2|3) echo "$1" ;;
        *) echo "usage: $0 $2 1|2|3" >&2; exit 2 ;;
    esac
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status)
        up=0
        for n in "${NODES[@]}"; do
            if running "$n"; then echo "node $n running (pid $(cat "$(pidfile "$n")")) on 127.0.0.1:$(client_port "$n")"; up=$((up + 1)); fi
        done
        [ "$up" -gt 0 ] || { echo "not running"; exit 1; } ;;
    brokers) brokers ;;
    kill) n=$(node_arg "${2:-}" kill); end_node "$n" KILL; log "node $n killed (SIGKILL)" ;;
    restart) n=$(node_arg "${2:-}" restart); end_node "$n" TERM; launch "$n"; wait_serving "$n"; log "node $n restarted" ;;
    launch) n=$(node_arg "${2:-}" launch); launch "$n"; wait_serving "$n"; log "node $n started" ;;
    pause) n=$(node_arg "${2:-}" pause); kill -STOP "$(cat "$(pidfile "$n")")"; log "node $n paused (SIGSTOP)" ;;
    resume) n=$(node_arg "${2:-}" resume); kill -CONT "$(cat "$(pidfile "$n")")"; log "node $n resumed (SIGCONT)" ;;
    pid) n=$(node_arg "${2:-}" pid); cat "$(pidfile "$n")" ;;
    *) echo "usage: $0 start|stop|status|brokers|kill N|restart N|launch N|pause N|resume N|pid N" >&2; exit 2 ;;
esac
