#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft) on 127.0.0.1 for tests and local runs.
#
#   scripts/kafka.sh start    fetch the jars if needed, format a fresh data folder, start, wait until ready
#   scripts/kafka.sh stop     stop the broker and delete its data
#   scripts/kafka.sh halt     stop the broker and keep its data (an outage)
#   scripts/kafka.sh resume   start it again on the kept data
#   scripts/kafka.sh status   say whether it runs
#
# With --cluster (e.g. `scripts/kafka.sh start --cluster`) the commands of
# scripts/kafka/cluster.sh run a 3-node cluster (replication factor 3,
# min.insync.replicas 2) on ports 9191-9193, with kill/restart/pause/resume of
# one node for the failover tests.
#
# With --secure (e.g. `scripts/kafka.sh start --secure`) the same commands run a
# second, locked-down broker beside the first, as a production cluster is set up:
# a private CA and a broker certificate made with openssl at start (SAN 127.0.0.1
# and localhost), one SASL_SSL listener with SCRAM-SHA-512 users created at format
# time, the StandardAuthorizer with `allow.everyone.if.no.acl.found=false`, and
# super user `admin`. Its extra commands:
#
#   scripts/kafka.sh acl --secure grant|revoke|list [kafka-acls options]
#       e.g. acl --secure grant --allow-principal User:crowdpark --operation Read --topic crowd.headcounts
#   scripts/kafka.sh user --secure NAME    create a SCRAM-SHA-512 user; its password is in $RUN/users/NAME
#
# Its files, under $RUN (.cache/kafka-secure-run): tls/ca.pem (the CA clients trust),
# users/<name> (passwords, mode 600), admin.properties (for Kafka's own tools). A
# second listener on KAFKA_MISMATCH_PORT (9096) presents a certificate for another
# host name, so a client's host-name check can be tested on 127.0.0.1. A third,
# on KAFKA_OAUTH_PORT (9097), takes SASL OAUTHBEARER with the broker's own
# unsecured JWT validator: a token names its principal, for testing a client's
# OAUTHBEARER login without an identity provider (never in production).
#
# The broker's jars come from Maven Central through scripts/kafka/pom.xml and are
# cached in .cache/kafka (git-ignored); a second start reuses them. Data lives in
# a temporary folder that `stop` removes. CROWDPARK_KAFKA_RUN names the folder for
# the pid, logs and configuration, so a second broker can run beside the first. Ports: KAFKA_PORT (9092; 9094
# with --secure) for clients, KAFKA_CONTROLLER_PORT (9093; 9095) for the KRaft
# controller; KAFKA_HEAP_OPTS the JVM heap.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECURE=0
args=()
CLUSTER=0
for arg in "$@"; do
    case "$arg" in
        --secure) SECURE=1 ;;
        --cluster) CLUSTER=1 ;;
        *) args+=("$arg") ;;
    esac
done
set -- "${args[@]+"${args[@]}"}"
# Three nodes, replicated as in production: scripts/kafka/cluster.sh.
if [ "$CLUSTER" = 1 ]; then
    exec "$ROOT/scripts/kafka/cluster.sh" "$@"
fi
CACHE=${CROWDPARK_KAFKA_CACHE:-$ROOT/.cache/kafka}
if [ "$SECURE" = 1 ]; then
    RUN=${CROWDPARK_KAFKA_RUN:-$ROOT/.cache/kafka-secure-run}
    PORT=${KAFKA_SECURE_PORT:-9094}
    CONTROLLER_PORT=${KAFKA_SECURE_CONTROLLER_PORT:-9095}
    MISMATCH_PORT=${KAFKA_MISMATCH_PORT:-9096}
    OAUTH_PORT=${KAFKA_OAUTH_PORT:-9097}
else
    RUN=${CROWDPARK_KAFKA_RUN:-$ROOT/.cache/kafka-run}
    PORT=${KAFKA_PORT:-9092}
    CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
