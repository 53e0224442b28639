//! rtnetlink access for the control thread: a port's own link facts, the kernel's neighbour
//! table, triggering neighbour resolution, and a non-blocking feed of neighbour changes.
//!
//! - [`interface`]: index, MAC, MTU, admin/carrier state, addresses and rx queue count of a port.
//! - [`neighbours`]: one dump of the IPv4 and IPv6 neighbour tables.
//! - [`resolve`]: asks the kernel to resolve a next hop (`RTM_NEWNEIGH` with `NTF_USE`, as routing
//!   daemons do); returns at once, the MAC shows up in the table (and on a
//!   [`NeighbourWatch`]) when the peer answers.
//! - [`NeighbourWatch`]: a socket on the `RTNLGRP_NEIGH` group, polled without blocking; an
//!   overrun is reported as [`NeighEvent::Overrun`] so the caller re-dumps.
//!
//! Everything here runs in the network namespace of the calling thread at the time a socket is
//! opened ([`interface`], [`neighbours`] and [`resolve`] open one per call; a watch keeps the one it
//! opened). None of it belongs on the hot path: every call is a syscall or several.
//!
//! Messages are encoded and decoded here (`wire`), with every length checked: a truncated or
//! inconsistent reply is [`NetlinkError::Malformed`], never a panic. Replies must carry the
//! request's sequence number and this socket's port id; dumps are followed to `NLMSG_DONE` and
//! rerun if the kernel flags them interrupted; datagrams of any size are received whole.

mod socket;
mod wire;

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use socket::{ACKED_FLAGS, DUMP_FLAGS, NlSocket};
use wire::{NLM_F_CREATE, NTF_USE, NUD_NONE, Request};

/// Errors of rtnetlink access. Messages name the interface, address or request concerned.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// Opening, binding or configuring a netlink socket failed.
    #[error("cannot set up a netlink socket: {op} failed")]
    Socket {
        /// The failing call.
        op: &'static str,
        /// What the OS said.
        source: io::Error,
    },
    /// Sending to or receiving from the kernel failed.
    #[error("{what}: netlink I/O failed")]
    Io {
        /// The request, e.g. `RTM_GETLINK eth0`.
        what: String,
        /// What the OS said.
        source: io::Error,
    },
    /// The kernel did not answer a request in time.
    #[error("{what}: no reply from the kernel within {timeout:?}")]
    Timeout {
        /// The request.
        what: String,
        /// How long it waited for the next reply datagram.
        timeout: Duration,
    },
    /// No interface of that name exists in the calling thread's network namespace.
    #[error("no such interface: {name}")]
    NoSuchInterface {
        /// The name asked for.
        name: String,
    },
    /// The string cannot be a Linux interface name (empty, over 15 bytes, `.`/`..`, or holding
    /// `/`, `:`, NUL or whitespace).
    #[error("invalid interface name {name:?}")]
    InvalidInterfaceName {
        /// The name asked for.
        name: String,
    },
    /// The interface has no 6-byte (Ethernet) hardware address.
    #[error("interface {name} has no Ethernet MAC address")]
    NoMacAddress {
        /// The interface.
        name: String,
    },
    /// The kernel refused a request (`NLMSG_ERROR` with an errno, or a dump ending in one).
    #[error("{what}: refused by the kernel{}", ext_ack(.message))]
    Kernel {
        /// The request, e.g. `resolve 198.18.0.2 on ifindex 4`.
        what: String,
        /// The kernel's extended-ack text, when it gave one.
        message: Option<String>,
        /// The errno.
        source: io::Error,
    },
    /// A message from the kernel is truncated or inconsistent.
    #[error("{what}: malformed netlink message: {reason}")]
    Malformed {
        /// The request or notification being decoded.
        what: String,
        /// Which check failed.
        reason: &'static str,
    },
    /// A reply carried another request's sequence number or another socket's port id.
    #[error(
        "{what}: reply with sequence {seq} for port {port}, expected sequence {expected_seq} for port {expected_port}"
    )]
    UnexpectedReply {
        /// The request.
        what: String,
        /// Sequence number received.
        seq: u32,
        /// Port id received.
        port: u32,
        /// Sequence number of the request.
        expected_seq: u32,
        /// This socket's port id.
        expected_port: u32,
    },
    /// Every attempt at a dump was interrupted by concurrent changes (`NLM_F_DUMP_INTR`).
    #[error("{what}: dump interrupted by concurrent changes {attempts} times in a row")]
    DumpInterrupted {
        /// The dump.
        what: String,
        /// Attempts made.
        attempts: u32,
    },
}

