#!/usr/bin/env bash
# Make sure the services the tests talk to are installed and running: PostgreSQL (127.0.0.1:5432) and Redis
# (127.0.0.1:6379). Installs from Debian when missing, starts when down, and creates the role and database the
# tests use (RECOMMENDER_TEST_PG, default postgresql://recommender:recommender@127.0.0.1:5432/recommender_test)
# through the local socket as the postgres OS user, so Debian's default authentication (peer on the socket,
# scram-sha-256 on TCP) is enough: nothing is configured by hand. Idempotent; fails loudly.
set -euo pipefail
PG_ROLE=recommender
PG_PASSWORD=recommender
PG_DATABASE=recommender_test

need_apt_update=1
apt_install() {
  if [ "$need_apt_update" = 1 ]; then apt-get update -qq; need_apt_update=0; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Redis
if ! command -v redis-server >/dev/null; then apt_install redis-server redis-tools; fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi

# PostgreSQL
if ! command -v pg_ctlcluster >/dev/null; then apt_install postgresql; fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi

for _ in $(seq 1 30); do
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && pg_isready -h 127.0.0.1 -p 5432 -q; then
    as_postgres() { runuser -u postgres -- psql -X -v ON_ERROR_STOP=1 -q "$@"; }
    if ! as_postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname='$PG_ROLE'" | grep -q 1; then
      as_postgres -c "CREATE ROLE $PG_ROLE LOGIN PASSWORD '$PG_PASSWORD'"
    else
      as_postgres -c "ALTER ROLE $PG_ROLE LOGIN PASSWORD '$PG_PASSWORD'"
    fi
    if ! as_postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$PG_DATABASE'" | grep -q 1; then
      as_postgres -c "CREATE DATABASE $PG_DATABASE OWNER $PG_ROLE"
    fi
    # Check the way the tests connect: TCP with the password.
    PGPASSWORD=$PG_PASSWORD psql -X -h 127.0.0.1 -U $PG_ROLE -d $PG_DATABASE -tAc "SELECT 1" | grep -q 1
    echo "services: redis and postgresql are up ($PG_ROLE@127.0.0.1/$PG_DATABASE)"
    exit 0
  fi
  sleep 1
done
echo "services: redis or postgresql did not come up" >&2
exit 1
