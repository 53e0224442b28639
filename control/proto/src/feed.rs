//! Events decoded from the BGP companion's (ExaBGP's) JSON feed.
//!
//! One feed line becomes at most one [`FeedEvent`]. Routes are keyed the way the feed keys them:
//! by (peer, prefix, path id); the next hop travels with each announced route because ExaBGP groups
//! announcements by next hop, not as an attribute.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::prefix::{Family, PathId, Prefix};

/// The BGP session a feed line is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbor {
    /// The peer's address: the identity every path of this session is keyed by.
    pub peer: IpAddr,
    /// The companion's own address on the session, when printed.
    pub local: Option<IpAddr>,
    /// The peer's AS number, when printed.
    pub peer_as: Option<u32>,
    /// The companion's AS number, when printed.
    pub local_as: Option<u32>,
}

impl Neighbor {
    /// A neighbor known only by its address.
    pub fn new(peer: IpAddr) -> Neighbor {
        Neighbor {
            peer,
            local: None,
            peer_as: None,
            local_as: None,
        }
    }
}

/// A session state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum SessionState {
    /// TCP connected; the session is not established yet.
    Connected,
    /// Established: the peer will (re)send its paths.
    Up,
    /// Closed. ExaBGP sends no per-route withdraws, so every path of the peer is gone.
    Down {
        /// ExaBGP's reason text (`"closing connection"`, `"notification sent (4,0)"`), if any.
        reason: Option<String>,
    },
}

/// One standard community (RFC 1997), `asn:value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Community {
    /// The high 16 bits.
    pub asn: u16,
    /// The low 16 bits.
    pub value: u16,
}

impl Community {
    /// GRACEFUL_SHUTDOWN, 65535:0 (RFC 8326): the path is about to go; stop sending it new flows.
    pub const GRACEFUL_SHUTDOWN: Community = Community {
        asn: 65535,
        value: 0,
    };
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.asn, self.value)
    }
}

/// The kind of an AS_PATH segment (RFC 4271, RFC 5065).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SegmentKind {
    /// AS_SEQUENCE.
    Sequence,
    /// AS_SET.
    Set,
    /// AS_CONFED_SEQUENCE.
    ConfedSequence,
    /// AS_CONFED_SET.
    ConfedSet,
}

/// One AS_PATH segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsPathSegment {
    /// Sequence or set.
    pub kind: SegmentKind,
    /// The AS numbers, in the order printed.
    pub asns: Vec<u32>,
}

/// The ORIGIN attribute (RFC 4271 5.1.1), in preference order: IGP is preferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// Learnt from an interior protocol (ExaBGP prints `igp`).
    Igp,
    /// Learnt via EGP (`egp`).
    Egp,
    /// Learnt some other way, e.g. redistributed (`incomplete`).
    Incomplete,
}

impl Origin {
    /// The attribute's code (RFC 4271): 0 IGP, 1 EGP, 2 INCOMPLETE; lower is preferred.
    pub fn code(self) -> u32 {
        match self {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        }
    }

    /// The origin with code `code`, if it is one.
    pub fn from_code(code: u32) -> Option<Origin> {
        match code {
            0 => Some(Origin::Igp),
            1 => Some(Origin::Egp),
            2 => Some(Origin::Incomplete),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Igp => "igp",
            Origin::Egp => "egp",
            Origin::Incomplete => "incomplete",
        })
    }
}

/// The path attributes of one UPDATE that the control plane uses; others are ignored.
/// Absent attributes stay `None` here: the defaults path selection gives them are its own rule
/// (see the RIB), not the feed's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    /// ORIGIN.
    #[serde(default)]
    pub origin: Option<Origin>,
    /// AS_PATH segments, first segment first.
    pub as_path: Vec<AsPathSegment>,
    /// MULTI_EXIT_DISC.
    #[serde(default)]
    pub med: Option<u32>,
    /// LOCAL_PREF (sent on iBGP sessions only).
    #[serde(default)]
    pub local_pref: Option<u32>,
    /// Standard communities, in the order printed.
    pub communities: Vec<Community>,
}

