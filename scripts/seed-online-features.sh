#!/usr/bin/env bash
# Reference data for pipelines/fraud-online-features.yaml and
# fraud-avro-kafka.yaml: a Postgres table `accounts` (one row per card
# 0–9 999; every 50th card frozen), Redis hashes `merchant:{id}` for
# merchants 0–4 999 (0–49 high risk, as the generator's fraud profile) and
# `cardrisk:{id}` for every 13th card (tier high). Ports as scripts/services.sh starts them;
# override with PGPORT / REDIS_PORT.
set -euo pipefail
PGPORT="${PGPORT:-54329}"
REDIS_PORT="${REDIS_PORT:-54331}"
PGOPTIONS="-c client_min_messages=warning" psql -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres <<'SQL'
DROP TABLE IF EXISTS accounts;
CREATE TABLE accounts (card_id bigint PRIMARY KEY, status text NOT NULL, credit_limit numeric NOT NULL);
INSERT INTO accounts
SELECT c, CASE WHEN c % 50 = 0 THEN 'frozen' ELSE 'active' END, 1000 + (c % 20) * 500
FROM generate_series(0, 9999) AS c;
SQL
for m in $(seq 0 4999); do
    if [ "$m" -lt 50 ]; then tier=high; elif [ $((m % 10)) -eq 0 ]; then tier=medium; else tier=low; fi
    echo "HSET merchant:$m risk_tier $tier category cat-$((m % 12))"
done | redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --pipe >/dev/null
for c in $(seq 0 13 9999); do
    echo "HSET cardrisk:$c tier high"
done | redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --pipe >/dev/null
echo "seeded: 10000 accounts in postgres :$PGPORT, 5000 merchant hashes in redis :$REDIS_PORT"