fn ext_ack(message: &Option<String>) -> String {
    message
        .as_deref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default()
}

/// What the forwarder needs to know about one of its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Interface index (`ifindex`).
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address.
    pub mac: [u8; 6],
    /// MTU (L3 payload bytes, Ethernet header excluded).
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Carrier present (`IFF_LOWER_UP`); a veth has it when both ends are up.
    pub carrier: bool,
    /// Addresses with their prefix lengths, IPv4 and IPv6 (link-local included), in kernel order.
    pub addrs: Vec<(IpAddr, u8)>,
    /// Number of receive queues (`IFLA_NUM_RX_QUEUES`): AF_XDP binds one socket per queue.
    pub rx_queues: u32,
}

/// State of a neighbour entry, decoded from the kernel's `NUD_*` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeighState {
    /// Confirmed recently (`NUD_REACHABLE`).
    Reachable,
    /// Known but unconfirmed for a while; used, and re-checked on use (`NUD_STALE`).
    Stale,
    /// Used while stale; waiting briefly for upper-layer confirmation (`NUD_DELAY`).
    Delay,
    /// Being re-confirmed by unicast probes (`NUD_PROBE`).
    Probe,
    /// Resolution failed (`NUD_FAILED`).
    Failed,
    /// Resolution in progress, no address yet (`NUD_INCOMPLETE`).
    Incomplete,
    /// Static entry (`NUD_PERMANENT`).
    Permanent,
    /// No resolution needed on this link, e.g. multicast or point-to-point (`NUD_NOARP`).
    Noarp,
    /// No state (`NUD_NONE`, or bits this decoder does not know).
    None,
}

impl NeighState {
    /// Decodes a kernel `ndm_state` value.
    pub fn from_nud(nud: u16) -> Self {
        wire::nud_state(nud)
    }
}

/// One entry of the kernel's neighbour table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Neighbour {
    /// Interface the entry belongs to.
    pub ifindex: u32,
    /// The neighbour's IP address.
    pub addr: IpAddr,
    /// Its MAC, when the kernel has a 6-byte link-layer address for it.
    pub mac: Option<[u8; 6]>,
    /// Entry state.
    pub state: NeighState,
}

impl Neighbour {
    /// Whether frames may be sent to [`mac`](Self::mac): there is one and the entry is neither
    /// failed nor still incomplete.
    pub fn usable(&self) -> bool {
        self.mac.is_some() && !matches!(self.state, NeighState::Failed | NeighState::Incomplete)
    }
}

/// A change to the neighbour table seen by a [`NeighbourWatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeighEvent {
    /// An entry was added or changed (`RTM_NEWNEIGH`).
    New(Neighbour),
    /// An entry was removed (`RTM_DELNEIGH`).
    Del(Neighbour),
    /// The kernel dropped notifications (the socket overran): dump [`neighbours`] again.
    Overrun,
}

/// Longest Linux interface name in bytes (`IFNAMSIZ` counts the NUL too).
pub const MAX_IFNAME_LEN: usize = libc::IFNAMSIZ - 1;

/// Linux's `dev_valid_name`, so a bad name is reported as such rather than as an errno.
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
}

