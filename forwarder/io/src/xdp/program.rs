//! [`XdpProgram`]: loads `bpf/redirect.bpf.c` and attaches it to one interface through a
//! bpf_link.

use std::collections::HashSet;
use std::fmt;
use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use libbpf_rs::libbpf_sys;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, MapHandle, ProgramHandle};

use super::XdpError;
use super::sys;

#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    unsafe_op_in_unsafe_fn
)]
#[allow(rust_2018_idioms, unused_qualifications)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/redirect.skel.rs"));
}

/// Where the XDP program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (native XDP, `XDP_FLAGS_DRV_MODE`); fails if the driver has no XDP support.
    Driver,
    /// In the generic network stack (`XDP_FLAGS_SKB_MODE`); works on every interface, slower.
    Generic,
}

impl AttachMode {
    fn flags(self) -> u32 {
        match self {
            Self::Driver => libbpf_sys::XDP_FLAGS_DRV_MODE,
            Self::Generic => libbpf_sys::XDP_FLAGS_SKB_MODE,
        }
    }
}

/// The program's counters, summed over CPUs. Every packet the program saw is counted once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpCounters {
    /// Packets redirected to an AF_XDP socket.
    pub redirected: u64,
    /// Passed: neither IPv4 nor IPv6 (ARP, LLDP, ...), behind up to two VLAN tags; a frame
    /// with a third tag counts here too.
    pub pass_not_ip: u64,
    /// Passed: ICMPv6 router or neighbour discovery (types 133 to 137).
    pub pass_neighbour: u64,
    /// Passed: destination is one of the host's own addresses (`pass_v4` / `pass_v6`).
    pub pass_host: u64,
    /// Passed: link-local, multicast or broadcast destination.
    pub pass_link_scope: u64,
    /// Passed: no socket registered for the receiving queue.
    pub pass_no_socket: u64,
    /// Passed: too short for the headers it claims.
    pub pass_malformed: u64,
}

impl XdpCounters {
    /// Every packet left to the kernel, whatever the reason.
    pub fn passed(&self) -> u64 {
        self.pass_not_ip
            + self.pass_neighbour
            + self.pass_host
            + self.pass_link_scope
            + self.pass_no_socket
            + self.pass_malformed
    }
}

/// The ecmpfwd XDP program, loaded and attached to one interface.
///
/// Attached through a bpf_link: dropping this value (or the process dying) detaches it. Not tied
/// to a thread: the maps are updated through file descriptors.
pub struct XdpProgram {
    ifname: String,
    ifindex: u32,
    mode: AttachMode,
    prog_id: u32,
    replaced_stale: bool,
    // Declared first among the descriptors so it closes (and detaches) first.
    _link: OwnedFd,
    _prog: OwnedFd,
    xsks: MapHandle,
    pass_v4: MapHandle,
    pass_v6: MapHandle,
    counters: MapHandle,
}

/// The loaded (not attached) program and its maps.
struct Loaded {
    prog: OwnedFd,
    xsks: MapHandle,
    pass_v4: MapHandle,
    pass_v6: MapHandle,
    counters: MapHandle,
}

impl XdpProgram {
    /// The program's name in the kernel (how a stale ecmpfwd program is recognised).
    pub const NAME: &'static str = "ecmpfwd_xdp";

