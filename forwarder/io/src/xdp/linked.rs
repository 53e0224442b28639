//! What the benchmark programs ([`DropSink`](super::DropSink), [`FibForwarder`](super::FibForwarder))
//! share: attaching through a bpf_link that never replaces another program, and reading a
//! per-CPU counter array summed over CPUs.

use std::os::fd::OwnedFd;

use libbpf_rs::{MapCore, MapFlags, MapHandle};

use super::XdpError;
use super::program::{AttachMode, link_create, occupied};

/// Attaches `prog` to `ifname` in `mode` through a bpf_link (detached when the returned
/// descriptor closes). An interface that already has an XDP program is an error naming it.
pub(super) fn attach(
    prog: &OwnedFd,
    ifname: &str,
    ifindex: u32,
    mode: AttachMode,
    what: &'static str,
) -> Result<OwnedFd, XdpError> {
    match link_create(prog, ifindex, mode) {
        Ok(link) => Ok(link),
        Err(libc::EOPNOTSUPP) if mode == AttachMode::Driver => Err(XdpError::Unsupported {
            ifname: ifname.to_owned(),
            queue: 0,
            mode: "driver-mode XDP",
        }),
        Err(errno @ (libc::EBUSY | libc::EEXIST)) => Err(occupied(ifname, ifindex, errno)),
        Err(errno) => Err(XdpError::from_os(
            ifname,
            0,
            what,
            std::io::Error::from_raw_os_error(errno),
        )),
    }
}

/// The first `N` slots of a per-CPU array of u64 counters, each summed over CPUs.
pub(super) fn sum_per_cpu<const N: usize>(
    map: &MapHandle,
    ifname: &str,
) -> Result<[u64; N], XdpError> {
    let mut values = [0u64; N];
    for (idx, value) in values.iter_mut().enumerate() {
        let per_cpu = map
            .lookup_percpu(&(idx as u32).to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| XdpError::Bpf {
                ifname: ifname.to_owned(),
                what: "reading the program's counters",
                source,
            })?
            .unwrap_or_default();
        *value = per_cpu
            .iter()
            .filter_map(|v| v.get(..8)?.try_into().ok())
            .map(u64::from_ne_bytes)
            .sum();
    }
    Ok(values)
}

/// The error of loading a program: permission problems named as such.
pub(super) fn load_error(ifname: &str, what: &'static str, source: libbpf_rs::Error) -> XdpError {
    match source.kind() {
        libbpf_rs::ErrorKind::PermissionDenied => XdpError::Permission {
            ifname: ifname.to_owned(),
            what,
        },
        _ => XdpError::Bpf {
            ifname: ifname.to_owned(),
            what,
            source,
        },
    }
}

/// A loaded program attached through a link, with its counter map.
pub(super) struct Attached {
    pub ifname: String,
    pub mode: AttachMode,
    // Declared first among the descriptors so it closes (and detaches) first.
    _link: OwnedFd,
    _prog: OwnedFd,
    counters: MapHandle,
}

impl Attached {
    /// Attaches `prog` (see [`attach`]); `what` names the step in errors.
    pub fn new(
        prog: OwnedFd,
        counters: MapHandle,
        ifname: &str,
        ifindex: u32,
        mode: AttachMode,
        what: &'static str,
    ) -> Result<Self, XdpError> {
        let link = attach(&prog, ifname, ifindex, mode, what)?;
        Ok(Self {
            ifname: ifname.to_owned(),
            mode,
            _link: link,
            _prog: prog,
            counters,
        })
    }

    /// The first `N` counters, summed over CPUs.
    pub fn counters<const N: usize>(&self) -> Result<[u64; N], XdpError> {
        sum_per_cpu(&self.counters, &self.ifname)
    }
}

/// Loads the skeleton `$builder` (a `*SkelBuilder` of the calling module), takes its program
/// `$prog` and its `counters` map, and attaches the program to `$ifname` through a link
/// ([`Attached::new`]); `$what` names the program in errors ("the sink program").
macro_rules! load_attached {
    ($builder:ty, $prog:ident, $ifname:expr, $mode:expr, $what:literal) => {{
        use libbpf_rs::skel::{OpenSkel as _, SkelBuilder as _};
        use std::os::fd::AsFd as _;
        let ifname: &str = $ifname;
        let ifindex = $crate::xdp::sys::ifindex(ifname)?;
        let bpf_err = |what: &'static str| {
            move |source| $crate::xdp::XdpError::Bpf {
                ifname: ifname.to_owned(),
                what,
                source,
            }
        };
        let mut object = std::mem::MaybeUninit::uninit();
        let open = <$builder>::default()
            .open(&mut object)
            .map_err(bpf_err("opening the BPF object"))?;
        let skel = open
            .load()
            .map_err(|e| $crate::xdp::linked::load_error(ifname, concat!("loading ", $what), e))?;
        let prog = skel.progs.$prog.as_fd().try_clone_to_owned().map_err(|e| {
            $crate::xdp::XdpError::from_os(ifname, 0, "duplicating the program fd", e)
        })?;
        let counters = libbpf_rs::MapHandle::try_from(&skel.maps.counters)
            .map_err(bpf_err("duplicating a map fd"))?;
        $crate::xdp::linked::Attached::new(
            prog,
            counters,
            ifname,
            ifindex,
            $mode,
            concat!("attaching ", $what),
        )
    }};
}
pub(super) use load_attached;
