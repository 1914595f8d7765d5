#!/usr/bin/env bash
# The whole test suite against a real PostgreSQL with pgvector. Does all set-up itself; safe to re-run.
#   bash scripts/test.sh [cargo test arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# The test cluster lives inside target/ so it never touches the user's own data directory.
export AMAL_DATA_DIR="${AMAL_TEST_DATA_DIR:-$PWD/target/amal-test-db}"
unset DATABASE_URL

cargo build --workspace --all-targets --locked
engine="${CARGO_TARGET_DIR:-target}/debug/amal-engine"

# A fresh test cluster for every run (about a second), stopped after it even on failure. It
# does not archive its WAL: every test database would be copied to the archive for nothing
# (the point-in-time tests make clusters of their own, which do).
AMAL_WAL_ARCHIVE=off "$engine" db reset --yes >&2
trap 'env -u DATABASE_URL "$engine" db stop >&2 || true' EXIT
DATABASE_URL="$(AMAL_WAL_ARCHIVE=off "$engine" db url | tail -n 1)"
export DATABASE_URL

# #[sqlx::test] creates one database per test on this server; the cluster tests create their own clusters.
cargo test --workspace --locked --no-fail-fast "$@"
