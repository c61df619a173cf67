#!/usr/bin/env bash
# Entry point of the MariaDB image that tests/compose.sh builds offline (debootstrap, Debian's
# mariadb-server) as a STAND-IN for the official mysql:8.0 image, which cannot be pulled
# there. It honours the official image's contract as far as the compose file uses it:
#   MYSQL_ROOT_PASSWORD, MYSQL_DATABASE, MYSQL_USER, MYSQL_PASSWORD, data in /var/lib/mysql,
#   /docker-entrypoint-initdb.d/*.sql|*.sh run once on an empty data dir (.sh files are
#   sourced, with docker_process_sql defined), TCP 3306 on all interfaces.
set -eo pipefail
shopt -s nullglob

DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock
note() { printf '[bank-transfer mariadb stand-in] %s\n' "$*"; }

server=(mariadbd --no-defaults --user=mysql --datadir="$DATADIR" --socket="$SOCKET"
  --pid-file=/run/mysqld/mysqld.pid --character-set-server=utf8mb4
  --collation-server=utf8mb4_general_ci --skip-name-resolve --max-connections=500
  --innodb-buffer-pool-size=128M)

# Root over the socket: no password until we set one, then MYSQL_ROOT_PASSWORD.
docker_process_sql() {
  local args=(--protocol=socket --socket="$SOCKET" -uroot)
  [ -n "${root_pw_set:-}" ] && args+=(-p"$MYSQL_ROOT_PASSWORD")
  [ -n "${MYSQL_DATABASE:-}" ] && args+=(--database="$MYSQL_DATABASE")
  mariadb "${args[@]}" "$@"
}

mkdir -p /run/mysqld "$DATADIR"
chown mysql:mysql /run/mysqld "$DATADIR"

if [ ! -d "$DATADIR/mysql" ]; then
  : "${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD must be set}"
  note "initialising $DATADIR (MariaDB $(mariadbd --version | awk '{print $3}'), standing in for mysql:8.0)"
  mariadb-install-db --no-defaults --user=mysql --datadir="$DATADIR" \
    --auth-root-authentication-method=normal --skip-test-db >/dev/null
  "${server[@]}" --skip-networking &
  pid=$!
  for _ in $(seq 1 120); do
    mariadb-admin --socket="$SOCKET" ping >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { note "temporary server died"; exit 1; }
    sleep 0.5
  done
  docker_process_sql --database=mysql <<EOSQL
ALTER USER 'root'@'localhost' IDENTIFIED BY '${MYSQL_ROOT_PASSWORD}';
CREATE USER 'root'@'%' IDENTIFIED BY '${MYSQL_ROOT_PASSWORD}';
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
FLUSH PRIVILEGES;
EOSQL
  root_pw_set=1
  if [ -n "${MYSQL_DATABASE:-}" ]; then
    docker_process_sql --database=mysql <<<"CREATE DATABASE IF NOT EXISTS \`${MYSQL_DATABASE}\`;"
  fi
  if [ -n "${MYSQL_USER:-}" ] && [ -n "${MYSQL_PASSWORD:-}" ]; then
    docker_process_sql --database=mysql <<<"CREATE USER '${MYSQL_USER}'@'%' IDENTIFIED BY '${MYSQL_PASSWORD}';"
    if [ -n "${MYSQL_DATABASE:-}" ]; then
      docker_process_sql --database=mysql <<<"GRANT ALL ON \`${MYSQL_DATABASE}\`.* TO '${MYSQL_USER}'@'%';"
    fi
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    # shellcheck disable=SC1090 # the init scripts are the user's
    case "$f" in
      *.sh) note "running $f"; . "$f" ;;
      *.sql) note "running $f"; docker_process_sql <"$f" ;;
      *) note "ignoring $f" ;;
    esac
  done
  mariadb-admin --socket="$SOCKET" -uroot -p"$MYSQL_ROOT_PASSWORD" shutdown
  wait "$pid" || true
  note "initialisation done"
fi

note "starting mariadbd on 0.0.0.0:3306"
exec "${server[@]}" --bind-address=0.0.0.0 --port=3306 "$@"
