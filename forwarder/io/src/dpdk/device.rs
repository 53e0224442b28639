//! [`DpdkDevice`]: one DPDK ethdev, configured with one rx and one tx queue per worker, and the
//! [`DpdkPort`]s that poll those queues.

use std::ffi::{CStr, CString, c_char};
use std::sync::{Arc, Mutex};

use ecmp_dpdk_sys as sys;

use super::eal::{Eal, strerror};
use super::inner::DeviceInner;
use super::pool::default_headroom;
use super::{DpdkError, DpdkPort, Mempool, RSS_KEY_LEN};

/// How to set up a [`DpdkDevice`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Rx descriptors per queue (DPDK may round it to what the device allows).
    pub rx_desc: u16,
    /// Tx descriptors per queue.
    pub tx_desc: u16,
    /// The Toeplitz key to give the device's RSS, so that the queue the NIC picks and
    /// ecmpfwd's hash agree; ignored (and [`DpdkDevice::rss`] false) when the device has no RSS
    /// or a key of another length.
    pub rss_key: Option<[u8; RSS_KEY_LEN]>,
    /// The longest encapsulation the pipeline can push in front of a received packet: opening
    /// fails when received mbufs have less headroom.
    pub min_headroom: usize,
    /// Put the device in promiscuous mode (a forwarder receives frames for other MACs only on
    /// devices that filter; failure to enable it is not an error, many vdevs have no filter).
    pub promiscuous: bool,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            rx_desc: 1024,
            tx_desc: 1024,
            rss_key: None,
            min_headroom: 0,
            promiscuous: true,
        }
    }
}

/// Link state of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkState {
    /// Carrier up.
    pub up: bool,
    /// Speed in Mb/s (0 when unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
    /// Auto-negotiated.
    pub autoneg: bool,
}

/// The device's own packet counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the device dropped because no rx descriptor was free.
    pub imissed: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Transmit errors.
    pub oerrors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// A started DPDK device: one rx and one tx queue per worker pool given at open, and a handle
/// for its control-path state (link, statistics). Cloning shares the device; it is stopped and
/// closed when the last clone and the last of its ports are gone.
#[derive(Clone)]
pub struct DpdkDevice {
    inner: Arc<DeviceInner>,
}

impl std::fmt::Debug for DpdkDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkDevice")
            .field("spec", &self.inner.spec)
            .field("port_id", &self.inner.port_id)
            .field("queues", &self.inner.queues)
            .field("rss", &self.inner.rss)
            .finish()
    }
}

/// Whether `name` looks like a PCI address (`0000:01:00.0` or `01:00.0`), which DPDK's PCI bus
/// claims, rather than a virtual device name.
fn is_pci_address(name: &str) -> bool {
    let mut parts = name.split(':');
    let all_hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(domain), Some(bus), Some(devfn), None) => {
            all_hex(domain)
                && all_hex(bus)
                && devfn
                    .split_once('.')
                    .is_some_and(|(d, f)| all_hex(d) && all_hex(f))
        }
        (Some(bus), Some(devfn), None, None) => {
            all_hex(bus)
                && devfn
                    .split_once('.')
                    .is_some_and(|(d, f)| all_hex(d) && all_hex(f))
        }
        _ => false,
    }
}

/// The driver a virtual device name asks for: DPDK matches `net_ring0` to the `net_ring` driver
/// by prefix, so strip the instance number.
fn vdev_driver(name: &str) -> &str {
    name.trim_end_matches(|c: char| c.is_ascii_digit())
}

fn port_by_name(name: &str) -> Option<u16> {
    let cname = CString::new(name).ok()?;
    let mut port_id = 0u16;
    // SAFETY: `cname` is a valid C string and `port_id` a valid out pointer for the call.
    let rc = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut port_id) };
    (rc == 0).then_some(port_id)
}

