//! Next hops, their encapsulation, `[[group]]`, `[bgp]`, `[[bgp.policy]]` and `[[bgp.announce]]`.
//!
//! A configured group and a BGP policy describe the same thing (how one group's buckets are laid
//! out and handed out), so their shared keys go through [`group_shape`]; a next hop and a BGP
//! policy both say what is done to packets, so their `action` and `encap` keys go through
//! [`action_keys`]. The same mistake then gives the same message in every table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::{Names, check_unicast_ip, check_unicast_mac, nonzero_duration};
use crate::config::error::{ConfigError, Ctx};
use crate::config::schema::{
    RawActionKeys, RawActionKind, RawAnnounce, RawBgp, RawEncap, RawEncapKind, RawGroup,
    RawGroupKeys, RawNextHop,
};
use crate::config::spec::{
    ActionSpec, ActionTemplateSpec, AnnounceNextHopSpec, AnnounceSpec, AnnounceSpecs, BgpSpec,
    EncapKindSpec, EncapSpec, GroupMode, GroupPolicySpec, GroupSpec, HashAlgoSpec, HashSpec,
    MemberSpec, NextHopSpec, PortKind, PortSpec, PrefixPolicySpec,
};
use crate::config::value::Prefix;
use crate::config::{
    DEFAULT_BUCKETS, DEFAULT_MAGLEV_BUCKETS, LB_KEY_VALUES, MAX_BUCKETS, MPLS_UDP_PORT, VXLAN_PORT,
};

/// The group-shape keys, validated: what `[[group]]`, `[bgp]` and `[[bgp.policy]]` share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GroupShape {
    mode: GroupMode,
    buckets: u32,
    idle_timer: Duration,
    unbalanced_timer: Duration,
    hash: HashSpec,
}

/// The group-shape keys of the table at key path `prefix` (header at `header`), over `base`.
/// A bucket count given nowhere follows the effective mode (Maglev and rendezvous want more), unless
/// `base_buckets_explicit`: then the base's count is kept.
fn group_shape(
    ctx: &Ctx<'_>,
    prefix: &str,
    header: Range<usize>,
    r: &RawGroupKeys,
    base: &GroupPolicySpec,
    base_buckets_explicit: bool,
) -> Result<GroupShape, ConfigError> {
    let key = |k: &str| format!("{prefix}.{k}");
    let mode = r.mode.as_ref().map_or(base.mode, |m| *m.get_ref());
    let hash = r.hash.as_ref().map_or(base.hash, |h| h.over(base.hash));
    let buckets = match &r.buckets {
        Some(b) if b.get_ref().is_power_of_two() && *b.get_ref() <= MAX_BUCKETS => *b.get_ref(),
        Some(b) => {
            return Err(ctx.invalid(
                b.span(),
                key("buckets"),
                format!(
                    "buckets {} is not a power of two in 1..={MAX_BUCKETS}",
                    b.get_ref()
                ),
            ));
        }
        None if base_buckets_explicit => base.buckets,
        None if matches!(mode, GroupMode::Maglev | GroupMode::Rendezvous) => DEFAULT_MAGLEV_BUCKETS,
        None => DEFAULT_BUCKETS,
    };
    if hash.algo == HashAlgoSpec::LbKey && buckets > LB_KEY_VALUES {
        let span = r.buckets.as_ref().map_or(header, Spanned::span);
        return Err(ctx.invalid(
            span,
            key("buckets"),
            format!("algo \"lb-key\" gives only {LB_KEY_VALUES} distinct hashes; buckets above that are never used"),
        ));
    }
    for (k, timer) in [
        ("idle_timer", &r.idle_timer),
        ("unbalanced_timer", &r.unbalanced_timer),
    ] {
        if let (Some(t), false) = (timer, mode == GroupMode::Idle) {
            return Err(ctx.invalid(
                t.span(),
                key(k),
                format!("`{k}` is only used by mode = \"idle\""),
            ));
        }
    }
    let (idle_timer, _) =
        nonzero_duration(ctx, &r.idle_timer, base.idle_timer, &key("idle_timer"))?;
    let unbalanced_timer = r
        .unbalanced_timer
        .as_ref()
        .map_or(base.unbalanced_timer, |t| t.get_ref().0);
    Ok(GroupShape {
        mode,
        buckets,
        idle_timer,
        unbalanced_timer,
        hash,
    })
}

