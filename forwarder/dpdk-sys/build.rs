//! Binds the system's DPDK when the `dpdk` feature is on; does nothing otherwise, so that the
//! default workspace build needs no DPDK.
//!
//! Flags come from running `pkg-config` directly: the `pkg-config` crate drops `-include
//! rte_config.h` from the cflags, without which every DPDK header misreads its configuration.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "dpdk")]
    dpdk::build();
}

#[cfg(feature = "dpdk")]
mod dpdk {
    use std::env;
    use std::path::PathBuf;
    use std::process::Command;

    /// Runs `pkg-config ARG libdpdk` and splits its output into flags.
    fn pkg_config(arg: &str) -> Vec<String> {
        let out = Command::new("pkg-config")
            .args([arg, "libdpdk"])
            .output()
            .unwrap_or_else(|e| {
                panic!("running pkg-config {arg} libdpdk: {e} (install pkg-config)")
            });
        if !out.status.success() {
            panic!(
                "pkg-config {arg} libdpdk failed (install libdpdk-dev): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    pub fn build() {
        println!("cargo:rerun-if-changed=src/shim.h");
        println!("cargo:rerun-if-changed=src/shim.c");
        println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
        let cflags = pkg_config("--cflags");

        let mut shim = cc::Build::new();
        shim.file("src/shim.c").opt_level(2).warnings(true);
        for flag in &cflags {
            shim.flag(flag);
        }
        shim.compile("ecmp_dpdk_shim");

        for flag in pkg_config("--libs") {
            if let Some(dir) = flag.strip_prefix("-L") {
                println!("cargo:rustc-link-search=native={dir}");
            } else if let Some(lib) = flag.strip_prefix("-l") {
                println!("cargo:rustc-link-lib={lib}");
            }
            // `-Wl,--as-needed` is rustc's default for shared libraries already.
        }

        let bindings = bindgen::Builder::default()
            .header("src/shim.h")
            .clang_args(&cflags)
            .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
            .default_enum_style(bindgen::EnumVariation::ModuleConsts)
            .derive_default(true)
            .layout_tests(false)
            .generate_comments(false)
            // The shim's wrappers of the static inline functions and its exported constants.
            .allowlist_function("ecmp_.*")
            .allowlist_var("ECMP_.*")
            // EAL and lcores.
            .allowlist_function("rte_eal_(init|cleanup|process_type)")
            .allowlist_function("rte_strerror")
            .allowlist_function("rte_socket_id|rte_lcore_count|rte_thread_(register|unregister)")
            .allowlist_function("rte_dev_(probe|remove)")
            // Ethdev.
            .allowlist_function("rte_eth_dev_(count_avail|get_port_by_name|get_name_by_port|info_get|configure|start|stop|close|socket_id|is_valid_port|rss_hash_conf_get|rss_hash_update|set_mtu|adjust_nb_rx_tx_desc)")
            .allowlist_function("rte_eth_(rx|tx)_queue_setup")
            .allowlist_function("rte_eth_link_get_nowait|rte_eth_link_speed_to_str")
            .allowlist_function("rte_eth_xstats_(get|get_names|reset)")
            .allowlist_function("rte_eth_stats_(get|reset)")
            .allowlist_function("rte_eth_promiscuous_enable|rte_eth_macaddr_get")
            .allowlist_function("rte_eth_find_next_owned_by")
            // Mempool and mbufs.
            .allowlist_function("rte_pktmbuf_pool_create|rte_mempool_free|rte_mempool_lookup")
            .allowlist_type("rte_eth_(conf|dev_info|link|xstat|xstat_name|rss_conf|stats|rxconf|txconf)")
            .allowlist_type("rte_eth_rx_mq_mode|rte_eth_tx_mq_mode")
            .allowlist_type("rte_mbuf|rte_mempool|rte_ether_addr")
            .allowlist_var("RTE_ETH_NAME_MAX_LEN|RTE_ETH_XSTATS_NAME_SIZE|RTE_MAX_ETHPORTS")
            .allowlist_var("RTE_ETH_LINK_(UP|DOWN|FULL_DUPLEX|HALF_DUPLEX)")
            .allowlist_var("RTE_MEMPOOL_NAMESIZE|SOCKET_ID_ANY|LCORE_ID_ANY|RTE_MBUF_DEFAULT_BUF_SIZE")
            .generate()
            .expect("bindgen could not bind the DPDK headers (is libclang-dev installed?)");
        let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
        bindings
            .write_to_file(out.join("bindings.rs"))
            .expect("writing bindings.rs");
    }
}
