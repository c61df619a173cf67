# Sourced (not executed) by the MySQL image's entry point on the first start, after it has
# created MYSQL_DATABASE (bank1) and MYSQL_USER: adds bank2 and gives that user both
# databases. bank1 and bank2 create their tables themselves (sqlx migrations at start), so
# nothing else belongs here. The MariaDB stand-in of tests/compose.sh sources it the same way.
bank_transfer_init_sql() {
  if declare -F docker_process_sql >/dev/null; then
    docker_process_sql --database=mysql
  else
    MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql --protocol=socket -uroot mysql
  fi
}
bank_transfer_init_sql <<EOSQL
CREATE DATABASE IF NOT EXISTS \`bank1\` CHARACTER SET utf8mb4;
CREATE DATABASE IF NOT EXISTS \`bank2\` CHARACTER SET utf8mb4;
GRANT ALL PRIVILEGES ON \`bank1\`.* TO '${MYSQL_USER}'@'%';
GRANT ALL PRIVILEGES ON \`bank2\`.* TO '${MYSQL_USER}'@'%';
FLUSH PRIVILEGES;
EOSQL
unset -f bank_transfer_init_sql