/// What the `action` key and the `encap` table say together.
enum ActionKeys {
    /// Neither is given.
    Unset,
    /// `action = "rewrite"` without an `encap` table.
    Rewrite,
    /// An `encap` table (`action`, if given, is `"encap"`); boxed, it is most of the enum.
    Encap(Box<Spanned<RawEncap>>),
}

/// The `action` and `encap` keys of the table at key path `prefix`, checked for agreement;
/// messages name the encap table `[{table}.encap]`.
fn action_keys(
    ctx: &Ctx<'_>,
    prefix: &str,
    table: &str,
    r: RawActionKeys,
) -> Result<ActionKeys, ConfigError> {
    let key = format!("{prefix}.action");
    match (r.action, r.encap) {
        (Some(a), Some(_)) if *a.get_ref() == RawActionKind::Rewrite => Err(ctx.invalid(
            a.span(),
            key,
            format!("action = \"rewrite\" conflicts with the [{table}.encap] table"),
        )),
        (Some(a), None) if *a.get_ref() == RawActionKind::Encap => Err(ctx.invalid(
            a.span(),
            key,
            format!("action = \"encap\" needs a [{table}.encap] table"),
        )),
        (None, None) => Ok(ActionKeys::Unset),
        (Some(_), None) => Ok(ActionKeys::Rewrite),
        (_, Some(e)) => Ok(ActionKeys::Encap(Box::new(e))),
    }
}

/// `[bgp]` and `[[bgp.policy]]`, then `[[bgp.announce]]` with its `[bgp]` timing keys.
pub(super) fn build_bgp(
    ctx: &Ctx<'_>,
    raw: Option<Spanned<RawBgp>>,
    hash: HashSpec,
    feed: bool,
) -> Result<(BgpSpec, AnnounceSpecs), ConfigError> {
    let builtin = GroupPolicySpec::with_hash(hash);
    let Some(raw) = raw else {
        return Ok((
            BgpSpec {
                default_policy: builtin,
                policies: Vec::new(),
            },
            build_announce(ctx, Vec::new(), None, None, feed)?,
        ));
    };
    let header = raw.span();
    let mut raw = raw.into_inner();
    let announce = build_announce(
        ctx,
        std::mem::take(&mut raw.announce),
        raw.announce_stall_time.take(),
        raw.announce_grace.take(),
        feed,
    )?;
    let (raw_policies, group, action) = raw.split();
    let buckets_explicit = group.buckets.is_some();
    let default_policy = build_policy(ctx, "bgp", header, group, action, &builtin, false)?;
    let mut ranges: HashMap<Prefix, usize> = HashMap::new();
    let mut policies = Vec::with_capacity(raw_policies.len());
    for (i, p) in raw_policies.into_iter().enumerate() {
        let header = p.span();
        let line = ctx.line(header.start);
        let (range, group, action) = p.into_inner().split();
        let prefix = format!("bgp.policy[{i}]");
        if let Some(first) = ranges.insert(*range.get_ref(), line) {
            return Err(ctx.invalid(
                range.span(),
                format!("{prefix}.prefix"),
                format!(
                    "duplicate policy for {} (first on line {first})",
                    range.get_ref()
                ),
            ));
        }
        let group = build_policy(
            ctx,
            &prefix,
            header,
            group,
            action,
            &default_policy,
            buckets_explicit,
        )?;
        policies.push(PrefixPolicySpec {
            range: range.into_inner(),
            group,
            line,
        });
    }
    Ok((
        BgpSpec {
            default_policy,
            policies,
        },
        announce,
    ))
}

