#!/usr/bin/env bash
# Retention at scale: batched DELETE on one plain messages table against monthly partitions and
# a partition drop, at ROWS messages (default 10 million), with a plain INSERT rate measured in
# the same run as the reference. Prints a Markdown table for docs/benchmarks.md.
#
#   bash scripts/bench-partitions.sh            # 10,000,000 messages
#   ROWS=1000000 bash scripts/bench-partitions.sh
#
# Works in a scratch database (amal_bench_partitions, dropped at the end) on the server of
# DATABASE_URL, or of the embedded test cluster (target/amal-test-db) when it is unset. The tables
# have the columns and B-tree indexes of `messages` (not its full-text indexes, which would only
# make every row operation dearer) over 24 months; each month holds ROWS/24 messages, 20 to a
# conversation.
set -euo pipefail

ROWS=${ROWS:-10000000}
BATCH=${BATCH:-1000}
REF_ROWS=${REF_ROWS:-200000}
SCRATCH=amal_bench_partitions
cd "$(dirname "$0")/.."

if [[ -z "${DATABASE_URL:-}" ]]; then
    export AMAL_DATA_DIR=${AMAL_DATA_DIR:-$PWD/target/amal-test-db}
    # Gigabytes of WAL are written: not into the test cluster's archive.
    export AMAL_WAL_ARCHIVE=off
    cargo build -q -p amal-engine
    ./target/debug/amal-engine db start >/dev/null
    DATABASE_URL=$(./target/debug/amal-engine db url | tail -n1)