    /// Loads the program and attaches it to `ifname` in `mode` through a bpf_link.
    ///
    /// If an ecmpfwd program left behind by an older process without a link is attached, it is
    /// detached and replaced ([`Self::replaced_stale`] tells). Any other program, or an ecmpfwd
    /// program held by a live link, is an error naming the interface and the program id.
    pub fn attach(ifname: &str, mode: AttachMode) -> Result<Self, XdpError> {
        let ifindex = sys::ifindex(ifname)?;
        let loaded = load(ifname)?;
        let mut replaced_stale = false;
        let link = loop {
            match link_create(&loaded.prog, ifindex, mode) {
                Ok(link) => break link,
                Err(errno @ (libc::EBUSY | libc::EEXIST)) if !replaced_stale => {
                    detach_stale(ifname, ifindex, errno)?;
                    replaced_stale = true;
                }
                Err(libc::EOPNOTSUPP) if mode == AttachMode::Driver => {
                    return Err(XdpError::Unsupported {
                        ifname: ifname.to_owned(),
                        queue: 0,
                        mode: "driver-mode XDP",
                    });
                }
                Err(errno) => {
                    return Err(XdpError::from_os(
                        ifname,
                        0,
                        "attaching the XDP program",
                        std::io::Error::from_raw_os_error(errno),
                    ));
                }
            }
        };
        let prog_id = prog_id(&loaded.prog).map_err(|source| XdpError::Bpf {
            ifname: ifname.to_owned(),
            what: "reading the program id",
            source,
        })?;
        Ok(Self {
            ifname: ifname.to_owned(),
            ifindex,
            mode,
            prog_id,
            replaced_stale,
            _link: link,
            _prog: loaded.prog,
            xsks: loaded.xsks,
            pass_v4: loaded.pass_v4,
            pass_v6: loaded.pass_v6,
            counters: loaded.counters,
        })
    }

    /// Loads the program and attaches it the legacy way (netlink, no bpf_link), so it stays
    /// attached after this process exits: what an ecmpfwd build without links, or a crash of one,
    /// leaves behind. For tests of the stale-program recovery in [`Self::attach`]. Returns the
    /// program id.
    pub fn attach_unlinked(ifname: &str, mode: AttachMode) -> Result<u32, XdpError> {
        let ifindex = sys::ifindex(ifname)?;
        let loaded = load(ifname)?;
        // SAFETY: plain FFI call with a valid program fd; a null opts pointer is allowed.
        let rc = unsafe {
            libbpf_sys::bpf_xdp_attach(
                ifindex as i32,
                loaded.prog.as_raw_fd(),
                mode.flags(),
                std::ptr::null(),
            )
        };
        if rc < 0 {
            return Err(XdpError::from_os(
                ifname,
                0,
                "attaching the XDP program without a link",
                std::io::Error::from_raw_os_error(-rc),
            ));
        }
        prog_id(&loaded.prog).map_err(|source| XdpError::Bpf {
            ifname: ifname.to_owned(),
            what: "reading the program id",
            source,
        })
    }

    /// Directs packets received on `queue` to the AF_XDP socket `socket` (e.g. an
    /// [`XskPort`](super::XskPort)'s `as_fd()`); replaces any earlier socket for that queue.
    pub fn register_socket(&self, queue: u32, socket: BorrowedFd<'_>) -> Result<(), XdpError> {
        let fd = socket.as_raw_fd() as u32;
        self.xsks
            .update(&queue.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| self.bpf_err("registering a socket in the xsks map", source))
    }

    /// Stops redirecting `queue` (its packets go to the kernel); no error if none was registered.
    pub fn unregister_socket(&self, queue: u32) -> Result<(), XdpError> {
        match self.xsks.delete(&queue.to_ne_bytes()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(self.bpf_err("removing a socket from the xsks map", source)),
        }
    }

    /// Makes `addrs` exactly the set of the host's own addresses (packets to them go to the
    /// kernel, not to the sockets).
    pub fn set_pass_addrs(&self, addrs: &[IpAddr]) -> Result<(), XdpError> {
        let mut want_v4 = HashSet::new();
        let mut want_v6 = HashSet::new();
        for addr in addrs {
            match addr {
                IpAddr::V4(a) => want_v4.insert(a.octets().to_vec()),
                IpAddr::V6(a) => want_v6.insert(a.octets().to_vec()),
            };
        }
        for (map, want) in [(&self.pass_v4, want_v4), (&self.pass_v6, want_v6)] {
            let stale: Vec<Vec<u8>> = map.keys().filter(|k| !want.contains(k)).collect();
            for key in stale {
                map.delete(&key)
                    .map_err(|source| self.bpf_err("removing a pass address", source))?;
            }
            for key in want {
                map.update(&key, &[1], MapFlags::ANY)
                    .map_err(|source| self.bpf_err("adding a pass address", source))?;
            }
        }
        Ok(())
    }

