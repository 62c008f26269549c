#!/bin/bash
# docker-compose: the postgres image runs this once on an empty volume. POSTGRES_DB (tickets) exists;
# create crm, and apply both schemas, as the local stack does.
set -euo pipefail
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -c "CREATE DATABASE crm OWNER \"$POSTGRES_USER\""
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d tickets -f /sources/tickets.sql
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d crm -f /sources/crm.sql
