#!/usr/bin/env bash
# The main job: build and open the operator console on the embedded database with demo data.
# Does all set-up itself; safe to re-run (the demo database is kept and re-seeded idempotently).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# The demo has its own database, apart from any real one; reuse it from another shell with
#   export AMAL_DATA_DIR="$PWD/.amal-demo"
export AMAL_DATA_DIR="${AMAL_DATA_DIR:-$PWD/.amal-demo}"
unset DATABASE_URL

cargo build --workspace --bins --locked
engine="${CARGO_TARGET_DIR:-target}/debug/amal-engine"

"$engine" db start >&2
"$engine" seed --demo >&2

if [ -t 0 ] && [ -t 1 ]; then
  exec "${CARGO_TARGET_DIR:-target}/debug/amal" "$@"
else
  # No terminal (a script or CI): show what the console would show, once.
  exec "${CARGO_TARGET_DIR:-target}/debug/amal" --once "$@"
fi