    /// The program's counters, summed over CPUs.
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        let mut values = [0u64; 7];
        for (idx, value) in values.iter_mut().enumerate() {
            let per_cpu = self
                .counters
                .lookup_percpu(&(idx as u32).to_ne_bytes(), MapFlags::ANY)
                .map_err(|source| self.bpf_err("reading the counters", source))?
                .unwrap_or_default();
            *value = per_cpu
                .iter()
                .filter_map(|v| v.get(..8)?.try_into().ok())
                .map(u64::from_ne_bytes)
                .sum();
        }
        let [
            redirected,
            pass_not_ip,
            pass_neighbour,
            pass_host,
            pass_link_scope,
            pass_no_socket,
            pass_malformed,
        ] = values;
        Ok(XdpCounters {
            redirected,
            pass_not_ip,
            pass_neighbour,
            pass_host,
            pass_link_scope,
            pass_no_socket,
            pass_malformed,
        })
    }

    /// Whether attaching replaced a stale ecmpfwd program (attached without a link).
    pub fn replaced_stale(&self) -> bool {
        self.replaced_stale
    }

    /// The program's kernel id.
    pub fn prog_id(&self) -> u32 {
        self.prog_id
    }

    /// The attach mode.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    fn bpf_err(&self, what: &'static str, source: libbpf_rs::Error) -> XdpError {
        XdpError::Bpf {
            ifname: self.ifname.clone(),
            what,
            source,
        }
    }
}

impl fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpProgram")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .field("prog_id", &self.prog_id)
            .field("replaced_stale", &self.replaced_stale)
            .finish()
    }
}

/// Opens and loads the skeleton, keeping duplicates of the program's and maps' descriptors (the
/// skeleton itself is dropped: the kernel objects live as long as a descriptor does).
fn load(ifname: &str) -> Result<Loaded, XdpError> {
    let err = |what| {
        move |source| XdpError::Bpf {
            ifname: ifname.to_owned(),
            what,
            source,
        }
    };
    let mut object = MaybeUninit::uninit();
    let open = skel::RedirectSkelBuilder::default()
        .open(&mut object)
        .map_err(err("opening the BPF object"))?;
    let skel = open.load().map_err(|source| match source.kind() {
        libbpf_rs::ErrorKind::PermissionDenied => XdpError::Permission {
            ifname: ifname.to_owned(),
            what: "loading the XDP program",
        },
        _ => XdpError::Bpf {
            ifname: ifname.to_owned(),
            what: "loading the XDP program",
            source,
        },
    })?;
    let prog = skel
        .progs
        .ecmpfwd_xdp
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| XdpError::from_os(ifname, 0, "duplicating the program fd", e))?;
    Ok(Loaded {
        prog,
        xsks: MapHandle::try_from(&skel.maps.xsks).map_err(err("duplicating a map fd"))?,
        pass_v4: MapHandle::try_from(&skel.maps.pass_v4).map_err(err("duplicating a map fd"))?,
        pass_v6: MapHandle::try_from(&skel.maps.pass_v6).map_err(err("duplicating a map fd"))?,
        counters: MapHandle::try_from(&skel.maps.counters).map_err(err("duplicating a map fd"))?,
    })
}

fn prog_id(prog: &OwnedFd) -> libbpf_rs::Result<u32> {
    libbpf_rs::Program::id_from_fd(prog.as_fd())
}

