-- Ticketing: a Zendesk-shaped schema in PostgreSQL. A ticket's searchable content is its
-- subject, description and every comment. access_groups are the agent groups that may see it.
-- REPLICA IDENTITY FULL: deletes must carry the whole old row (a deleted comment names its ticket).
CREATE TABLE IF NOT EXISTS groups (
  id BIGSERIAL PRIMARY KEY,
  name TEXT NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS users (
  id BIGSERIAL PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT NOT NULL UNIQUE,
  role TEXT NOT NULL DEFAULT 'end-user' CHECK (role IN ('end-user', 'agent', 'admin')),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS tickets (
  id BIGSERIAL PRIMARY KEY,
  subject TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'open', 'pending', 'solved', 'closed')),
  priority TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
  product TEXT NOT NULL DEFAULT '',
  requester_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
  requester_email TEXT NOT NULL DEFAULT '',
  assignee_email TEXT NOT NULL DEFAULT '',
  group_id BIGINT REFERENCES groups(id) ON DELETE SET NULL,
  access_groups TEXT[] NOT NULL DEFAULT '{}',
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS ticket_comments (
  id BIGSERIAL PRIMARY KEY,
  ticket_id BIGINT NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
  author_email TEXT NOT NULL DEFAULT '',
  body TEXT NOT NULL,
  public BOOLEAN NOT NULL DEFAULT true,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ticket_comments_ticket ON ticket_comments (ticket_id);

ALTER TABLE groups REPLICA IDENTITY FULL;
ALTER TABLE users REPLICA IDENTITY FULL;
ALTER TABLE tickets REPLICA IDENTITY FULL;
ALTER TABLE ticket_comments REPLICA IDENTITY FULL;

-- Debezium's signal table (signal.data.collection in connectors/*.json): `streams verify --repair`
-- inserts execute-snapshot signals here, and the connector writes its incremental-snapshot
-- watermarks here. Its rows are never indexed (no mapping names it).
CREATE TABLE IF NOT EXISTS debezium_signal (
  id VARCHAR(64) PRIMARY KEY,
  type VARCHAR(32) NOT NULL,
  data TEXT NULL
);
-- Capture health: Debezium's heartbeat.action.query (connectors/tickets.json) upserts this one row
-- every heartbeat interval, so a committed change travels the whole path even when nobody edits;
-- the worker measures capture age from it (a stalled connector stops it). Not a document.
CREATE TABLE IF NOT EXISTS streams_heartbeat (
  id INT PRIMARY KEY,
  beat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE streams_heartbeat REPLICA IDENTITY FULL;