impl Attributes {
    /// True when the update carries GRACEFUL_SHUTDOWN (65535:0).
    pub fn graceful_shutdown(&self) -> bool {
        self.communities.contains(&Community::GRACEFUL_SHUTDOWN)
    }
}

/// A route key within one peer: the prefix and, with ADD-PATH, the path id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Nlri {
    /// The destination.
    pub prefix: Prefix,
    /// The ADD-PATH path id; `None` when the session did not negotiate ADD-PATH.
    pub path_id: Option<PathId>,
}

/// One announced path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announce {
    /// The next hop (the key of ExaBGP's family map).
    pub next_hop: IpAddr,
    /// Which path.
    pub nlri: Nlri,
}

/// The IPv4/IPv6 unicast content of one BGP UPDATE.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// Attributes shared by every announced path of the update.
    pub attributes: Attributes,
    /// Paths announced (each replaces any path with the same key).
    pub announce: Vec<Announce>,
    /// Paths withdrawn.
    pub withdraw: Vec<Nlri>,
    /// Family-map entries of families the feed does not carry (flowspec, VPN, ...), skipped.
    pub skipped_families: u32,
}

/// One decoded feed line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum FeedEvent {
    /// A session changed state.
    State {
        /// Which session.
        neighbor: Neighbor,
        /// Its new state.
        state: SessionState,
    },
    /// Paths announced and/or withdrawn by one UPDATE.
    Update {
        /// Which session.
        neighbor: Neighbor,
        /// What changed.
        update: Update,
    },
    /// The peer finished sending its table for a family (End-of-RIB marker).
    EndOfRib {
        /// Which session.
        neighbor: Neighbor,
        /// Which family.
        family: Family,
    },
    /// The companion itself is stopping: every session ends with it.
    Shutdown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn graceful_shutdown_detected() {
        let mut a = Attributes::default();
        assert!(!a.graceful_shutdown());
        a.communities.push(Community {
            asn: 65001,
            value: 100,
        });
        assert!(!a.graceful_shutdown());
        a.communities.push(Community::GRACEFUL_SHUTDOWN);
        assert!(a.graceful_shutdown());
        assert_eq!(Community::GRACEFUL_SHUTDOWN.to_string(), "65535:0");
    }

    #[test]
    fn origins_order_by_preference_and_round_trip_their_codes() {
        assert!(Origin::Igp < Origin::Egp && Origin::Egp < Origin::Incomplete);
        for o in [Origin::Igp, Origin::Egp, Origin::Incomplete] {
            assert_eq!(Origin::from_code(o.code()), Some(o));
        }
        assert_eq!(Origin::from_code(3), None);
        assert_eq!(Origin::Incomplete.to_string(), "incomplete");
        assert_eq!(serde_json::to_string(&Origin::Egp).unwrap(), r#""egp""#);
    }

    #[test]
    fn events_round_trip_through_serde() {
        let neighbor = Neighbor::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        let events = [
            FeedEvent::State {
                neighbor: neighbor.clone(),
                state: SessionState::Down {
                    reason: Some("closing connection".into()),
                },
            },
            FeedEvent::Update {
                neighbor: neighbor.clone(),
                update: Update {
                    attributes: Attributes {
                        as_path: vec![AsPathSegment {
                            kind: SegmentKind::Sequence,
                            asns: vec![65001],
                        }],
                        communities: vec![Community::GRACEFUL_SHUTDOWN],
                        origin: Some(Origin::Incomplete),
                        med: Some(50),
                        local_pref: Some(1),
                    },
                    announce: vec![Announce {
                        next_hop: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)),
                        nlri: Nlri {
                            prefix: "192.0.2.10/32".parse().unwrap(),
                            path_id: Some(PathId(2)),
                        },
                    }],
                    withdraw: vec![Nlri {
                        prefix: "192.0.2.11/32".parse().unwrap(),
                        path_id: None,
                    }],
                    skipped_families: 1,
                },
            },
            FeedEvent::EndOfRib {
                neighbor,
                family: Family::Ipv6Unicast,
            },
            FeedEvent::Shutdown,
        ];
        for e in events {
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(
                serde_json::from_str::<FeedEvent>(&json).unwrap(),
                e,
                "{json}"
            );
        }
    }
}
