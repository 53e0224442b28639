//! Decoder for the BGP companion's feed: one ExaBGP JSON line in, at most one [`FeedEvent`] out.
//!
//! Accepts the ExaBGP 5.0 and 4.x shapes (see `shared/reference/bgp-feed.md`):
//! - `"type": "state"`: `connected`, `up`, `down` (+ `reason`).
//! - `"type": "update"`: `message.update` with `announce` (family -> next hop -> `[entries]`),
//!   `withdraw` (family -> `[entries]`), `attribute` (`origin` as `igp`/`egp`/`incomplete`,
//!   `as-path` as the 5.0 object or the 4.x list, `med` and `local-preference` as numbers,
//!   `community` as `[[asn, value], ...]`); or `message.eor` (End-of-RIB).
//! - `"type": "notification"` with `"notification": "shutdown"`.
//!
//! Outcomes, all non-fatal for the caller:
//! - `Ok(Some(event))`: a decoded event.
//! - `Ok(None)`: valid JSON the control plane has no use for (other types, other states, updates
//!   we sent, End-of-RIB of other families). Callers count these.
//! - `Err(FeedError::NotJson)`: ExaBGP's `done` acknowledgements and anything else not JSON.
//! - `Err(other)`: a known line type with a field missing or unparsable; the whole line is
//!   rejected rather than applied in part.
//!
//! Unknown keys are ignored everywhere. Decoding walks a `serde_json::Value` (whose parser caps
//! nesting depth) with checked conversions only, so no input can make it panic.

use std::net::IpAddr;

use ecmp_proto::{
    Announce, AsPathSegment, Attributes, Community, Family, FeedEvent, Neighbor, Nlri, Origin,
    PathId, Prefix, SegmentKind, SessionState, Update,
};
use serde_json::{Map, Value};

/// Longest input excerpt kept in an error, so a hostile line cannot bloat logs.
const MAX_EXCERPT: usize = 64;

/// Why a feed line was not decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// Not JSON: ExaBGP's `done` acknowledgements, blank or truncated lines. Skip and count.
    #[error("line is not JSON")]
    NotJson,
    /// A field the line's type requires is absent or has the wrong JSON type.
    #[error("field `{0}` missing or of the wrong type")]
    Field(&'static str),
    /// A field holds a value that does not parse (address, prefix, path id, ASN, origin, MED,
    /// local preference, community).
    #[error("field `{field}` has invalid value {value:?}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// The offending value, cut to a bounded length.
        value: String,
    },
}

impl FeedError {
    fn invalid(field: &'static str, value: &Value) -> FeedError {
        let mut value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if value.len() > MAX_EXCERPT {
            let mut cut = MAX_EXCERPT;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
        }
        FeedError::Invalid { field, value }
    }
}

/// Decodes one feed line (without its newline). See the module doc for the outcomes.
pub fn decode_line(line: &str) -> Result<Option<FeedEvent>, FeedError> {
    let root: Value = serde_json::from_str(line).map_err(|_| FeedError::NotJson)?;
    let root = root.as_object().ok_or(FeedError::Field("type"))?;
    let kind = root
        .get("type")
        .and_then(Value::as_str)
        .ok_or(FeedError::Field("type"))?;
    match kind {
        "state" => decode_state(root),
        "update" => decode_update(root),
        "notification" => Ok(decode_notification(root)),
        _ => Ok(None),
    }
}

