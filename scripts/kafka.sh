#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft) on 127.0.0.1 for tests and local runs.
#
#   scripts/kafka.sh start    fetch the jars if needed, format a fresh data folder, start, wait until ready
#   scripts/kafka.sh stop     stop the broker and delete its data
#   scripts/kafka.sh halt     stop the broker and keep its data (an outage)
#   scripts/kafka.sh resume   start it again on the kept data
#   scripts/kafka.sh status   say whether it runs
#
# The broker's jars come from Maven Central through scripts/kafka/pom.xml and are
# cached in .cache/kafka (git-ignored); a second start reuses them. Data lives in
# a temporary folder that `stop` removes. CROWDPARK_KAFKA_RUN names the folder for
# the pid, logs and configuration, so a second broker can run beside the first. Ports: KAFKA_PORT (9092) for clients,
# KAFKA_CONTROLLER_PORT (9093) for the KRaft controller; KAFKA_HEAP_OPTS the JVM heap.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${CROWDPARK_KAFKA_CACHE:-$ROOT/.cache/kafka}
RUN=${CROWDPARK_KAFKA_RUN:-$ROOT/.cache/kafka-run}
PORT=${KAFKA_PORT:-9092}
CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
PIDFILE=$RUN/kafka.pid
cp="$CACHE/libs/*"
read -r -a heap <<<"${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
java_opts=("${heap[@]}" -XX:+UseG1GC -Djava.awt.headless=true
    "-Dkafka.logs.dir=$RUN" "-Dlog4j2.configurationFile=$ROOT/scripts/kafka/log4j2.properties")

log() { echo "kafka.sh: $*" >&2; }

fetch() {
    if [ -f "$CACHE/libs/.complete" ]; then
        return
    fi
    command -v mvn >/dev/null || { log "Maven (mvn) is needed to fetch Apache Kafka"; exit 1; }
    command -v java >/dev/null || { log "Java 17+ is needed to run Apache Kafka"; exit 1; }
    log "fetching Apache Kafka jars from Maven Central into $CACHE/libs"
    rm -rf "$CACHE/libs"
    mkdir -p "$CACHE"
    if ! mvn -q -B -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$CACHE/libs" >"$CACHE/mvn.log" 2>&1; then
        log "could not fetch Apache Kafka from Maven Central (see $CACHE/mvn.log)."
        log "Fallback: a Kafka-compatible broker from crates.io, e.g."
        log "  cargo install nisshi@0.8.1 --locked --no-default-features --features dynostore,libsql"
        log "  nisshi broker --listener-url tcp://127.0.0.1:$PORT --advertised-listener-url tcp://127.0.0.1:$PORT --storage-engine memory://nisshi/"
        exit 1
    fi
    touch "$CACHE/libs/.complete"
}

running() {
    [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
    if running; then
        log "already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"
        return
    fi
    if port_open "$PORT"; then
        log "port $PORT is taken by another process; set KAFKA_PORT"
        exit 1
    fi
    fetch
    mkdir -p "$RUN"
    local data
    data=$(mktemp -d "${TMPDIR:-/tmp}/crowdpark-kafka.XXXXXX")
    echo "$data" >"$RUN/data-dir"
    cat >"$RUN/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data/logs
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.cleaner.backoff.ms=1000
PROPS
    local cluster_id
    cluster_id=$(java -cp "$cp" "${java_opts[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
    java -cp "$cp" "${java_opts[@]}" kafka.tools.StorageTool format -t "$cluster_id" \
        -c "$RUN/server.properties" --standalone >"$RUN/format.log" 2>&1 \
        || { log "formatting storage failed:"; cat "$RUN/format.log" >&2; exit 1; }
    launch
}

# Starts the broker on the configuration and data `start` prepared, and waits
# until it is ready.
launch() {
    local data
    data=$(cat "$RUN/data-dir")
    : >"$RUN/server.log"
    nohup java -cp "$cp" "${java_opts[@]}" kafka.Kafka "$RUN/server.properties" >"$RUN/kafka.out" 2>&1 &
    echo $! >"$PIDFILE"
    # Ready means the broker says it started and its client port answers.
    for _ in $(seq 1 120); do
        if ! running; then
            log "broker exited during start-up:"
            tail -30 "$RUN/kafka.out" "$RUN/server.log" >&2 || true
            exit 1
        fi
        if grep -q "Kafka Server started" "$RUN/server.log" 2>/dev/null && port_open "$PORT"; then
            log "ready on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), data $data)"
            return
        fi
        sleep 0.5
    done
    log "broker not ready after 60 s:"
    tail -30 "$RUN/server.log" >&2 || true
    stop
    exit 1
}

# Stops the broker process (SIGTERM, then SIGKILL after 30 s); $1 says how.
end_process() {
    if running; then
        local pid
        pid=$(cat "$PIDFILE")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -9 "$pid" 2>/dev/null || true
        log "$1 (pid $pid)"
    fi
    rm -f "$PIDFILE"
}

# Stops the broker and keeps its data, for `resume`.
halt() {
    end_process "halted; data kept"
}

resume() {
    if running; then
        log "already running (pid $(cat "$PIDFILE"))"
        return
    fi
    [ -f "$RUN/data-dir" ] || { log "nothing to resume: run start first"; exit 1; }
    launch
}

stop() {
    end_process "stopped"
    if [ -f "$RUN/data-dir" ]; then
        rm -rf "$(cat "$RUN/data-dir")"
        rm -f "$RUN/data-dir"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    halt) halt ;;
    resume) resume ;;
    status)
        if running; then echo "running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; else echo "not running"; exit 1; fi ;;
    fetch) fetch ;;
    *) echo "usage: $0 start|stop|halt|resume|status|fetch" >&2; exit 2 ;;
esac
