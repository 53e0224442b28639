# DPDK for the baseline benchmark (scripts/lib/testpmd.py): testpmd with the net_af_xdp driver.
# shellcheck shell=bash
# Source scripts/lib/deps.sh first (need_debs comes from there).
#
# ensure_dpdk: Debian's dpdk-dev ships dpdk-testpmd (the `dpdk` package does not). Its net_af_xdp
# driver (librte-net-af-xdp23, a dependency) brings libxdp1 and libbpf1. Measured on this kind of
# machine (bookworm, DPDK 22.11): 21 s wall for apt-get update plus the install, no recommends.
ensure_dpdk() {
  command -v dpdk-testpmd >/dev/null 2>&1 && return 0
  need_debs dpdk-dev || return 1
  if ! command -v dpdk-testpmd >/dev/null 2>&1; then
    echo "error: dpdk-dev is installed but dpdk-testpmd is not on PATH" >&2
    return 1
  fi
}
# ensure_dpdk_build_deps: what the `dpdk` cargo feature (ecmp-dpdk-sys) builds against: DPDK's
# headers and libraries (found through pkg-config) and libclang for bindgen.
ensure_dpdk_build_deps() {
  need_debs libdpdk-dev libclang-dev pkg-config
}