impl DpdkDevice {
    /// Opens the device `spec` (a PCI address, or a `--vdev` spec such as `net_null0` or
    /// `net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`), with one rx and one tx queue per pool in
    /// `pools` (queue i receives into `pools[i]`: give each worker its own), and starts it.
    ///
    /// A device the EAL already created (from `--vdev` or the PCI scan) is used as it is;
    /// otherwise `spec` is hot-plugged.
    pub fn open(
        _eal: &Eal,
        spec: &str,
        config: &DeviceConfig,
        pools: &[Arc<Mempool>],
    ) -> Result<Self, DpdkError> {
        let dev_err = |what: &'static str, rc: i32| DpdkError::Device {
            device: spec.to_owned(),
            what,
            errno: -rc,
            message: strerror(-rc),
        };
        let queues = u16::try_from(pools.len())
            .ok()
            .filter(|&q| q > 0)
            .ok_or_else(|| DpdkError::Config(format!("device {spec:?}: {} queues", pools.len())))?;
        let have = default_headroom();
        if have < config.min_headroom {
            return Err(DpdkError::Headroom {
                device: spec.to_owned(),
                have,
                need: config.min_headroom,
            });
        }
        let name = spec.split(',').next().unwrap_or(spec).trim();
        let port_id = match port_by_name(name) {
            Some(id) => id,
            None => {
                let cspec = CString::new(spec).map_err(|_| DpdkError::NulInArgument {
                    arg: spec.to_owned(),
                })?;
                // SAFETY: the EAL is initialised (`_eal`); `cspec` is a valid C string, which
                // the call copies.
                let rc = unsafe { sys::rte_dev_probe(cspec.as_ptr()) };
                if rc < 0 && rc != -libc::EEXIST {
                    // The vdev bus claims a name only when a loaded driver matches its prefix,
                    // and a name no bus claims fails to parse with EFAULT: for a vdev name that
                    // means the PMD is missing, while a failure after parsing is the driver
                    // refusing the device or its arguments.
                    if rc == -libc::EFAULT && !is_pci_address(name) {
                        return Err(DpdkError::PmdMissing {
                            device: spec.to_owned(),
                            driver: vdev_driver(name).to_owned(),
                        });
                    }
                    return Err(dev_err("probing", rc));
                }
                port_by_name(name)
                    .or_else(|| port_by_name(&format!("0000:{name}")))
                    .ok_or_else(|| DpdkError::NoDevice {
                        device: spec.to_owned(),
                    })?
            }
        };

        // SAFETY: plain C struct; all-zero is valid, and the call fills it.
        let mut info: sys::rte_eth_dev_info = unsafe { std::mem::zeroed() };
        // SAFETY: `port_id` is a valid port (found above); `info` is a valid out pointer.
        let rc = unsafe { sys::rte_eth_dev_info_get(port_id, &mut info) };
        if rc < 0 {
            return Err(dev_err("reading device info", rc));
        }
        if info.max_rx_queues < queues || info.max_tx_queues < queues {
            return Err(DpdkError::TooFewQueues {
                device: spec.to_owned(),
                wanted: queues,
                rx: info.max_rx_queues,
                tx: info.max_tx_queues,
            });
        }
        for pool in pools {
            let room = pool.max_packet();
            if room < usize::from(u16::try_from(info.min_rx_bufsize).unwrap_or(u16::MAX)) {
                return Err(DpdkError::Config(format!(
                    "device {spec:?}: mbuf pool {} has {room} bytes after the headroom, the device needs {}",
                    pool.label(),
                    info.min_rx_bufsize
                )));
            }
        }