fi
PG_BIN=${AMAL_PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -At)
export PGOPTIONS="-c client_min_messages=warning"
base_url=${DATABASE_URL%%\?*}
server_url=${base_url%/*}/postgres
scratch_url=${base_url%/*}/$SCRATCH

"${PSQL[@]}" "$server_url" -c "DROP DATABASE IF EXISTS $SCRATCH" -c "CREATE DATABASE $SCRATCH"
trap '"${PSQL[@]}" "$server_url" -c "DROP DATABASE IF EXISTS $SCRATCH" >/dev/null 2>&1 || true' EXIT
q() { "${PSQL[@]}" "$scratch_url" -c "$1"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
lsn() { q "SELECT pg_current_wal_insert_lsn()"; }
wal_mb() { q "SELECT round(pg_wal_lsn_diff('$2', '$1') / 1048576.0, 1)"; }

echo "generating $ROWS messages twice (plain and partitioned)..." >&2
q "CREATE EXTENSION IF NOT EXISTS pgcrypto" >/dev/null 2>&1 || true
q "
CREATE TABLE plain_messages (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    conversation_id uuid NOT NULL,
    role varchar(20) NOT NULL,
    content text NOT NULL,
    redacted_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE part_messages (LIKE plain_messages INCLUDING DEFAULTS) PARTITION BY RANGE (created_at);
DO \$\$
DECLARE m date;
BEGIN
    FOR i IN 0..23 LOOP
        m := date '2024-01-01' + make_interval(months => i);
        EXECUTE format('CREATE TABLE part_messages_%s PARTITION OF part_messages FOR VALUES FROM (%L) TO (%L)',
                       to_char(m, 'YYYY_MM'), m, m + interval '1 month');
    END LOOP;
END \$\$;
-- One generator for both tables: 24 months (2024-01 to 2025-12), contiguous per conversation.
CREATE FUNCTION gen(n bigint) RETURNS TABLE (conversation_id uuid, role text, content text, created_at timestamptz)
LANGUAGE sql AS \$\$
    SELECT md5((i / 20)::text)::uuid,
           CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END,
           'message ' || i || ' ' || repeat('lorem ipsum ', 8),
           timestamptz '2024-01-01 00:00:00+00' + (i::float8 / n) * interval '730 days'
      FROM generate_series(0, n - 1) AS i
\$\$;
" >/dev/null
q "INSERT INTO plain_messages (conversation_id, role, content, created_at) SELECT * FROM gen($ROWS)" >/dev/null
q "INSERT INTO part_messages (conversation_id, role, content, created_at) SELECT * FROM gen($ROWS)" >/dev/null
echo "indexing..." >&2
q "
ALTER TABLE plain_messages ADD PRIMARY KEY (id);
CREATE INDEX ON plain_messages (conversation_id, created_at);
CREATE INDEX ON plain_messages (created_at);
-- A partitioned table's unique keys must contain the partition key.
ALTER TABLE part_messages ADD PRIMARY KEY (id, created_at);
CREATE INDEX ON part_messages (conversation_id, created_at);
CREATE INDEX ON part_messages (created_at);
" >/dev/null
q "VACUUM ANALYZE plain_messages" >/dev/null
q "VACUUM ANALYZE part_messages" >/dev/null

# Reference: the plain INSERT rate of this machine now, into the indexed plain table.
t0=$(now)
q "INSERT INTO plain_messages (conversation_id, role, content, created_at)
   SELECT * FROM gen($REF_ROWS)" >/dev/null
t1=$(now)
insert_plain=$(awk -v n="$REF_ROWS" -v s="$(secs "$t0" "$t1")" 'BEGIN { printf "%d", n / s }')
t0=$(now)
q "INSERT INTO part_messages (conversation_id, role, content, created_at)
   SELECT * FROM gen($REF_ROWS)" >/dev/null
t1=$(now)
insert_part=$(awk -v n="$REF_ROWS" -v s="$(secs "$t0" "$t1")" 'BEGIN { printf "%d", n / s }')

month_rows=$(q "SELECT count(*) FROM plain_messages WHERE created_at < '2024-02-01'")

# The retention worker's way: batches of about BATCH rows, each its own short transaction. The
# batches walk the month in windows of created_at (keyset batching): a batch that picked "any
# BATCH due rows" again would re-read every row already done, and at this size that alone took
# over six minutes for one month. The longest batch is the longest any row lock is held; the
# table itself only ever gets ROW EXCLUSIVE, which blocks no reader or writer.
step_secs=$(( BATCH * 730 * 86400 / ROWS ))
q "
CREATE PROCEDURE batched(p_sql text, INOUT batches int DEFAULT 0, INOUT longest_ms float8 DEFAULT 0)
LANGUAGE plpgsql AS \$\$
DECLARE n bigint; t timestamptz; w timestamptz := '2024-01-01 00:00:00+00';
BEGIN
    WHILE w < '2024-02-01 00:00:00+00' LOOP
        t := clock_timestamp();
        EXECUTE p_sql USING w, least(w + make_interval(secs => $step_secs), '2024-02-01 00:00:00+00');
        GET DIAGNOSTICS n = ROW_COUNT;
        longest_ms := greatest(longest_ms, extract(epoch FROM clock_timestamp() - t) * 1000);
        batches := batches + (n > 0)::int;
        w := w + make_interval(secs => $step_secs);
        COMMIT;
    END LOOP;
END \$\$;" >/dev/null

run_batched() { # label sql
    local w0 w1 t0 t1 out
    w0=$(lsn); t0=$(now)
    out=$(q "CALL batched(\$sql\$$2\$sql\$)")
    t1=$(now); w1=$(lsn)
    printf '| %s | %s s | %s MB | %s batches, longest %.0f ms (row locks only) |\n' \
        "$1" "$(secs "$t0" "$t1")" "$(wal_mb "$w0" "$w1")" "${out%|*}" "${out#*|}"
}

redact=$(run_batched "batched redaction (UPDATE, what the worker does to messages)" \
    "UPDATE plain_messages SET content = '[redacted]', redacted_at = now()
      WHERE created_at >= \$1 AND created_at < \$2 AND redacted_at IS NULL")
delete=$(run_batched "batched DELETE" \
    "DELETE FROM plain_messages WHERE created_at >= \$1 AND created_at < \$2")

# The partitioned way: detach without blocking (SHARE UPDATE EXCLUSIVE on the parent), then
# drop the detached table nobody reads any more.
w0=$(lsn); t0=$(now)
q "ALTER TABLE part_messages DETACH PARTITION part_messages_2024_01 CONCURRENTLY" >/dev/null
t1=$(now)
q "DROP TABLE part_messages_2024_01" >/dev/null
t2=$(now); w1=$(lsn)
drop="| DETACH PARTITION CONCURRENTLY + DROP TABLE | $(secs "$t0" "$t2") s | $(wal_mb "$w0" "$w1") MB | detach $(secs "$t0" "$t1") s under SHARE UPDATE EXCLUSIVE (readers and writers go on); drop $(secs "$t1" "$t2") s of ACCESS EXCLUSIVE on the detached table only |"

# What partitioning costs the reads: a conversation's messages without the partition key in
# the query (the conversation screen and the chat history) probe every partition's index.
lookup() { # table
    local t0 t1
    t0=$(now)
    q "DO \$\$ DECLARE r record; BEGIN
         FOR i IN 1..2000 LOOP
           PERFORM * FROM $1 WHERE conversation_id = md5((i * 97 % $((ROWS / 20)))::text)::uuid
            ORDER BY created_at DESC LIMIT 50;
         END LOOP; END \$\$" >/dev/null
    t1=$(now)
    awk -v s="$(secs "$t0" "$t1")" 'BEGIN { printf "%.3f", s / 2000 * 1000 }'
}
look_plain=$(lookup plain_messages)
look_part=$(lookup part_messages)

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
pgv=$(q "SHOW server_version")
cat <<EOF

Retention of one month ($month_rows messages) out of $ROWS, batches of $BATCH;
$(nproc) cores ($cpu), PostgreSQL $pgv, $(date -u +%Y-%m-%d).

| way | time | WAL written | locks |
| --- | --- | --- | --- |
$redact
$delete
$drop

| reference and read cost (same run) | plain table | 24 monthly partitions |
| --- | --- | --- |
| plain INSERT rate, $REF_ROWS rows into the indexed table | $insert_plain rows/s | $insert_part rows/s |
| a conversation's newest 50 messages (mean of 2000) | $look_plain ms | $look_part ms |
EOF