/// Creates an XDP bpf_link in `mode`; Err(errno) on failure.
pub(super) fn link_create(prog: &OwnedFd, ifindex: u32, mode: AttachMode) -> Result<OwnedFd, i32> {
    let opts = libbpf_sys::bpf_link_create_opts {
        sz: size_of::<libbpf_sys::bpf_link_create_opts>() as _,
        flags: mode.flags(),
        ..Default::default()
    };
    // SAFETY: FFI call with a valid program fd and an opts struct whose `sz` is its size.
    let fd = unsafe {
        libbpf_sys::bpf_link_create(prog.as_raw_fd(), ifindex as i32, libbpf_sys::BPF_XDP, &opts)
    };
    if fd < 0 {
        return Err(-fd);
    }
    // SAFETY: bpf_link_create returned a fresh descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Detaches whatever XDP programs on the interface are stale ecmpfwd programs, or explains
/// (as an error) what is in the way.
fn detach_stale(ifname: &str, ifindex: u32, errno: i32) -> Result<(), XdpError> {
    let mut q = libbpf_sys::bpf_xdp_query_opts {
        sz: size_of::<libbpf_sys::bpf_xdp_query_opts>() as _,
        ..Default::default()
    };
    // SAFETY: FFI call with an opts struct whose `sz` is its size, alive for the call.
    let rc = unsafe { libbpf_sys::bpf_xdp_query(ifindex as i32, 0, &mut q) };
    if rc < 0 {
        return Err(XdpError::from_os(
            ifname,
            0,
            "querying the attached XDP program",
            std::io::Error::from_raw_os_error(-rc),
        ));
    }
    if q.hw_prog_id != 0 {
        return Err(foreign(ifname, q.hw_prog_id, " (offloaded)"));
    }
    let mut found = false;
    for (id, flags) in [
        (q.drv_prog_id, libbpf_sys::XDP_FLAGS_DRV_MODE),
        (q.skb_prog_id, libbpf_sys::XDP_FLAGS_SKB_MODE),
    ] {
        if id == 0 {
            continue;
        }
        found = true;
        let handle = ProgramHandle::from_prog_id(id).map_err(|source| XdpError::Bpf {
            ifname: ifname.to_owned(),
            what: "opening the attached XDP program",
            source,
        })?;
        if handle.name().to_str() != Some(XdpProgram::NAME) {
            return Err(foreign(ifname, id, ""));
        }
        let opts = libbpf_sys::bpf_xdp_attach_opts {
            sz: size_of::<libbpf_sys::bpf_xdp_attach_opts>() as _,
            // Replace only this program, in case it changed since the query.
            old_prog_fd: handle.as_fd().as_raw_fd(),
            ..Default::default()
        };
        // SAFETY: FFI call with an opts struct whose `sz` is its size, alive for the call.
        let rc = unsafe { libbpf_sys::bpf_xdp_detach(ifindex as i32, flags, &opts) };
        if rc == -libc::EBUSY {
            // Netlink cannot detach a program held by a link: a live process owns it.
            return Err(foreign(
                ifname,
                id,
                " through a bpf_link (is another ecmpfwd running?)",
            ));
        }
        if rc < 0 {
            return Err(XdpError::from_os(
                ifname,
                0,
                "detaching a stale XDP program",
                std::io::Error::from_raw_os_error(-rc),
            ));
        }
    }
    if found {
        Ok(())
    } else {
        // Nothing attached after all (it went away meanwhile): report the original error.
        Err(XdpError::from_os(
            ifname,
            0,
            "attaching the XDP program",
            std::io::Error::from_raw_os_error(errno),
        ))
    }
}

/// The error for an interface whose XDP slot is taken (`errno` from the attach): names the
/// program attached there, in whichever mode.
pub(super) fn occupied(ifname: &str, ifindex: u32, errno: i32) -> XdpError {
    let mut q = libbpf_sys::bpf_xdp_query_opts {
        sz: size_of::<libbpf_sys::bpf_xdp_query_opts>() as _,
        ..Default::default()
    };
    // SAFETY: FFI call with an opts struct whose `sz` is its size, alive for the call.
    let rc = unsafe { libbpf_sys::bpf_xdp_query(ifindex as i32, 0, &mut q) };
    match [q.hw_prog_id, q.drv_prog_id, q.skb_prog_id]
        .into_iter()
        .find(|&id| id != 0)
    {
        Some(id) if rc == 0 => foreign(ifname, id, ""),
        _ => XdpError::from_os(
            ifname,
            0,
            "attaching the XDP program",
            std::io::Error::from_raw_os_error(errno),
        ),
    }
}

fn foreign(ifname: &str, prog_id: u32, how: &'static str) -> XdpError {
    let prog_name = ProgramHandle::from_prog_id(prog_id)
        .ok()
        .and_then(|h| h.name().to_str().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    XdpError::ForeignProgram {
        ifname: ifname.to_owned(),
        prog_id,
        prog_name,
        how,
    }
}