fn decode_state(root: &Map<String, Value>) -> Result<Option<FeedEvent>, FeedError> {
    let neighbor_obj = object(root, "neighbor")?;
    let neighbor = decode_neighbor(neighbor_obj)?;
    let state = match str_field(neighbor_obj, "state")? {
        "connected" => SessionState::Connected,
        "up" => SessionState::Up,
        "down" => SessionState::Down {
            reason: neighbor_obj
                .get("reason")
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
        _ => return Ok(None),
    };
    Ok(Some(FeedEvent::State { neighbor, state }))
}

fn decode_update(root: &Map<String, Value>) -> Result<Option<FeedEvent>, FeedError> {
    let neighbor_obj = object(root, "neighbor")?;
    // With `send { update; }` configured, ExaBGP also prints what it sends; those are not routes
    // learned from the peer.
    if neighbor_obj.get("direction").and_then(Value::as_str) == Some("send") {
        return Ok(None);
    }
    let neighbor = decode_neighbor(neighbor_obj)?;
    let message = object(neighbor_obj, "message")?;
    if let Some(eor) = message.get("eor") {
        let eor = eor.as_object().ok_or(FeedError::Field("eor"))?;
        let afi = str_field(eor, "afi")?;
        let safi = str_field(eor, "safi")?;
        return Ok(
            Family::from_afi_safi(afi, safi).map(|family| FeedEvent::EndOfRib { neighbor, family })
        );
    }
    let update = object(message, "update")?;
    Ok(Some(FeedEvent::Update {
        neighbor,
        update: decode_update_body(update)?,
    }))
}

fn decode_notification(root: &Map<String, Value>) -> Option<FeedEvent> {
    // A peer's NOTIFICATION (an object) is followed by a `down` state line; only the companion's
    // own shutdown matters here.
    match root.get("notification").and_then(Value::as_str) {
        Some("shutdown") => Some(FeedEvent::Shutdown),
        _ => None,
    }
}

fn decode_neighbor(neighbor: &Map<String, Value>) -> Result<Neighbor, FeedError> {
    let address = object(neighbor, "address")?;
    let peer = addr_field(address, "peer")?.ok_or(FeedError::Field("peer"))?;
    let local = addr_field(address, "local")?;
    let (peer_as, local_as) = match neighbor.get("asn").and_then(Value::as_object) {
        Some(asn) => (asn_field(asn, "peer")?, asn_field(asn, "local")?),
        None => (None, None),
    };
    Ok(Neighbor {
        peer,
        local,
        peer_as,
        local_as,
    })
}

fn decode_update_body(update: &Map<String, Value>) -> Result<Update, FeedError> {
    let mut out = Update::default();
    if let Some(attrs) = update.get("attribute") {
        let attrs = attrs.as_object().ok_or(FeedError::Field("attribute"))?;
        out.attributes = decode_attributes(attrs)?;
    }
    if let Some(announce) = update.get("announce") {
        let families = announce.as_object().ok_or(FeedError::Field("announce"))?;
        for (family_key, by_hop) in families {
            let Ok(family) = family_key.parse::<Family>() else {
                out.skipped_families = out.skipped_families.saturating_add(1);
                continue;
            };
            let by_hop = by_hop.as_object().ok_or(FeedError::Field("announce"))?;
            for (hop, entries) in by_hop {
                let next_hop: IpAddr = hop
                    .parse()
                    .map_err(|_| FeedError::invalid("next-hop", &Value::String(hop.clone())))?;
                for entry in entries.as_array().ok_or(FeedError::Field("announce"))? {
                    let nlri = decode_nlri(entry, family)?;
                    out.announce.push(Announce { next_hop, nlri });
                }
            }
        }
    }
    if let Some(withdraw) = update.get("withdraw") {
        let families = withdraw.as_object().ok_or(FeedError::Field("withdraw"))?;
        for (family_key, entries) in families {
            let Ok(family) = family_key.parse::<Family>() else {
                out.skipped_families = out.skipped_families.saturating_add(1);
                continue;
            };
            for entry in entries.as_array().ok_or(FeedError::Field("withdraw"))? {
                out.withdraw.push(decode_nlri(entry, family)?);
            }
        }
    }
    Ok(out)
}

/// `{ "nlri": "192.0.2.10/32", "path-information": "0.0.0.2" }`; the prefix must be of `family`.
fn decode_nlri(entry: &Value, family: Family) -> Result<Nlri, FeedError> {
    let entry = entry.as_object().ok_or(FeedError::Field("nlri"))?;
    let raw = entry.get("nlri").ok_or(FeedError::Field("nlri"))?;
    let prefix: Prefix = raw
        .as_str()
        .and_then(|s| s.parse().ok())
        .filter(|p: &Prefix| p.family() == family)
        .ok_or_else(|| FeedError::invalid("nlri", raw))?;
    let path_id = match entry.get("path-information") {
        None => None,
        Some(v) => {
            Some(decode_path_id(v).ok_or_else(|| FeedError::invalid("path-information", v))?)
        }
    };
    Ok(Nlri { prefix, path_id })
}

fn decode_path_id(v: &Value) -> Option<PathId> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()).map(PathId),
        _ => None,
    }
}

