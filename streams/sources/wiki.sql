-- The wiki: a MediaWiki-shaped schema in MariaDB. Corporate wikis sign users in through SSO,
-- so user_name is the person's email address. A page's searchable text is its newest revision.
-- page_restrictions lists the groups that may read the page (comma-separated), as the
-- historical MediaWiki page_restrictions column did for edit/move rights.
CREATE TABLE IF NOT EXISTS `user` (
  user_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_name VARCHAR(255) NOT NULL UNIQUE,
  user_real_name VARCHAR(255) NOT NULL DEFAULT '',
  user_email VARCHAR(255) NOT NULL DEFAULT '',
  user_registration DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS page (
  page_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  page_namespace INT NOT NULL DEFAULT 0,
  page_title VARCHAR(255) NOT NULL,
  page_restrictions VARCHAR(255) NOT NULL DEFAULT '',
  page_is_redirect TINYINT NOT NULL DEFAULT 0,
  page_latest INT UNSIGNED NOT NULL DEFAULT 0,
  page_touched DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  page_len INT UNSIGNED NOT NULL DEFAULT 0,
  UNIQUE KEY page_name_title (page_namespace, page_title)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS revision (
  rev_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  rev_page INT UNSIGNED NOT NULL,
  rev_parent_id INT UNSIGNED NOT NULL DEFAULT 0,
  rev_user INT UNSIGNED NOT NULL DEFAULT 0,
  rev_user_text VARCHAR(255) NOT NULL DEFAULT '',
  rev_timestamp DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  rev_comment VARCHAR(767) NOT NULL DEFAULT '',
  rev_text MEDIUMTEXT NOT NULL,
  rev_len INT UNSIGNED NOT NULL DEFAULT 0,
  KEY rev_page_id (rev_page, rev_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Debezium's signal table (signal.data.collection in connectors/wiki.json): `streams verify --repair`
-- inserts execute-snapshot signals here, and the connector writes its incremental-snapshot
-- watermarks here. Its rows are never indexed (no mapping names it).
CREATE TABLE IF NOT EXISTS debezium_signal (
  id VARCHAR(64) NOT NULL PRIMARY KEY,
  type VARCHAR(32) NOT NULL,
  data TEXT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
-- Capture health: Debezium's heartbeat.action.query (connectors/wiki.json) upserts this one row
-- every heartbeat interval, so a committed change travels the whole path even when nobody edits;
-- the worker measures capture age from it (a stalled connector stops it). Not a document.
CREATE TABLE IF NOT EXISTS streams_heartbeat (
  id INT UNSIGNED NOT NULL PRIMARY KEY,
  beat_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB;
