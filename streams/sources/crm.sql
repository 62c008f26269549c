-- The CRM: a Salesforce-shaped schema in PostgreSQL. Contacts and notes are searchable;
-- a note concerns its contact. access_groups are the teams that may see a record.
-- REPLICA IDENTITY FULL: deletes must carry the whole old row.
CREATE TABLE IF NOT EXISTS accounts (
  id BIGSERIAL PRIMARY KEY,
  name TEXT NOT NULL,
  industry TEXT NOT NULL DEFAULT '',
  website TEXT NOT NULL DEFAULT '',
  owner_team TEXT NOT NULL DEFAULT 'sales',
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS contacts (
  id BIGSERIAL PRIMARY KEY,
  account_id BIGINT REFERENCES accounts(id) ON DELETE SET NULL,
  first_name TEXT NOT NULL,
  last_name TEXT NOT NULL,
  email TEXT NOT NULL DEFAULT '',
  phone TEXT NOT NULL DEFAULT '',
  title TEXT NOT NULL DEFAULT '',
  lifecycle_stage TEXT NOT NULL DEFAULT 'lead',
  access_groups TEXT[] NOT NULL DEFAULT '{sales}',
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS notes (
  id BIGSERIAL PRIMARY KEY,
  account_id BIGINT REFERENCES accounts(id) ON DELETE SET NULL,
  contact_id BIGINT REFERENCES contacts(id) ON DELETE CASCADE,
  author_email TEXT NOT NULL DEFAULT '',
  kind TEXT NOT NULL DEFAULT 'note' CHECK (kind IN ('note', 'call', 'meeting', 'email')),
  title TEXT NOT NULL DEFAULT '',
  body TEXT NOT NULL,
  access_groups TEXT[] NOT NULL DEFAULT '{sales}',
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS notes_contact ON notes (contact_id);

ALTER TABLE accounts REPLICA IDENTITY FULL;
ALTER TABLE contacts REPLICA IDENTITY FULL;
ALTER TABLE notes REPLICA IDENTITY FULL;

-- Debezium's signal table (signal.data.collection in connectors/*.json): `streams verify --repair`
-- inserts execute-snapshot signals here, and the connector writes its incremental-snapshot
-- watermarks here. Its rows are never indexed (no mapping names it).
CREATE TABLE IF NOT EXISTS debezium_signal (
  id VARCHAR(64) PRIMARY KEY,
  type VARCHAR(32) NOT NULL,
  data TEXT NULL
);
-- Capture health: Debezium's heartbeat.action.query (connectors/crm.json) upserts this one row
-- every heartbeat interval, so a committed change travels the whole path even when nobody edits;
-- the worker measures capture age from it (a stalled connector stops it). Not a document.
CREATE TABLE IF NOT EXISTS streams_heartbeat (
  id INT PRIMARY KEY,
  beat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE streams_heartbeat REPLICA IDENTITY FULL;