fn decode_attributes(attrs: &Map<String, Value>) -> Result<Attributes, FeedError> {
    let mut out = Attributes::default();
    if let Some(origin) = attrs.get("origin") {
        out.origin = Some(match origin.as_str() {
            Some("igp") => Origin::Igp,
            Some("egp") => Origin::Egp,
            Some("incomplete") => Origin::Incomplete,
            _ => return Err(FeedError::invalid("origin", origin)),
        });
    }
    out.med = asn_field(attrs, "med")?;
    out.local_pref = asn_field(attrs, "local-preference")?;
    if let Some(path) = attrs.get("as-path") {
        out.as_path = decode_as_path(path)?;
    }
    if let Some(communities) = attrs.get("community") {
        let list = communities
            .as_array()
            .ok_or(FeedError::Field("community"))?;
        out.communities = list
            .iter()
            .map(|c| decode_community(c).ok_or_else(|| FeedError::invalid("community", c)))
            .collect::<Result<_, _>>()?;
    }
    Ok(out)
}

/// `[ 65535, 0 ]`.
fn decode_community(c: &Value) -> Option<Community> {
    match c.as_array()?.as_slice() {
        [asn, value] => Some(Community {
            asn: u16::try_from(asn.as_u64()?).ok()?,
            value: u16::try_from(value.as_u64()?).ok()?,
        }),
        _ => None,
    }
}

/// ExaBGP 5.0: `{"0": {"element": "as-sequence", "value": [65001]}, "1": ...}`, keyed by segment
/// position. ExaBGP 4.x: `[ 65001, 65002 ]` (one sequence; a nested list is taken as a set).
fn decode_as_path(path: &Value) -> Result<Vec<AsPathSegment>, FeedError> {
    let bad = || FeedError::invalid("as-path", path);
    match path {
        Value::Object(segments) => {
            // Keys are positions; a JSON object's key order is not the segment order ("10" < "2").
            let mut ordered = segments
                .iter()
                .map(|(pos, seg)| Some((pos.parse::<u32>().ok()?, seg)))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad)?;
            ordered.sort_by_key(|&(pos, _)| pos);
            ordered
                .into_iter()
                .map(|(_, seg)| decode_segment(seg).ok_or_else(bad))
                .collect()
        }
        Value::Array(items) => {
            let mut out = Vec::new();
            let mut sequence = Vec::new();
            for item in items {
                match item {
                    Value::Array(set) => {
                        if !sequence.is_empty() {
                            out.push(AsPathSegment {
                                kind: SegmentKind::Sequence,
                                asns: std::mem::take(&mut sequence),
                            });
                        }
                        out.push(AsPathSegment {
                            kind: SegmentKind::Set,
                            asns: asn_list(set).ok_or_else(bad)?,
                        });
                    }
                    other => sequence.push(asn(other).ok_or_else(bad)?),
                }
            }
            if !sequence.is_empty() {
                out.push(AsPathSegment {
                    kind: SegmentKind::Sequence,
                    asns: sequence,
                });
            }
            Ok(out)
        }
        _ => Err(bad()),
    }
}

fn decode_segment(seg: &Value) -> Option<AsPathSegment> {
    let seg = seg.as_object()?;
    let kind = match seg.get("element")?.as_str()? {
        "as-sequence" => SegmentKind::Sequence,
        "as-set" => SegmentKind::Set,
        "confed-sequence" | "as-confed-sequence" => SegmentKind::ConfedSequence,
        "confed-set" | "as-confed-set" => SegmentKind::ConfedSet,
        _ => return None,
    };
    let asns = asn_list(seg.get("value")?.as_array()?)?;
    Some(AsPathSegment { kind, asns })
}

fn asn_list(items: &[Value]) -> Option<Vec<u32>> {
    items.iter().map(asn).collect()
}

fn asn(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

fn object<'a>(
    parent: &'a Map<String, Value>,
    key: &'static str,
) -> Result<&'a Map<String, Value>, FeedError> {
    parent
        .get(key)
        .and_then(Value::as_object)
        .ok_or(FeedError::Field(key))
}

fn str_field<'a>(parent: &'a Map<String, Value>, key: &'static str) -> Result<&'a str, FeedError> {
    parent
        .get(key)
        .and_then(Value::as_str)
        .ok_or(FeedError::Field(key))
}

/// An optional address field: absent -> `None`; present but not an address -> error.
fn addr_field(parent: &Map<String, Value>, key: &'static str) -> Result<Option<IpAddr>, FeedError> {
    match parent.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| FeedError::invalid(key, v)),
    }
}

/// An optional 32-bit number field (AS number, MED, LOCAL_PREF): absent -> `None`; present but
/// not a 32-bit unsigned number -> error.
fn asn_field(parent: &Map<String, Value>, key: &'static str) -> Result<Option<u32>, FeedError> {
    match parent.get(key) {
        None => Ok(None),
        Some(v) => asn(v).map(Some).ok_or_else(|| FeedError::invalid(key, v)),
    }
}

#[cfg(test)]
mod tests;
