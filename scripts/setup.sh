#!/usr/bin/env bash
# Idempotent machine set-up for Amal: PostgreSQL 15 server and pgvector.
# Safe to re-run: every step checks before it acts.
set -euo pipefail

PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
PG_CONFIG="${PG_BIN}/pg_config"
PGVECTOR_VERSION_WANTED="0.8"

log() { printf '[setup] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    log "not root and no sudo: install postgresql-${PG_MAJOR} and pgvector by hand"; fi
fi

apt_updated=0
apt_update_once() {
  if [ "$apt_updated" -eq 0 ]; then
    log "apt-get update"
    $SUDO apt-get update -qq >/dev/null
    apt_updated=1
  fi
}

apt_install() {
  apt_update_once
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# 1. PostgreSQL 15 server binaries.
if [ ! -x "${PG_BIN}/postgres" ] || [ ! -x "${PG_BIN}/initdb" ]; then
  apt_install "postgresql-${PG_MAJOR}" "postgresql-contrib-${PG_MAJOR}" || apt_install "postgresql-${PG_MAJOR}"
fi

# 2. pgvector: a binary package where one exists, else Debian's source package built here.
have_pgvector() {
  [ -f "$(${PG_CONFIG} --sharedir)/extension/vector.control" ] && \
  [ -f "$(${PG_CONFIG} --pkglibdir)/vector.so" ]
}

if ! have_pgvector; then
  apt_update_once
  if apt-cache show "postgresql-${PG_MAJOR}-pgvector" >/dev/null 2>&1; then
    apt_install "postgresql-${PG_MAJOR}-pgvector"
  fi
fi

if ! have_pgvector; then
  log "building pgvector from Debian's source package"
  src_list=/etc/apt/sources.list.d/amal-trixie-src.list
  if [ ! -f "$src_list" ]; then
    echo "deb-src http://deb.debian.org/debian trixie main" | $SUDO tee "$src_list" >/dev/null
    apt_updated=0
  fi
  apt_install "postgresql-server-dev-${PG_MAJOR}" make gcc dpkg-dev
  apt_update_once
  build_dir="$(mktemp -d /tmp/amal-pgvector.XXXXXX)"
  (
    cd "$build_dir"
    apt-get source -qq pgvector >/dev/null 2>&1 || apt-get source pgvector
    cd pgvector-*/
    make -s PG_CONFIG="$PG_CONFIG" OPTFLAGS="" >/dev/null
    $SUDO make -s PG_CONFIG="$PG_CONFIG" install >/dev/null
  )
  rm -rf "$build_dir"
  # The deb-src line is only needed for the build; keep apt's view of the machine as it was.
  $SUDO rm -f "$src_list"
fi

if ! have_pgvector; then
  log "pgvector is still missing after set-up"
  exit 1
fi
ver=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$(${PG_CONFIG} --sharedir)/extension/vector.control")
case "$ver" in
  ${PGVECTOR_VERSION_WANTED}*) ;;
  *) log "warning: pgvector ${ver} installed; ${PGVECTOR_VERSION_WANTED}.x expected (iterative index scans)";;
esac

# 3. Tools the tests and benchmarks use (tmux for the console's end-to-end test).
command -v tmux >/dev/null 2>&1 || apt_install tmux

log "PostgreSQL ${PG_MAJOR} and pgvector ${ver} ready"
