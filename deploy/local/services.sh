#!/usr/bin/env bash
# Kafka (KRaft, single node), Redis and PostgreSQL on loopback, for development and CI, without Docker.
#
#   services.sh install   fetch what is missing (Debian packages, Kafka jars from Maven Central)
#   services.sh up        install, then start whatever is not running yet, and wait until each answers
#   services.sh down      stop what this script started (found through its pid files), nothing else
#   services.sh status    say what runs
#   services.sh env       print the TRIBUTARY_TEST_* variables the test fixtures read
#
# Every step is idempotent: `up` twice starts nothing twice, `down` twice stops nothing twice.
# State (data, logs, pid files, jars) lives under .services/ in the repository (git-ignored) or
# $TRIBUTARY_SERVICES_DIR.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
state=${TRIBUTARY_SERVICES_DIR:-$root/.services}
kafka_port=${TRIBUTARY_KAFKA_PORT:-19092}
controller_port=${TRIBUTARY_KAFKA_CONTROLLER_PORT:-19093}
redis_port=${TRIBUTARY_REDIS_PORT:-16379}
pg_port=${TRIBUTARY_PG_PORT:-15432}
kafka_home=$state/kafka
redis_home=$state/redis
pg_home=$state/postgres

log() { printf '[services] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@"; do
    if ((SECONDS >= deadline)); then
      log "$what did not answer in time"
      return 1
    fi
    sleep 0.5
  done
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# PostgreSQL refuses to run as root, so as root its commands run as the postgres user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_debian() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  [ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/postgres" ] || missing+=(postgresql)
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    if [ "$(id -u)" != 0 ]; then
      log "not root: run 'sudo apt-get install ${missing[*]}' first"
      return 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    # Debian's postgresql package starts a cluster on 5432; ours runs on its own port, so that one may stay.
  fi
}

install_kafka() {
  if [ -f "$kafka_home/libs/.complete" ]; then return 0; fi
  log "fetching Kafka from Maven Central"
  mkdir -p "$kafka_home/libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$kafka_home/libs" >"$state/mvn.log" 2>&1 \
    || { tail -n 30 "$state/mvn.log" >&2; return 1; }
  touch "$kafka_home/libs/.complete"
}