/// Reads a port's index, MAC, MTU, state, addresses and rx queue count.
pub fn interface(name: &str) -> Result<Interface, NetlinkError> {
    if !valid_ifname(name) {
        return Err(NetlinkError::InvalidInterfaceName {
            name: name.to_owned(),
        });
    }
    let mut sock = NlSocket::request_socket()?;
    let link_what = || format!("RTM_GETLINK {name}");
    let req = Request::new(wire::RTM_GETLINK, ACKED_FLAGS)
        .ifinfomsg(0)
        .ifname(name);
    let mut link = None;
    let r = sock.call(req, &link_what, &mut |m| {
        if m.ty == wire::RTM_NEWLINK {
            let l = wire::decode_link(m.payload).map_err(|e| NetlinkError::Malformed {
                what: link_what(),
                reason: e.0,
            })?;
            link = Some(l);
        }
        Ok(())
    });
    match r {
        Err(NetlinkError::Kernel { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => {
            return Err(NetlinkError::NoSuchInterface {
                name: name.to_owned(),
            });
        }
        r => r?,
    }
    let link = link.ok_or_else(|| NetlinkError::Malformed {
        what: link_what(),
        reason: "acknowledged without a link message",
    })?;
    let mac = link
        .address
        .as_deref()
        .and_then(|a| <[u8; 6]>::try_from(a).ok())
        .ok_or_else(|| NetlinkError::NoMacAddress {
            name: name.to_owned(),
        })?;

    let index = link.index;
    let addr_what = || format!("RTM_GETADDR {name} (ifindex {index})");
    let mut addrs = Vec::new();
    sock.dump(
        &|| Request::new(wire::RTM_GETADDR, DUMP_FLAGS).ifaddrmsg(index),
        &addr_what,
        &mut |m| {
            if m.ty != wire::RTM_NEWADDR {
                return Ok(None);
            }
            let a = wire::decode_addr(m.payload).map_err(|e| NetlinkError::Malformed {
                what: addr_what(),
                reason: e.0,
            })?;
            // Kernels without strict checking ignore the index in the request and send all.
            Ok(a.filter(|&(i, _, _)| i == index)
                .map(|(_, ip, len)| (ip, len)))
        },
        &mut addrs,
    )?;
    Ok(Interface {
        index,
        name: link.name,
        mac,
        mtu: link.mtu,
        up: link.up,
        carrier: link.lower_up,
        addrs,
        rx_queues: link.rx_queues,
    })
}

/// Dumps the IPv4 and IPv6 neighbour tables (every interface; proxy entries left out).
pub fn neighbours() -> Result<Vec<Neighbour>, NetlinkError> {
    let mut sock = NlSocket::request_socket()?;
    let mut out = Vec::new();
    for family in wire::NEIGH_FAMILIES {
        let what = || format!("RTM_GETNEIGH dump (family {family})");
        sock.dump(
            &|| Request::new(wire::RTM_GETNEIGH, DUMP_FLAGS).ndmsg(family, 0, 0, 0),
            &what,
            &mut |m| {
                if m.ty != wire::RTM_NEWNEIGH {
                    return Ok(None);
                }
                wire::decode_neigh(m.payload).map_err(|e| NetlinkError::Malformed {
                    what: what(),
                    reason: e.0,
                })
            },
            &mut out,
        )?;
    }
    Ok(out)
}

/// Makes the kernel start resolving `addr` on interface `ifindex` (ARP for IPv4, neighbour
/// solicitation for IPv6), creating the entry if it does not exist. Returns once the kernel has
/// accepted the request, without waiting for the answer: the MAC appears in [`neighbours`] and
/// as a [`NeighEvent::New`] when the neighbour replies. On an entry that is already reachable or
/// static it changes nothing; on a stale one it triggers re-confirmation.
///
/// If nobody answers, the entry goes `Incomplete` then `Failed` (after the kernel's probes, about
/// 3 s); call again to retry. For IPv6 the kernel solicits from the interface's link-local
/// address, so nothing goes out while that address is still tentative (duplicate address
/// detection, the first seconds after the link comes up); the kernel's later probes go out once
/// it is valid.
pub fn resolve(ifindex: u32, addr: IpAddr) -> Result<(), NetlinkError> {
    let mut sock = NlSocket::request_socket()?;
    let what = || format!("resolve {addr} on ifindex {ifindex}");
    // NTF_USE makes the kernel treat the entry as just used by outgoing traffic, which starts
    // resolution exactly as a packet would; NLM_F_CREATE lets it create a missing entry, and
    // without NLM_F_REPLACE an existing entry's address is left alone.
    let req = Request::new(wire::RTM_NEWNEIGH, ACKED_FLAGS | NLM_F_CREATE)
        .ndmsg(wire::family_of(addr), ifindex, NUD_NONE, NTF_USE)
        .nda_dst(addr);
    sock.call(req, &what, &mut |_| {
        Err(NetlinkError::Malformed {
            what: what(),
            reason: "data message in reply to RTM_NEWNEIGH",
        })
    })
}

/// A netlink socket subscribed to neighbour-table changes (`RTNLGRP_NEIGH`, IPv4 and IPv6),
/// polled without blocking. The socket closes on drop.
///
/// Open it before dumping [`neighbours`], so no change falls between the dump and the first
/// event. Between polls the kernel queues events in the socket's buffer (4 MiB when the caller
/// has `CAP_NET_ADMIN`); if it fills, the next poll reports [`NeighEvent::Overrun`].
pub struct NeighbourWatch {
    sock: NlSocket,
}

impl NeighbourWatch {
    /// Opens the socket and joins the group, in the calling thread's network namespace.
    pub fn new() -> Result<Self, NetlinkError> {
        Ok(Self {
            sock: NlSocket::notification_socket(wire::RTMGRP_NEIGH)?,
        })
    }

    /// Appends every change queued since the last call to `out` and returns how many it
    /// appended; returns `Ok(0)` at once when there is none. IPv4/IPv6 entries only: bridge FDB
    /// and proxy notifications are skipped.
    ///
    /// On an overrun it appends [`NeighEvent::Overrun`] (once per call) and keeps reading what is
    /// still queued. The caller should then dump [`neighbours`] and let the dump replace its view
    /// and every event of this call: the dump is taken after all of them, so it supersedes them,
    /// and later calls deliver the changes that follow it. On an error, `out` keeps the events appended before it, and the offending
    /// datagram is consumed, so the next call carries on after it.
    pub fn poll_events(&mut self, out: &mut Vec<NeighEvent>) -> Result<usize, NetlinkError> {
        let start = out.len();
        let what = || "RTNLGRP_NEIGH notification".to_owned();
        let mut overrun = false;
        loop {
            let n = match self.sock.recv(libc::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    if !overrun {
                        out.push(NeighEvent::Overrun);
                        overrun = true;
                    }
                    continue;
                }
                Err(source) => {
                    return Err(NetlinkError::Io {
                        what: what(),
                        source,
                    });
                }
            };
            for m in wire::messages(self.sock.datagram(n)) {
                let m = m.map_err(|e| NetlinkError::Malformed {
                    what: what(),
                    reason: e.0,
                })?;
                let new = match m.ty {
                    wire::RTM_NEWNEIGH => true,
                    wire::RTM_DELNEIGH => false,
                    _ => continue,
                };
                let Some(n) =
                    wire::decode_neigh(m.payload).map_err(|e| NetlinkError::Malformed {
                        what: what(),
                        reason: e.0,
                    })?
                else {
                    continue;
                };
                out.push(if new {
                    NeighEvent::New(n)
                } else {
                    NeighEvent::Del(n)
                });
            }
        }
        Ok(out.len() - start)
    }
}

impl AsFd for NeighbourWatch {
    /// The socket, for callers that wait on it with `poll`/`epoll` instead of polling on a timer.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.fd()
    }
}

impl std::fmt::Debug for NeighbourWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NeighbourWatch")
            .field("fd", &self.sock.fd())
            .finish()
    }
}
