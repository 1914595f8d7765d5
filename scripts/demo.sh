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
# A demo database from before the embedding model (or with another embedder) moves to the
# configured one first; otherwise this only records the model (resumable, quick when done).
"$engine" kb reembed >&2
"$engine" seed --demo >&2

console="${CARGO_TARGET_DIR:-target}/debug/amal"
if [ -t 0 ] && [ -t 1 ]; then
  # Simulated people write in Arabic, French and English (some in crisis) while the console is
  # open, so conversations, escalations and countdowns move. Its log is beside the console's.
  mkdir -p "$AMAL_DATA_DIR/logs"
  "$engine" simulate --messages-per-minute "${AMAL_DEMO_MESSAGES_PER_MINUTE:-10}" \
    >>"$AMAL_DATA_DIR/logs/simulator.log" 2>&1 &
  simulator=$!
  trap 'kill "$simulator" 2>/dev/null || true' EXIT
  export AMAL_SIGN_IN_HINT="Demo accounts: agent.demo@amal.example, supervisor.demo@amal.example, admin.demo@amal.example; password amal-demo-2026"
  echo >&2
  echo "Demo accounts (password amal-demo-2026): agent.demo@amal.example, supervisor.demo@amal.example, admin.demo@amal.example" >&2
  read -r -p "Press Enter to open the console (q quits it)... " _ || true
  "$console" "$@"
else
  # No terminal (a script or CI): show what the console would show, once.
  "$console" --once "$@"
fi
