#!/usr/bin/env bash
# Kafka (KRaft, single node), Redis, PostgreSQL, Prometheus and S3Proxy (an S3-compatible object store over a
# folder) on loopback, for development and CI, without Docker.
#
#   services.sh install            fetch what is missing (Debian packages, Kafka and S3Proxy jars from Maven Central)
#   services.sh up [SERVICE...]    install, then start whatever is not running yet, and wait until each answers
#   services.sh down [SERVICE...]  stop what this script started (found through its pid files), nothing else
#   services.sh status             say what runs
#   services.sh env                print the TRIBUTARY_TEST_* variables the test fixtures read
#
# SERVICE is kafka, redis, postgres, prometheus or s3; without one, `up` and `down` take all five.
# Ports: TRIBUTARY_KAFKA_PORT (19092), TRIBUTARY_KAFKA_CONTROLLER_PORT (19093), TRIBUTARY_REDIS_PORT (16379),
# TRIBUTARY_PG_PORT (15432), TRIBUTARY_PROMETHEUS_PORT (19090), TRIBUTARY_S3_PORT (19000). A service counts as
# ours only when the process its pid file names is the one
# listening on its port; `up` refuses a port another program holds, before starting anything, and stops what it
# started when a service fails to come up.
#
# Prometheus (Debian's `prometheus` package) scrapes every second the targets listed in the JSON files of the
# folder $TRIBUTARY_TEST_PROMETHEUS_TARGETS (file-based service discovery, re-read within a second of a change):
# a test writes a file naming the roles it started, and removes it when done. It evaluates
# deploy/prometheus/alerts.yml.
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
prometheus_port=${TRIBUTARY_PROMETHEUS_PORT:-19090}
s3_port=${TRIBUTARY_S3_PORT:-19000}
kafka_home=$state/kafka
redis_home=$state/redis
pg_home=$state/postgres
prometheus_home=$state/prometheus
s3_home=$state/s3proxy
# The version deploy/compose runs (tests/test_storage_s3.py checks that they agree).
s3proxy_version=4.0.0
s3proxy_jar=$s3_home/s3proxy-$s3proxy_version-jar-with-dependencies.jar
# A local test store's fixed credential: it guards nothing but a loopback folder, and `env` prints it.
s3_identity=tributary
s3_credential=tributary-local-credential
s3_bucket=tributary

log() { printf '[services] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The first line of a pid file (PostgreSQL's holds more) names a live process.
pid_alive() { [ -f "$1" ] && kill -0 "$(head -n 1 "$1")" 2>/dev/null; }

# The pid of the process listening on 127.0.0.1:PORT (empty when none, or when it cannot be told).
listener_pid() {
  ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1
}

# ours PIDFILE PORT: the process the pid file names is alive and is the one listening on PORT (without `ss`,
# that something listens there).
ours() {
  pid_alive "$1" || return 1
  if ! command -v ss >/dev/null; then
    port_open "$2"
    return
  fi
  [ "$(listener_pid "$2")" = "$(head -n 1 "$1")" ]
}

# port_free PORT VARIABLE: fails with one line naming the port, its holder and the variable that moves it.
port_free() {
  if port_open "$1"; then
    local pid holder=""
    pid=$(listener_pid "$1")
    [ -n "$pid" ] && holder=" (pid $pid, $(ps -o comm= -p "$pid" 2>/dev/null || echo '?'))"
    log "port $1 is taken by another program$holder: stop it, or set $2 to a free port"
    return 1
  fi
}

# wait_for SECONDS DESCRIPTION PID LOG COMMAND...: until COMMAND succeeds; fails at once, with one line, when
# the process PID exits first.
wait_for() {
  local deadline=$((SECONDS + $1)) what=$2 pid=$3 logfile=$4
  shift 4
  until "$@"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$what exited during startup: $(startup_error "$logfile"); see $logfile"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "$what did not answer within $1 s; see $logfile"
      return 1
    fi
    sleep 0.5
  done
}

# stop_within SECONDS PID: wait for a process told to stop; kill it when it has not stopped in time.
stop_within() {
  local deadline=$((SECONDS + $1))
  while kill -0 "$2" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      kill -9 "$2" 2>/dev/null || true
      return 0
    fi
    sleep 0.5
  done
}

