# shellcheck shell=bash
# Helpers shared by scripts/test and scripts/bench. Source it, don't run it:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# It sets REPO_ROOT and TARGET_DIR and defines:
#   section TEXT           print a "== TEXT" header for CI logs
#   note TEXT / die TEXT   print to stderr (die exits 1)
#   need_cmd CMD PKG...    install Debian packages PKG... unless CMD is on PATH
#   apt_install PKG...     apt-get install (runs apt-get update once first)
#   apt_install_nostart PKG...  same, but keeps Debian's maintainer scripts from
#                          starting the packages' system services (nginx, postgresql)
#   on_exit CMD            register a cleanup command; all run in reverse order on exit
#   free_port              print a free TCP port on 127.0.0.1
#   sha256_of FILE         print the hex SHA-256 of FILE

LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$LIB_DIR/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
# cargo accepts a relative CARGO_TARGET_DIR (relative to the cwd); make it absolute.
TARGET_DIR=$(realpath -m "$TARGET_DIR")

section() { printf '\n== %s\n' "$*"; }
note() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# --- cleanup stack -----------------------------------------------------------
# Commands registered with on_exit run in reverse order when the script exits,
# whatever the reason (normal end, failure under set -e, Ctrl-C, SIGTERM).
_CLEANUP=()
on_exit() { _CLEANUP+=("$*"); }
_run_cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    set +e
    for ((i = ${#_CLEANUP[@]} - 1; i >= 0; i--)); do
        eval "${_CLEANUP[i]}" >/dev/null 2>&1
    done
    exit "$rc"
}
trap _run_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- packages ----------------------------------------------------------------
_APT_UPDATED=0
_sudo() {
    if [[ $EUID -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install by hand: $*"
    if [[ $_APT_UPDATED -eq 0 ]]; then
        section "apt-get update"
        _sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
        _APT_UPDATED=1
    fi
    section "installing $* (Debian)"
    _sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "$@" </dev/null
}
# Debian starts a package's service from its postinst (nginx on port 80, a
# PostgreSQL cluster on 5432). We only want the binaries, so while installing,
# a temporary /usr/sbin/policy-rc.d (exit 101 = "action forbidden") is put in
# place, unless one already exists.
apt_install_nostart() {
    local policy=/usr/sbin/policy-rc.d created=0
    if [[ ! -e $policy ]]; then
        _sudo sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
        created=1
    fi
    local rc=0
    apt_install "$@" || rc=$?
    if [[ $created -eq 1 ]]; then _sudo rm -f "$policy"; fi
    return "$rc"
}
need_cmd() {
    local cmd=$1; shift
    command -v "$cmd" >/dev/null 2>&1 || apt_install "$@"
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after installing $*"
}

# --- misc --------------------------------------------------------------------
# A port the kernel considers free right now on 127.0.0.1 (bind to port 0).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
