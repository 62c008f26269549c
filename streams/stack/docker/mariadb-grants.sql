-- docker-compose: the privileges Debezium's MariaDB connector needs (as streams/stack/mariadb.py grants).
GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, BINLOG MONITOR, LOCK TABLES ON *.* TO 'streams'@'%';
GRANT ALL PRIVILEGES ON `wiki`.* TO 'streams'@'%';
FLUSH PRIVILEGES;