# The first line of a log that says what went wrong, shortened.
startup_error() {
  local line
  line=$(grep -m 1 -E 'FATAL|ERROR|Error|Exception|error' "$1" 2>/dev/null || true)
  line=${line:-"no error in its log"}
  echo "${line:0:200}"
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
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v curl >/dev/null || missing+=(curl)
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    if [ "$(id -u)" != 0 ]; then
      log "not root: run 'sudo apt-get install ${missing[*]}' first"
      return 1
    fi
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
      log "could not install the Debian packages ${missing[*]}: install them by hand (apt-get install ${missing[*]})"
      return 1
    fi
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

install_s3proxy() {
  if [ -f "$s3proxy_jar" ]; then return 0; fi
  log "fetching S3Proxy $s3proxy_version from Maven Central"
  mkdir -p "$s3_home"
  mvn -q -B -f "$here/pom.xml" dependency:copy -Dartifact="org.gaul:s3proxy:$s3proxy_version:jar:jar-with-dependencies" \
    -DoutputDirectory="$s3_home" >"$state/mvn-s3proxy.log" 2>&1 \
    || { tail -n 30 "$state/mvn-s3proxy.log" >&2; return 1; }
}

kafka_version() {
  local jar
  jar=$(ls "$kafka_home"/libs/kafka_2.13-*.jar 2>/dev/null | head -n 1)
  jar=${jar##*/kafka_2.13-}
  echo "${jar%.jar}"
}

kafka_running() { ours "$kafka_home/kafka.pid" "$kafka_port"; }

kafka_ports_free() {
  port_free "$kafka_port" TRIBUTARY_KAFKA_PORT && port_free "$controller_port" TRIBUTARY_KAFKA_CONTROLLER_PORT
}

kafka_up() {
  if kafka_running; then
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
  started+=(kafka)
  wait_for 120 kafka "$(cat "$kafka_home/kafka.pid")" "$kafka_home/kafka.log" kafka_ready || return 1
  log "kafka $(kafka_version) ready"
}

kafka_ready() {
  kafka_running && grep -q "Kafka Server started" "$kafka_home/kafka.log"
}

redis_running() { ours "$redis_home/redis.pid" "$redis_port"; }

redis_ports_free() { port_free "$redis_port" TRIBUTARY_REDIS_PORT; }

redis_up() {
  if redis_running; then
    log "redis already running (pid $(cat "$redis_home/redis.pid"))"
    return 0
  fi
  mkdir -p "$redis_home"
  log "starting redis on 127.0.0.1:$redis_port"
  : >"$redis_home/redis.log"
  # In the foreground of its own session, so that its pid is known at once and its death noticed.
  setsid nohup redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$redis_home" --daemonize no \
    --logfile "$redis_home/redis.log" --save "" --appendonly no </dev/null >>"$redis_home/redis.log" 2>&1 &
  echo $! >"$redis_home/redis.pid"
  started+=(redis)
  wait_for 30 redis "$(cat "$redis_home/redis.pid")" "$redis_home/redis.log" redis_ready || return 1
  log "redis $(redis-cli -p "$redis_port" info server | sed -n 's/^redis_version:\(.*\)\r$/\1/p') ready"
}

redis_ready() { redis_running && [ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ]; }

postgres_running() { ours "$pg_home/data/postmaster.pid" "$pg_port"; }

postgres_ports_free() { port_free "$pg_port" TRIBUTARY_PG_PORT; }

postgres_up() {
  local bin
  bin=$(pg_bin)
  if postgres_running; then
    log "postgresql already running (pid $(head -n 1 "$pg_home/data/postmaster.pid"))"
    return 0
  fi
  mkdir -p "$pg_home"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$pg_home"
  if [ ! -f "$pg_home/data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$pg_home/data" -A trust -U postgres --no-sync >"$pg_home/initdb.log"
  fi
  log "starting postgresql on 127.0.0.1:$pg_port"
  : >"$pg_home/postgres.log"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$pg_home/postgres.log"
  started+=(postgres)
  # pg_ctl -w returns as soon as the server is up or has exited.
  if ! as_pg "$bin/pg_ctl" -D "$pg_home/data" -l "$pg_home/postgres.log" -w -t 60 \
    -o "-p $pg_port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null 2>&1; then
    log "postgresql exited during startup: $(startup_error "$pg_home/postgres.log"); see $pg_home/postgres.log"
    return 1
  fi
  wait_for 60 postgresql "$(head -n 1 "$pg_home/data/postmaster.pid")" "$pg_home/postgres.log" pg_ready || return 1
  if [ "$(psql -h 127.0.0.1 -p "$pg_port" -U postgres -tAc "select 1 from pg_database where datname='tributary'")" != 1 ]; then
    psql -h 127.0.0.1 -p "$pg_port" -U postgres -qc "create database tributary" >/dev/null
  fi
  log "postgresql $(psql -h 127.0.0.1 -p "$pg_port" -U postgres -tAc 'show server_version') ready"
}

pg_ready() { postgres_running && psql -h 127.0.0.1 -p "$pg_port" -U postgres -tAc "select 1" >/dev/null 2>&1; }

s3_running() { ours "$s3_home/s3proxy.pid" "$s3_port"; }

s3_ports_free() { port_free "$s3_port" TRIBUTARY_S3_PORT; }

s3_up() {
  if s3_running; then
    log "s3proxy already running (pid $(cat "$s3_home/s3proxy.pid"))"
    return 0
  fi
  # The filesystem backend: a bucket is a folder under data/.
  mkdir -p "$s3_home/data/$s3_bucket"
  cat >"$s3_home/s3proxy.conf" <<EOF
s3proxy.authorization=aws-v2-or-v4
s3proxy.endpoint=http://127.0.0.1:$s3_port
s3proxy.identity=$s3_identity
s3proxy.credential=$s3_credential
jclouds.provider=filesystem
jclouds.filesystem.basedir=$s3_home/data
EOF
  log "starting s3proxy $s3proxy_version on 127.0.0.1:$s3_port"
  : >"$s3_home/s3proxy.log"
  setsid nohup java -Xms64m -Xmx256m -Djava.awt.headless=true -jar "$s3proxy_jar" \
    --properties "$s3_home/s3proxy.conf" >>"$s3_home/s3proxy.log" 2>&1 </dev/null &
  echo $! >"$s3_home/s3proxy.pid"
  started+=(s3)
  wait_for 120 s3proxy "$(cat "$s3_home/s3proxy.pid")" "$s3_home/s3proxy.log" s3_ready || return 1
  log "s3proxy $s3proxy_version ready"
}

# Any HTTP answer (403 without credentials) means it serves.
s3_ready() { s3_running && curl -s -o /dev/null "http://127.0.0.1:$s3_port/"; }

# is_ours PIDFILE PATTERN: the pid file names a live process whose command line matches PATTERN (not a pid
# the system has since given to another program).
is_ours() { pid_alive "$1" && grep -qa -- "$2" "/proc/$(cat "$1")/cmdline" 2>/dev/null; }

# stop_ours NAME PIDFILE PATTERN SECONDS: stop the process the pid file names, if it is still ours.
stop_ours() {
  if is_ours "$2" "$3"; then
    local pid
    pid=$(cat "$2")
    log "stopping $1 (pid $pid)"
    kill "$pid"
    stop_within "$4" "$pid"
  fi
  rm -f "$2"
}

kafka_down() { stop_ours kafka "$kafka_home/kafka.pid" kafka.Kafka 60; }

redis_down() { stop_ours redis "$redis_home/redis.pid" redis-server 30; }

s3_down() { stop_ours s3proxy "$s3_home/s3proxy.pid" s3proxy 30; }

postgres_down() {
  local bin
  bin=$(pg_bin)
  if [ -n "$bin" ] && [ -f "$pg_home/data/postmaster.pid" ]; then
    log "stopping postgresql"
    as_pg "$bin/pg_ctl" -D "$pg_home/data" -m fast -w stop >/dev/null || true
  fi
}

prometheus_running() { ours "$prometheus_home/prometheus.pid" "$prometheus_port"; }

prometheus_ports_free() { port_free "$prometheus_port" TRIBUTARY_PROMETHEUS_PORT; }

prometheus_config() {
  mkdir -p "$prometheus_home/data" "$prometheus_home/targets"
  cat >"$prometheus_home/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $root/deploy/prometheus/alerts.yml
scrape_configs:
  - job_name: tributary
    file_sd_configs:
      - files: ["$prometheus_home/targets/*.json"]
        refresh_interval: 1s
EOF
}

prometheus_up() {
  if prometheus_running; then
    prometheus_config
    # SIGHUP: Prometheus reads its configuration and the alert rules again (they may have changed since).
    kill -HUP "$(cat "$prometheus_home/prometheus.pid")"
    log "prometheus already running (pid $(cat "$prometheus_home/prometheus.pid")); configuration and rules reloaded"
    return 0
  fi
  if ! command -v prometheus >/dev/null; then
    log "prometheus not found: install Debian's prometheus package (apt-get install --no-install-recommends prometheus)"
    return 1
  fi
  prometheus_config
  log "starting prometheus on 127.0.0.1:$prometheus_port"
  : >"$prometheus_home/prometheus.log"
  setsid nohup prometheus --config.file="$prometheus_home/prometheus.yml" \
    --storage.tsdb.path="$prometheus_home/data" --storage.tsdb.retention.time=1d \
    --web.listen-address="127.0.0.1:$prometheus_port" </dev/null >>"$prometheus_home/prometheus.log" 2>&1 &
  echo $! >"$prometheus_home/prometheus.pid"
  started+=(prometheus)
  wait_for 60 prometheus "$(cat "$prometheus_home/prometheus.pid")" "$prometheus_home/prometheus.log" \
    prometheus_ready || return 1
  log "prometheus $(prometheus --version 2>&1 | sed -n '1s/^prometheus, version \([^ ]*\).*/\1/p') ready"
}

prometheus_ready() {
  prometheus_running && grep -q "Server is ready to receive web requests" "$prometheus_home/prometheus.log"
}

prometheus_down() {
  if is_ours "$prometheus_home/prometheus.pid" "$prometheus_home/prometheus.yml"; then
    local pid
    pid=$(cat "$prometheus_home/prometheus.pid")
    log "stopping prometheus (pid $pid)"
    kill "$pid"
    stop_within 30 "$pid"
  fi
  rm -f "$prometheus_home/prometheus.pid"
}

# describe NAME PORT RUNNING_COMMAND: one status line, telling our service from another program on its port.
describe() {
  if "$3"; then
    echo "$1: running on 127.0.0.1:$2"
  elif port_open "$2"; then
    echo "$1: stopped (port $2 is taken by another program)"
  else
    echo "$1: stopped"
  fi
}

status() {
  local version
  version=$(kafka_version)
  describe "kafka${version:+ $version}" "$kafka_port" kafka_running
  describe redis "$redis_port" redis_running
  describe postgresql "$pg_port" postgres_running
  describe prometheus "$prometheus_port" prometheus_running
  describe s3proxy "$s3_port" s3_running
}

print_env() {
  echo "export TRIBUTARY_TEST_KAFKA_BOOTSTRAP=127.0.0.1:$kafka_port"
  echo "export TRIBUTARY_TEST_REDIS_URL=redis://127.0.0.1:$redis_port/0"
  echo "export TRIBUTARY_TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:$pg_port/tributary"
  echo "export TRIBUTARY_TEST_PROMETHEUS_URL=http://127.0.0.1:$prometheus_port"
  echo "export TRIBUTARY_TEST_PROMETHEUS_TARGETS=$prometheus_home/targets"
  echo "export TRIBUTARY_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port"
  echo "export TRIBUTARY_TEST_S3_BUCKET=$s3_bucket"
  echo "export TRIBUTARY_TEST_S3_ACCESS_KEY_ID=$s3_identity"
  echo "export TRIBUTARY_TEST_S3_SECRET_ACCESS_KEY=$s3_credential"
}

# The named services, in start order; all five without a name.
services() {
  local name wanted=()
  (($#)) || set -- redis postgres kafka prometheus s3
  for name in redis postgres kafka prometheus s3; do
    for arg; do
      case "$arg" in
        redis | postgres | kafka | prometheus | s3) [ "$arg" = "$name" ] && wanted+=("$name") ;;
        postgresql) [ "$name" = postgres ] && wanted+=(postgres) ;;
        s3proxy) [ "$name" = s3 ] && wanted+=(s3) ;;
        *)
          log "unknown service $arg (kafka, redis, postgres, prometheus or s3)"
          return 2
          ;;
      esac
    done
  done
  echo "${wanted[@]}"
}

up() {
  local names name
  names=$(services "$@") || exit 2
  # Every port is checked before anything starts, so a taken one leaves nothing of ours behind.
  for name in $names; do
    "${name}_running" || "${name}_ports_free" || exit 1
  done
  install_debian
  [[ " $names " == *" kafka "* ]] && install_kafka
  [[ " $names " == *" s3 "* ]] && install_s3proxy
  started=()
  for name in $names; do
    if ! "${name}_up"; then
      for name in "${started[@]}"; do "${name}_down" >/dev/null 2>&1 || true; done
      exit 1
    fi
  done
}

down() {
  local names name
  names=$(services "$@") || exit 2
  for name in $(echo "$names" | tr ' ' '\n' | tac); do "${name}_down"; done
}

command=${1:-}
(($#)) && shift
case "$command" in
  install) install_debian && install_kafka && install_s3proxy ;;
  up) up "$@" ;;
  down) down "$@" ;;
  status) status ;;
  env) print_env ;;
  *)
    echo "usage: $0 install|up [SERVICE...]|down [SERVICE...]|status|env   (SERVICE: kafka, redis, postgres, prometheus, s3)" >&2
    exit 2
    ;;
esac