/// `[[bgp.announce]]`: prefixes unique, next hops of the prefix's family, communities as
/// `ASN:VALUE` (16 bits each), neighbours as addresses; the stall time above zero; a `[feed]`
/// to write the commands to.
fn build_announce(
    ctx: &Ctx<'_>,
    raw: Vec<Spanned<RawAnnounce>>,
    stall_time: Option<Spanned<crate::config::schema::Dur>>,
    grace: Option<Spanned<crate::config::schema::Dur>>,
    feed: bool,
) -> Result<AnnounceSpecs, ConfigError> {
    if let Some(first) = raw.first().filter(|_| !feed) {
        return Err(ctx.invalid(
            first.span(),
            "bgp.announce[0]",
            "announcements are written to the BGP companion: they need a [feed] socket",
        ));
    }
    use crate::config::{DEFAULT_ANNOUNCE_GRACE, DEFAULT_ANNOUNCE_STALL_TIME};
    let (stall_time, _) = nonzero_duration(
        ctx,
        &stall_time,
        DEFAULT_ANNOUNCE_STALL_TIME,
        "bgp.announce_stall_time",
    )?;
    let grace = grace.map_or(DEFAULT_ANNOUNCE_GRACE, |g| g.into_inner().0);
    let mut seen: HashMap<Prefix, usize> = HashMap::new();
    let mut entries = Vec::with_capacity(raw.len());
    for (i, a) in raw.into_iter().enumerate() {
        let line = ctx.line(a.span().start);
        let a = a.into_inner();
        let key = |k: &str| format!("bgp.announce[{i}].{k}");
        let prefix = *a.prefix.get_ref();
        if let Some(first) = seen.insert(prefix, line) {
            return Err(ctx.invalid(
                a.prefix.span(),
                key("prefix"),
                format!("{prefix} is announced twice (first on line {first})"),
            ));
        }
        let next_hop = match a.next_hop.get_ref().as_str() {
            "self" => AnnounceNextHopSpec::Local,
            text => {
                let addr: IpAddr = text.parse().map_err(|_| {
                    ctx.invalid(
                        a.next_hop.span(),
                        key("next_hop"),
                        format!("{text:?} is neither \"self\" nor an IP address"),
                    )
                })?;
                if addr.is_ipv4() != prefix.addr.is_ipv4() {
                    return Err(ctx.invalid(
                        a.next_hop.span(),
                        key("next_hop"),
                        format!("{addr} is not of {prefix}'s address family"),
                    ));
                }
                check_unicast_ip(ctx, &Spanned::new(a.next_hop.span(), addr), key("next_hop"))?;
                AnnounceNextHopSpec::Addr(addr)
            }
        };
        let mut communities = Vec::new();
        for (j, c) in a.communities.unwrap_or_default().into_iter().enumerate() {
            let parsed = c
                .get_ref()
                .split_once(':')
                .and_then(|(asn, value)| Some((asn.parse().ok()?, value.parse().ok()?)));
            match parsed {
                Some(pair) => communities.push(pair),
                None => {
                    return Err(ctx.invalid(
                        c.span(),
                        format!("{}[{j}]", key("communities")),
                        format!(
                            "invalid community {:?} (expected \"ASN:VALUE\", each 0..=65535)",
                            c.get_ref()
                        ),
                    ));
                }
            }
        }
        let mut neighbors = Vec::new();
        for (j, n) in a.neighbors.unwrap_or_default().into_iter().enumerate() {
            match n.get_ref().parse::<IpAddr>() {
                Ok(addr) => neighbors.push(addr),
                Err(_) => {
                    return Err(ctx.invalid(
                        n.span(),
                        format!("{}[{j}]", key("neighbors")),
                        format!("{:?} is not an IP address", n.get_ref()),
                    ));
                }
            }
        }
        entries.push(AnnounceSpec {
            prefix,
            next_hop,
            med: a.med.map(Spanned::into_inner),
            communities,
            neighbors,
            line,
        });
    }
    Ok(AnnounceSpecs {
        entries,
        stall_time,
        grace,
    })
}