fi
PIDFILE=$RUN/kafka.pid
cp="$CACHE/libs/*"
read -r -a heap <<<"${KAFKA_HEAP_OPTS:--Xms256m -Xmx$([ "$SECURE" = 1 ] && echo 512m || echo 1g)}"
java_opts=("${heap[@]}" -XX:+UseG1GC -Djava.awt.headless=true
    "-Dkafka.logs.dir=$RUN" "-Dlog4j2.configurationFile=$ROOT/scripts/kafka/log4j2.properties")

log() { echo "kafka.sh: $*" >&2; }

fetch() {
    # The marker holds the pom's checksum, so a changed pom fetches again.
    local want
    want=$(sha256sum "$ROOT/scripts/kafka/pom.xml" | cut -d' ' -f1)
    if [ "$(cat "$CACHE/libs/.complete" 2>/dev/null)" = "$want" ]; then
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
    echo "$want" >"$CACHE/libs/.complete"
}

running() {
    [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The settings both brokers share; $1 is the data folder.
common_properties() {
    cat <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
log.dirs=$1/logs
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
}

plain_properties() {
    {
        common_properties "$1"
        cat <<PROPS
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
PROPS
    } >"$RUN/server.properties"
}

# The secured broker: clients on SASL_SSL (SCRAM-SHA-512), the controller on
# mutual TLS (its principal, the broker certificate's CN, is a super user, so no
# anonymous principal needs rights), every other principal only what ACLs grant.
secure_properties() {
    make_certificates
    local store_pass
    store_pass=$(cat "$RUN/tls/store-pass")
    {
        common_properties "$1"
        cat <<PROPS
listeners=SASL_SSL://127.0.0.1:$PORT,MISMATCH://127.0.0.1:$MISMATCH_PORT,OAUTH://127.0.0.1:$OAUTH_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=SASL_SSL://127.0.0.1:$PORT,MISMATCH://127.0.0.1:$MISMATCH_PORT,OAUTH://127.0.0.1:$OAUTH_PORT
listener.security.protocol.map=SASL_SSL:SASL_SSL,MISMATCH:SASL_SSL,OAUTH:SASL_SSL,CONTROLLER:SSL
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(password admin)";
listener.name.mismatch.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER
listener.name.oauth.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="admin";
ssl.keystore.type=PKCS12
ssl.keystore.location=$RUN/tls/broker.p12
ssl.keystore.password=$store_pass
ssl.truststore.type=PEM
ssl.truststore.location=$RUN/tls/ca.pem
listener.name.mismatch.ssl.keystore.location=$RUN/tls/mismatch.p12
listener.name.mismatch.ssl.keystore.password=$store_pass
listener.name.controller.ssl.client.auth=required
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:CN=broker
PROPS
    } >"$RUN/server.properties"
    cat >"$RUN/admin.properties" <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(password admin)";
ssl.truststore.type=PEM
ssl.truststore.location=$RUN/tls/ca.pem
PROPS
    chmod 600 "$RUN/server.properties" "$RUN/admin.properties"
}

# A user's password: made once per run folder, kept in $RUN/users/<name>.
password() {
    local file=$RUN/users/$1
    if [ ! -f "$file" ]; then
        mkdir -p "$RUN/users"
        chmod 700 "$RUN/users"
        (umask 077 && openssl rand -hex 16 >"$file")
    fi
    cat "$file"
}

# A private CA, the broker's certificate (SAN 127.0.0.1 and localhost) and a
# second one for a host name no client uses, each with its key in a PKCS12
# keystore for the broker. Made fresh at every start: nothing here is kept.
make_certificates() {
    command -v openssl >/dev/null || { log "openssl is needed for --secure"; exit 1; }
    local tls=$RUN/tls
    rm -rf "$tls"
    mkdir -p "$tls"
    openssl rand -hex 16 >"$tls/store-pass"
    local pass
    pass=$(cat "$tls/store-pass")
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=crowdpark test CA" \
        -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
    issue() { # name, subject alternative names
        openssl req -newkey rsa:2048 -nodes -subj "/CN=broker" \
            -keyout "$tls/$1.key" -out "$tls/$1.csr" 2>/dev/null
        openssl x509 -req -in "$tls/$1.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
            -CAcreateserial -days 2 -out "$tls/$1.pem" \
            -extfile <(printf 'subjectAltName=%s\n' "$2") 2>/dev/null
        openssl pkcs12 -export -name broker -in "$tls/$1.pem" -inkey "$tls/$1.key" \
            -certfile "$tls/ca.pem" -out "$tls/$1.p12" -passout "pass:$pass"
    }
    issue broker "IP:127.0.0.1,DNS:localhost"
    issue mismatch "DNS:some-other-host.invalid"
    chmod 600 "$tls"/*.key "$tls/store-pass"
}

# Kafka's own command-line tools, as the secured broker's super user.
kafka_tool() {
    [ "$SECURE" = 1 ] || { log "$1 needs --secure"; exit 2; }
    running || { log "the secured broker is not running"; exit 1; }
    java -cp "$cp" -Xmx256m "-Dlog4j2.configurationFile=$ROOT/scripts/kafka/log4j2.properties" "${@:2}" \
        --bootstrap-server "127.0.0.1:$PORT" --command-config "$RUN/admin.properties"
}

# acl grant|revoke|list [kafka-acls options]
acl() {
    local action=${1:-}
    shift || true
    case "$action" in
        grant) kafka_tool acl org.apache.kafka.tools.AclCommand --add --force "$@" ;;
        revoke) kafka_tool acl org.apache.kafka.tools.AclCommand --remove --force "$@" ;;
        list) kafka_tool acl org.apache.kafka.tools.AclCommand --list "$@" ;;
        *) echo "usage: $0 acl --secure grant|revoke|list [kafka-acls options]" >&2; exit 2 ;;
    esac
}

# user NAME: a SCRAM-SHA-512 user whose password is kept in $RUN/users/NAME.
user() {
    [ -n "${1:-}" ] || { echo "usage: $0 user --secure NAME" >&2; exit 2; }
    kafka_tool user kafka.admin.ConfigCommand --alter --entity-type users --entity-name "$1" \
        --add-config "SCRAM-SHA-512=[iterations=4096,password=$(password "$1")]" >/dev/null
    log "user $1 created (password in $RUN/users/$1)"
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
    if [ "$SECURE" = 1 ]; then
        secure_properties "$data"
    else
        plain_properties "$data"
    fi
    local cluster_id scram=()
    if [ "$SECURE" = 1 ]; then
        for user in admin crowdpark; do
            scram+=(--add-scram "SCRAM-SHA-512=[name=$user,password=$(password "$user")]")
        done
    fi
    cluster_id=$(java -cp "$cp" "${java_opts[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
    java -cp "$cp" "${java_opts[@]}" kafka.tools.StorageTool format -t "$cluster_id" \
        -c "$RUN/server.properties" --standalone "${scram[@]+"${scram[@]}"}" >"$RUN/format.log" 2>&1 \
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
            tail -n 30 "$RUN/kafka.out" "$RUN/server.log" >&2 || true
            exit 1
        fi
        if grep -q "Kafka Server started" "$RUN/server.log" 2>/dev/null && port_open "$PORT"; then
            log "ready on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), data $data)"
            return
        fi
        sleep 0.5
    done
    log "broker not ready after 60 s:"
    tail -n 30 "$RUN/server.log" >&2 || true
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
    acl) acl "${@:2}" ;;
    user) user "${@:2}" ;;
    *) echo "usage: $0 start|stop|halt|resume|status|fetch [--secure]; acl|user --secure ..." >&2; exit 2 ;;
esac
