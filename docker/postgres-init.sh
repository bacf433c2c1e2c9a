#!/bin/sh
# Run once by the postgres image, when its data volume is new (docker-entrypoint-initdb.d): the
# service's own role, owner of its database and not a superuser, with a connection limit that leaves
# the image's 100 connections room for the operator; pgvector created here, where a superuser may.
set -eu
psql -v ON_ERROR_STOP=1 -v app_password="$POSTGRES_APP_PASSWORD" --username "$POSTGRES_USER" --dbname postgres <<'SQL'
CREATE ROLE app LOGIN PASSWORD :'app_password' NOSUPERUSER NOCREATEROLE NOCREATEDB CONNECTION LIMIT 80;
CREATE DATABASE app OWNER app;
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname app -c "CREATE EXTENSION IF NOT EXISTS vector"