kafka_version() {
  local jar
  jar=$(ls "$kafka_home"/libs/kafka_2.13-*.jar 2>/dev/null | head -n 1)
  jar=${jar##*/kafka_2.13-}
  echo "${jar%.jar}"
}

kafka_up() {
  if pid_alive "$kafka_home/kafka.pid"; then
    log "kafka already running (pid $(cat "$kafka_home/kafka.pid"))"
    return 0
  fi
  mkdir -p "$kafka_home/data"
  cat >"$kafka_home/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$kafka_home/data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
message.max.bytes=33554432
replica.fetch.max.bytes=33554432
EOF
  cat >"$kafka_home/log4j2.properties" <<EOF
rootLogger.level=INFO
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka
logger.kafka.level=INFO
logger.apache.name=org.apache.kafka
logger.apache.level=WARN
EOF
  local cp="$kafka_home/libs/*"
  if [ ! -f "$kafka_home/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    java -cp "$cp" -Dlog4j2.configurationFile="$kafka_home/log4j2.properties" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$kafka_home/server.properties" >"$kafka_home/format.log" 2>&1
  fi
  log "starting kafka $(kafka_version) (KRaft) on 127.0.0.1:$kafka_port"
  : >"$kafka_home/kafka.log"
  setsid nohup java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$kafka_home/log4j2.properties" \
    -cp "$cp" kafka.Kafka "$kafka_home/server.properties" >>"$kafka_home/kafka.log" 2>&1 </dev/null &
  echo $! >"$kafka_home/kafka.pid"
  wait_for 120 kafka kafka_ready || { tail -n 30 "$kafka_home/kafka.log" >&2; return 1; }
  log "kafka $(kafka_version) ready"
}

kafka_ready() {
  pid_alive "$kafka_home/kafka.pid" || return 1
  port_open "$kafka_port" && grep -q "Kafka Server started" "$kafka_home/kafka.log"
}

redis_up() {
  if pid_alive "$redis_home/redis.pid"; then
    log "redis already running (pid $(cat "$redis_home/redis.pid"))"
    return 0
  fi
  mkdir -p "$redis_home"
  log "starting redis on 127.0.0.1:$redis_port"
  redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$redis_home" --daemonize yes \
    --pidfile "$redis_home/redis.pid" --logfile "$redis_home/redis.log" --save "" --appendonly no >/dev/null
  wait_for 30 redis redis_ready
  log "redis $(redis-cli -p "$redis_port" info server | sed -n 's/^redis_version:\(.*\)\r$/\1/p') ready"
}

redis_ready() { [ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ]; }

pg_up() {
  local bin
  bin=$(pg_bin)
  if [ -f "$pg_home/data/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$pg_home/data" status >/dev/null 2>&1; then
    log "postgresql already running"
    return 0
  fi
  mkdir -p "$pg_home"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$pg_home"
  if [ ! -f "$pg_home/data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$pg_home/data" -A trust -U postgres --no-sync >"$pg_home/initdb.log"
  fi
  log "starting postgresql on 127.0.0.1:$pg_port"
  as_pg "$bin/pg_ctl" -D "$pg_home/data" -l "$pg_home/postgres.log" -w -t 60 \
    -o "-p $pg_port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
  wait_for 60 postgresql pg_ready
  if [ "$(psql -h 127.0.0.1 -p "$pg_port" -U postgres -tAc "select 1 from pg_database where datname='tributary'")" != 1 ]; then
    psql -h 127.0.0.1 -p "$pg_port" -U postgres -qc "create database tributary" >/dev/null
  fi
  log "postgresql $(psql -h 127.0.0.1 -p "$pg_port" -U postgres -tAc 'show server_version') ready"
}

pg_ready() { psql -h 127.0.0.1 -p "$pg_port" -U postgres -tAc "select 1" >/dev/null 2>&1; }

kafka_down() {
  if pid_alive "$kafka_home/kafka.pid"; then
    local pid
    pid=$(cat "$kafka_home/kafka.pid")
    log "stopping kafka (pid $pid)"
    kill "$pid"
    wait_for 60 "kafka shutdown" bash -c "! kill -0 $pid 2>/dev/null" || kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$kafka_home/kafka.pid"
}

redis_down() {
  if pid_alive "$redis_home/redis.pid"; then
    local pid
    pid=$(cat "$redis_home/redis.pid")
    log "stopping redis (pid $pid)"
    kill "$pid"
    wait_for 30 "redis shutdown" bash -c "! kill -0 $pid 2>/dev/null" || kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$redis_home/redis.pid"
}

pg_down() {
  local bin
  bin=$(pg_bin)
  if [ -n "$bin" ] && [ -f "$pg_home/data/postmaster.pid" ]; then
    log "stopping postgresql"
    as_pg "$bin/pg_ctl" -D "$pg_home/data" -m fast -w stop >/dev/null || true
  fi
}

status() {
  if kafka_ready; then echo "kafka $(kafka_version): running on 127.0.0.1:$kafka_port"; else echo "kafka: stopped"; fi
  if redis_ready; then echo "redis: running on 127.0.0.1:$redis_port"; else echo "redis: stopped"; fi
  if pg_ready; then echo "postgresql: running on 127.0.0.1:$pg_port"; else echo "postgresql: stopped"; fi
}

print_env() {
  echo "export TRIBUTARY_TEST_KAFKA_BOOTSTRAP=127.0.0.1:$kafka_port"
  echo "export TRIBUTARY_TEST_REDIS_URL=redis://127.0.0.1:$redis_port/0"
  echo "export TRIBUTARY_TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:$pg_port/tributary"
}

case "${1:-}" in
  install) install_debian && install_kafka ;;
  up)
    install_debian
    install_kafka
    redis_up
    pg_up
    kafka_up
    ;;
  down)
    kafka_down
    redis_down
    pg_down
    ;;
  status) status ;;
  env) print_env ;;
  *)
    echo "usage: $0 install|up|down|status|env" >&2
    exit 2
    ;;
esac