        // SAFETY: plain C struct; all-zero is DPDK's documented default configuration.
        let mut conf: sys::rte_eth_conf = unsafe { std::mem::zeroed() };
        // ethdev keeps a copy of `conf`, key pointer included, and drivers read the key through
        // it when the device starts (and restarts): the key lives on the heap, owned by the
        // device, until it is closed.
        let mut key = Box::new(config.rss_key.unwrap_or([0; RSS_KEY_LEN]));
        // SAFETY: reads constants the shim exports.
        let wanted_hf = unsafe {
            sys::ECMP_RTE_ETH_RSS_IP | sys::ECMP_RTE_ETH_RSS_TCP | sys::ECMP_RTE_ETH_RSS_UDP
        };
        let rss_hf = wanted_hf & info.flow_type_rss_offloads;
        let key_fits = info.hash_key_size == 0 || usize::from(info.hash_key_size) == RSS_KEY_LEN;
        let rss = config.rss_key.is_some() && rss_hf != 0 && key_fits;
        if rss {
            conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
            conf.rx_adv_conf.rss_conf.rss_key_len = RSS_KEY_LEN as u8;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        // SAFETY: valid port id; `conf` (and the key it points to) is alive for the call, which
        // copies what it keeps.
        let rc = unsafe { sys::rte_eth_dev_configure(port_id, queues, queues, &conf) };
        if rc < 0 {
            return Err(dev_err("configuring", rc));
        }
        let (mut rx_desc, mut tx_desc) = (config.rx_desc, config.tx_desc);
        // SAFETY: valid, configured port; the counts are valid in/out pointers.
        let rc =
            unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &mut rx_desc, &mut tx_desc) };
        if rc < 0 {
            return Err(dev_err("sizing the descriptor rings", rc));
        }
        // SAFETY: valid port id.
        let socket = unsafe { sys::rte_eth_dev_socket_id(port_id) };
        let socket = if socket < 0 {
            sys::SOCKET_ID_ANY
        } else {
            socket
        } as u32;
        for (queue, pool) in (0..queues).zip(pools) {
            // SAFETY: valid, configured, stopped port; queue < the count configured; null rx
            // conf means the driver's defaults; the pool outlives the device (kept in
            // `_pools`, released after the device is closed).
            let rc = unsafe {
                sys::rte_eth_rx_queue_setup(
                    port_id,
                    queue,
                    rx_desc,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            if rc < 0 {
                return Err(match -rc {
                    libc::ENOMEM => DpdkError::NoMemory {
                        what: format!("device {spec:?} rx queue {queue}"),
                        message: strerror(-rc),
                    },
                    _ => dev_err("setting up an rx queue", rc),
                });
            }
            // SAFETY: as above; null tx conf means the driver's defaults.
            let rc = unsafe {
                sys::rte_eth_tx_queue_setup(port_id, queue, tx_desc, socket, std::ptr::null())
            };
            if rc < 0 {
                return Err(match -rc {
                    libc::ENOMEM => DpdkError::NoMemory {
                        what: format!("device {spec:?} tx queue {queue}"),
                        message: strerror(-rc),
                    },
                    _ => dev_err("setting up a tx queue", rc),
                });
            }
        }
        // SAFETY: valid port with every queue set up.
        let rc = unsafe { sys::rte_eth_dev_start(port_id) };
        if rc < 0 {
            return Err(dev_err("starting", rc));
        }
        if rss {
            let mut update = sys::rte_eth_rss_conf {
                rss_key: key.as_mut_ptr(),
                rss_key_len: RSS_KEY_LEN as u8,
                rss_hf,
            };
            // Some drivers (the software RSS of net_null among them) take the key only through
            // this call, not from the configuration; the others may not support it
            // (-ENOTSUP), having applied the configured key at start.
            // SAFETY: valid, started port; `update` points to RSS_KEY_LEN readable bytes.
            let rc = unsafe { sys::rte_eth_dev_rss_hash_update(port_id, &mut update) };
            if rc < 0 && rc != -libc::ENOTSUP {
                return Err(dev_err("setting the RSS key", rc));
            }
        }
        if config.promiscuous {
            // SAFETY: valid, started port. Devices without an address filter refuse, which is
            // harmless: they deliver everything anyway.
            let _ = unsafe { sys::rte_eth_promiscuous_enable(port_id) };
        }
        Ok(Self {
            inner: Arc::new(DeviceInner {
                port_id,
                device: info.device,
                spec: spec.to_owned(),
                queues,
                rss,
                taken: Mutex::new(vec![false; usize::from(queues)]),
                control: Mutex::new(()),
                _rss_key: key,
                _pools: pools.to_vec(),
            }),
        })
    }

    /// The spec it was opened with.
    pub fn spec(&self) -> &str {
        &self.inner.spec
    }

    /// DPDK's port id.
    pub fn port_id(&self) -> u16 {
        self.inner.port_id
    }

    /// Rx (and tx) queues configured.
    pub fn queues(&self) -> u16 {
        self.inner.queues
    }

    /// Whether the device's RSS was given the configured Toeplitz key.
    pub fn rss(&self) -> bool {
        self.inner.rss
    }

    /// The port polling queue `queue` (its rx queue and its tx queue); `None` when the queue
    /// does not exist or its port was already taken (each queue has exactly one poller).
    pub fn port(&self, queue: u16) -> Option<DpdkPort> {
        let mut taken = self.inner.taken.lock().unwrap_or_else(|e| e.into_inner());
        let slot = taken.get_mut(usize::from(queue))?;
        if *slot {
            return None;
        }
        *slot = true;
        Some(DpdkPort::new(Arc::clone(&self.inner), queue))
    }

    /// The RSS key the device reports using (to check it took the configured one); `None` when
    /// the device has no RSS configuration to report.
    pub fn rss_key(&self) -> Option<[u8; RSS_KEY_LEN]> {
        let _guard = self.inner.control.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = [0u8; RSS_KEY_LEN];
        let mut conf = sys::rte_eth_rss_conf {
            rss_key: key.as_mut_ptr(),
            rss_key_len: RSS_KEY_LEN as u8,
            rss_hf: 0,
        };
        // SAFETY: valid port; `conf.rss_key` points to RSS_KEY_LEN writable bytes, as
        // `rss_key_len` says.
        let rc = unsafe { sys::rte_eth_dev_rss_hash_conf_get(self.inner.port_id, &mut conf) };
        (rc == 0 && conf.rss_hf != 0).then_some(key)
    }

    /// Link state, without waiting for auto-negotiation.
    pub fn link(&self) -> Result<LinkState, DpdkError> {
        let _guard = self.inner.control.lock().unwrap_or_else(|e| e.into_inner());
        let mut link = sys::rte_eth_link::default();
        // SAFETY: valid port; `link` is a valid out pointer.
        let rc = unsafe { sys::rte_eth_link_get_nowait(self.inner.port_id, &mut link) };
        if rc < 0 {
            return Err(self.err("reading the link state", rc));
        }
        Ok(LinkState {
            up: u32::from(link.link_status()) == sys::RTE_ETH_LINK_UP,
            speed_mbps: link.link_speed,
            full_duplex: u32::from(link.link_duplex()) == sys::RTE_ETH_LINK_FULL_DUPLEX,
            autoneg: link.link_autoneg() != 0,
        })
    }

    /// The device's basic counters.
    pub fn stats(&self) -> Result<DeviceStats, DpdkError> {
        let _guard = self.inner.control.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: plain C struct; all-zero is valid and the call fills it.
        let mut s: sys::rte_eth_stats = unsafe { std::mem::zeroed() };
        // SAFETY: valid port; `s` is a valid out pointer.
        let rc = unsafe { sys::rte_eth_stats_get(self.inner.port_id, &mut s) };
        if rc < 0 {
            return Err(self.err("reading statistics", rc));
        }
        Ok(DeviceStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// The driver's extended statistics, by name (allocates: the control path's, never the
    /// data path's).
    pub fn xstats(&self) -> Result<Vec<(String, u64)>, DpdkError> {
        let _guard = self.inner.control.lock().unwrap_or_else(|e| e.into_inner());
        let port = self.inner.port_id;
        // SAFETY: valid port; a null array with size 0 asks for the count only.
        let n = unsafe { sys::rte_eth_xstats_get_names(port, std::ptr::null_mut(), 0) };
        if n < 0 {
            return Err(self.err("counting xstats", n));
        }
        let n = n as usize;
        // SAFETY: plain C struct (a char array); all-zero is valid.
        let mut names = vec![unsafe { std::mem::zeroed::<sys::rte_eth_xstat_name>() }; n];
        let mut values = vec![sys::rte_eth_xstat::default(); n];
        // SAFETY: valid port; `names` has room for `n` entries, as passed.
        let got = unsafe { sys::rte_eth_xstats_get_names(port, names.as_mut_ptr(), n as u32) };
        if got < 0 {
            return Err(self.err("reading xstat names", got));
        }
        // SAFETY: valid port; `values` has room for `n` entries, as passed.
        let got_values = unsafe { sys::rte_eth_xstats_get(port, values.as_mut_ptr(), n as u32) };
        if got_values < 0 {
            return Err(self.err("reading xstats", got_values));
        }
        let count = (got as usize).min(got_values as usize).min(n);
        Ok(values[..count]
            .iter()
            .filter_map(|v| {
                let name = names.get(usize::try_from(v.id).ok()?)?;
                // SAFETY: DPDK NUL-terminates every name within its fixed-size array (zeroed
                // beforehand, so a NUL is there even if the driver wrote none).
                let name = unsafe { CStr::from_ptr(name.name.as_ptr().cast::<c_char>()) };
                Some((name.to_string_lossy().into_owned(), v.value))
            })
            .collect())
    }

    fn err(&self, what: &'static str, rc: i32) -> DpdkError {
        DpdkError::Device {
            device: self.inner.spec.clone(),
            what,
            errno: -rc,
            message: strerror(-rc),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses_are_told_from_vdev_names() {
        assert!(is_pci_address("0000:01:00.0"));
        assert!(is_pci_address("3b:00.1"));
        assert!(!is_pci_address("net_null0"));
        assert!(!is_pci_address("net_ring0"));
        assert!(!is_pci_address("0000:01:00"));
    }

    #[test]
    fn vdev_driver_strips_the_instance_number() {
        assert_eq!(vdev_driver("net_ring0"), "net_ring");
        assert_eq!(vdev_driver("net_af_xdp12"), "net_af_xdp");
        assert_eq!(vdev_driver("net_pcap"), "net_pcap");
    }
}
