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
  # The chat page and its API, so that a newcomer can write as a person in a browser and watch
  # the message arrive in the console. Sign-in links land in the outbox file (no mail server);
  # anonymous sessions are open for the demo.
  demo_bind="${AMAL_DEMO_BIND:-127.0.0.1:8080}"
  "$engine" serve --bind "$demo_bind" --anonymous-sessions \
    >>"$AMAL_DATA_DIR/logs/serve.log" 2>&1 &
  server=$!
  trap 'kill "$simulator" "$server" 2>/dev/null || true' EXIT
  export AMAL_SIGN_IN_HINT="Demo accounts: agent.demo@amal.example, supervisor.demo@amal.example, admin.demo@amal.example; password amal-demo-2026"
  echo >&2
  echo "Demo accounts (password amal-demo-2026): agent.demo@amal.example, supervisor.demo@amal.example, admin.demo@amal.example" >&2
  for _ in $(seq 1 100); do
    curl -fsS "http://$demo_bind/healthz" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$server" 2>/dev/null; then
    echo "Chat page for people: http://$demo_bind/ (write there and watch it arrive here;" >&2
    echo "  sign-in links go to $AMAL_DATA_DIR/magic-link-outbox.jsonl, or continue without e-mail)" >&2
  else
    echo "The chat page did not start (is $demo_bind in use? set AMAL_DEMO_BIND); see $AMAL_DATA_DIR/logs/serve.log" >&2
  fi
  read -r -p "Press Enter to open the console (q quits it)... " _ || true
  "$console" "$@"
else
  # No terminal (a script or CI): show what the console would show, once.
  "$console" --once "$@"
fi
