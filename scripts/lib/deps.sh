# Shared helpers for scripts: install what is missing, once, on a fresh Debian machine.
# shellcheck shell=bash
_apt_updated=0
# need_apt COMMAND PACKAGE...: install PACKAGEs unless COMMAND is already on PATH.
need_apt() {
  local cmd=$1; shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "error: '$cmd' is missing and installing it needs root: apt-get install $*" >&2
    return 1
  fi
  if [ "$_apt_updated" = 0 ]; then
    apt-get update -qq
    _apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
# ensure_nextest: cargo-nextest bounds every test in time (see .config/nextest.toml).
ensure_nextest() {
  cargo nextest --version >/dev/null 2>&1 && return 0
  cargo install --locked cargo-nextest
}