/// One group policy: the keys given over `base` (see [`group_shape`] for the bucket count).
fn build_policy(
    ctx: &Ctx<'_>,
    prefix: &str,
    header: Range<usize>,
    group: RawGroupKeys,
    action: RawActionKeys,
    base: &GroupPolicySpec,
    base_buckets_explicit: bool,
) -> Result<GroupPolicySpec, ConfigError> {
    let shape = group_shape(ctx, prefix, header, &group, base, base_buckets_explicit)?;
    let action = match action_keys(ctx, prefix, prefix, action)? {
        ActionKeys::Unset => base.action,
        ActionKeys::Rewrite => ActionTemplateSpec::Rewrite,
        ActionKeys::Encap(e) => build_action_template(ctx, prefix, *e)?,
    };
    Ok(GroupPolicySpec {
        mode: shape.mode,
        buckets: shape.buckets,
        idle_timer: shape.idle_timer,
        unbalanced_timer: shape.unbalanced_timer,
        hash: shape.hash,
        action,
    })
}

/// An `encap` table of a BGP policy: the outer destination is each next hop, so no `dst`.
fn build_action_template(
    ctx: &Ctx<'_>,
    prefix: &str,
    raw: Spanned<RawEncap>,
) -> Result<ActionTemplateSpec, ConfigError> {
    let r = raw.into_inner();
    let prefix = format!("{prefix}.encap");
    if let Some(d) = &r.dst {
        return Err(ctx.invalid(
            d.span(),
            format!("{prefix}.dst"),
            "`dst` cannot be set here: the outer destination is each BGP next hop",
        ));
    }
    let src = check_unicast_ip(ctx, &r.src, format!("{prefix}.src"))?;
    let kind = encap_kind(ctx, &prefix, &r)?;
    Ok(ActionTemplateSpec::Encap { kind, src })
}

fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() { "IPv4" } else { "IPv6" }
}

pub(super) fn build_nexthop(
    ctx: &Ctx<'_>,
    i: usize,
    raw: Spanned<RawNextHop>,
    port_names: &Names<'_>,
    ports: &[PortSpec],
) -> Result<NextHopSpec, ConfigError> {
    let header = raw.span();
    let line = ctx.line(header.start);
    let r = raw.into_inner();
    let prefix = format!("nexthop[{i}]");
    let key = |k: &str| format!("{prefix}.{k}");
    let address = check_unicast_ip(ctx, &r.address, key("address"))?;
    let port = port_names.find(&r.port, &key("port"))?;
    let mac = match &r.mac {
        Some(m) => Some(check_unicast_mac(ctx, m, key("mac"))?),
        None if matches!(ports[port].kind, PortKind::AfXdp { .. }) => None,
        None => {
            let kind = match ports[port].kind {
                PortKind::Memory => "memory",
                PortKind::Dpdk { .. } => "dpdk",
                PortKind::Pcap { .. } | PortKind::AfXdp { .. } => "pcap",
            };
            return Err(ctx.invalid(
                header,
                key("mac"),
                format!(
                    "missing `mac`: port {:?} is a {kind} port (only next hops on afxdp ports are resolved from the kernel's neighbour table)",
                    ports[port].name
                ),
            ));
        }
    };
    let weight = match &r.weight {
        None => 1,
        Some(w) if *w.get_ref() >= 1 => *w.get_ref(),
        Some(w) => return Err(ctx.invalid(w.span(), key("weight"), "weight must be at least 1")),
    };
    let keys = RawActionKeys {
        action: r.action,
        encap: r.encap,
    };
    // Messages name the table as written (`[nexthop.encap]`), not by index.
    let action = match action_keys(ctx, &prefix, "nexthop", keys)? {
        ActionKeys::Unset | ActionKeys::Rewrite => ActionSpec::Rewrite,
        ActionKeys::Encap(e) => ActionSpec::Encap(build_encap(ctx, i, *e, address)?),
    };
    Ok(NextHopSpec {
        name: r.name.into_inner().0,
        address,
        port,
        mac,
        weight,
        state: r.state.unwrap_or_default(),
        action,
        line,
    })
}

