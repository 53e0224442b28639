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
# ensure_exabgp: ExaBGP 5.0.15 (the BGP companion) in the repo's .venv-exabgp, for the
# integration test control/core/tests/exabgp.rs; exports ECMP_EXABGP for it.
ensure_exabgp() {
  local venv="$PWD/.venv-exabgp"
  local have
  have=$("$venv/bin/python3" -c 'import importlib.metadata as m; print(m.version("exabgp"))' 2>/dev/null || true)
  if [ "$have" != 5.0.15 ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check exabgp==5.0.15
  fi
  export ECMP_EXABGP="$venv/bin/exabgp"
}
# need_debs PACKAGE...: install the Debian packages that are not installed yet (libraries and
# headers have no command to look for).
need_debs() {
  local missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" = 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "error: missing Debian packages and installing them needs root: apt-get install ${missing[*]}" >&2
    return 1
  fi
  if [ "$_apt_updated" = 0 ]; then
    apt-get update -qq
    _apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
# ensure_build_deps: what building ecmpfwd needs besides Rust: clang compiles the XDP program
# (libbpf-cargo), libbpf links against libelf and zlib.
ensure_build_deps() {
  need_debs clang libelf-dev zlib1g-dev pkg-config make libpcap-dev
}