fn build_encap(
    ctx: &Ctx<'_>,
    i: usize,
    raw: Spanned<RawEncap>,
    address: IpAddr,
) -> Result<EncapSpec, ConfigError> {
    let r = raw.into_inner();
    let prefix = format!("nexthop[{i}].encap");
    let key = |k: &str| format!("{prefix}.{k}");
    let src = check_unicast_ip(ctx, &r.src, key("src"))?;
    let dst = match &r.dst {
        Some(d) => check_unicast_ip(ctx, d, key("dst"))?,
        None => address,
    };
    if src.is_ipv4() != dst.is_ipv4() {
        let (span, k, what) = match &r.dst {
            Some(d) => (d.span(), "dst", format!("dst {dst}")),
            None => (
                r.src.span(),
                "src",
                format!("dst (the next hop's address {dst})"),
            ),
        };
        return Err(ctx.invalid(
            span,
            key(k),
            format!(
                "encap family mismatch: src {src} is {} but {what} is {}",
                family(src),
                family(dst)
            ),
        ));
    }
    let kind = encap_kind(ctx, &prefix, &r)?;
    Ok(EncapSpec { kind, src, dst })
}

/// The kind-specific part of an `encap` table (`prefix` is its key path).
fn encap_kind(ctx: &Ctx<'_>, prefix: &str, r: &RawEncap) -> Result<EncapKindSpec, ConfigError> {
    let key = |k: &str| format!("{prefix}.{k}");
    let kind = *r.kind.get_ref();
    let fields = [
        (
            "key",
            r.key.as_ref().map(Spanned::span),
            matches!(kind, RawEncapKind::Gre),
        ),
        (
            "vni",
            r.vni.as_ref().map(Spanned::span),
            matches!(kind, RawEncapKind::Vxlan),
        ),
        (
            "inner_mac",
            r.inner_mac.as_ref().map(Spanned::span),
            matches!(kind, RawEncapKind::Vxlan),
        ),
        (
            "udp_port",
            r.udp_port.as_ref().map(Spanned::span),
            matches!(
                kind,
                RawEncapKind::Vxlan | RawEncapKind::Gue | RawEncapKind::MplsUdp
            ),
        ),
        (
            "label",
            r.label.as_ref().map(Spanned::span),
            matches!(kind, RawEncapKind::MplsUdp),
        ),
    ];
    for (k, span, allowed) in fields {
        if let (Some(span), false) = (span, allowed) {
            return Err(ctx.invalid(
                span,
                key(k),
                format!("`{k}` is not used by kind = \"{}\"", kind.as_str()),
            ));
        }
    }
    let udp_port = |default: Option<u16>| -> Result<u16, ConfigError> {
        match (&r.udp_port, default) {
            (Some(p), _) if *p.get_ref() == 0 => {
                Err(ctx.invalid(p.span(), key("udp_port"), "udp_port must not be 0"))
            }
            (Some(p), _) => Ok(*p.get_ref()),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(ctx.invalid(
                r.kind.span(),
                key("udp_port"),
                format!("kind = \"{}\" needs `udp_port`", kind.as_str()),
            )),
        }
    };
    let kind = match kind {
        RawEncapKind::Ipip => EncapKindSpec::IpIp,
        RawEncapKind::Gre => EncapKindSpec::Gre {
            key: r.key.as_ref().map(|k| *k.get_ref()),
        },
        RawEncapKind::Vxlan => {
            let Some(vni) = &r.vni else {
                return Err(ctx.invalid(r.kind.span(), key("vni"), "kind = \"vxlan\" needs `vni`"));
            };
            if *vni.get_ref() >= 1 << 24 {
                return Err(ctx.invalid(
                    vni.span(),
                    key("vni"),
                    format!("vni {} does not fit in 24 bits", vni.get_ref()),
                ));
            }
            let inner_mac = match &r.inner_mac {
                Some(m) => Some(check_unicast_mac(ctx, m, key("inner_mac"))?),
                None => None,
            };
            EncapKindSpec::Vxlan {
                vni: *vni.get_ref(),
                inner_mac,
                udp_port: udp_port(Some(VXLAN_PORT))?,
            }
        }
        RawEncapKind::Gue => EncapKindSpec::Gue {
            udp_port: udp_port(None)?,
        },
        RawEncapKind::MplsUdp => {
            let Some(label) = &r.label else {
                return Err(ctx.invalid(
                    r.kind.span(),
                    key("label"),
                    "kind = \"mpls-udp\" needs `label`",
                ));
            };
            if !(16..1 << 20).contains(label.get_ref()) {
                return Err(ctx.invalid(
                    label.span(),
                    key("label"),
                    format!(
                        "label {} is outside 16..=1048575 (0..=15 are reserved)",
                        label.get_ref()
                    ),
                ));
            }
            EncapKindSpec::MplsUdp {
                label: *label.get_ref(),
                udp_port: udp_port(Some(MPLS_UDP_PORT))?,
            }
        }
    };
    Ok(kind)
}

pub(super) fn build_group(
    ctx: &Ctx<'_>,
    i: usize,
    raw: Spanned<RawGroup>,
    hop_names: &Names<'_>,
    nexthops: &[NextHopSpec],
    default_hash: HashSpec,
) -> Result<GroupSpec, ConfigError> {
    let header = raw.span();
    let line = ctx.line(header.start);
    let (name, raw_members, keys) = raw.into_inner().split();
    let prefix = format!("group[{i}]");
    // A configured group starts from the same built-in policy as a BGP-learnt one.
    let base = GroupPolicySpec::with_hash(default_hash);
    let shape = group_shape(ctx, &prefix, header.clone(), &keys, &base, false)?;
    let buckets = shape.buckets;

    let mut members: Vec<MemberSpec> = Vec::with_capacity(raw_members.len());
    for (j, m) in raw_members.iter().enumerate() {
        let mkey = format!("{prefix}.members[{j}]");
        let name = Spanned::new(m.span(), m.get_ref().nexthop.clone());
        let nexthop = hop_names.find(&name, &mkey)?;
        if members.iter().any(|x| x.nexthop == nexthop) {
            return Err(ctx.invalid(
                m.span(),
                mkey,
                format!("next hop {:?} is listed twice", name.get_ref()),
            ));
        }
        let weight = match m.get_ref().weight {
            None => nexthops[nexthop].weight,
            Some(0) => {
                return Err(ctx.invalid(
                    m.span(),
                    format!("{mkey}.weight"),
                    "weight must be at least 1",
                ));
            }
            Some(w) => w,
        };
        members.push(MemberSpec { nexthop, weight });
    }
    if members.len() > buckets as usize {
        let span = keys.buckets.as_ref().map_or(header, Spanned::span);
        return Err(ctx.invalid(
            span,
            format!("{prefix}.buckets"),
            format!("buckets = {buckets} cannot hold {} members", members.len()),
        ));
    }
    Ok(GroupSpec {
        name: name.into_inner().0,
        mode: shape.mode,
        buckets,
        members,
        idle_timer: shape.idle_timer,
        unbalanced_timer: shape.unbalanced_timer,
        hash: shape.hash,
        line,
    })
}
