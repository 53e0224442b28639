use super::*;

#[test]
fn bgp_defaults_follow_hash() {
    let c = ok("[hash]\nalgo = \"crc32c\"\n");
    let d = c.bgp.default_policy;
    assert_eq!((d.mode, d.buckets), (GroupMode::AutoRecovery, 256));
    assert_eq!(d.hash, c.hash);
    assert_eq!(d.hash.algo, HashAlgoSpec::Crc32c);
    assert_eq!(d.action, ActionTemplateSpec::Rewrite);
    assert!(c.bgp.policies.is_empty());
    let c = ok("[bgp]\nmode = \"maglev\"\n");
    assert_eq!(c.bgp.default_policy.buckets, 4096, "Maglev's default");
}

#[test]
fn bgp_policies_override_the_default() {
    let c = ok(r#"[bgp]
mode = "idle"
buckets = 1024
idle_timer = "30s"
unbalanced_timer = "5m"
hash = { fields = "src-dst-ip", symmetric = true }

[[bgp.policy]]
prefix = "198.19.0.0/16"
mode = "maglev"
hash = { algo = "crc32c" }

[[bgp.policy]]
prefix = "198.19.1.0/24"
action = "encap"
[bgp.policy.encap]
kind = "vxlan"
src = "198.18.0.254"
vni = 7

[[bgp.policy]]
prefix = "2001:2:ffff::/48"
mode = "auto-recovery"
encap = { kind = "gue", src = "2001:2::fe", udp_port = 6080 }
"#);
    let d = c.bgp.default_policy;
    assert_eq!((d.mode, d.buckets), (GroupMode::Idle, 1024));
    assert_eq!(
        (d.idle_timer, d.unbalanced_timer),
        (Duration::from_secs(30), Duration::from_secs(300))
    );
    assert_eq!(
        (d.hash.fields, d.hash.symmetric, d.hash.algo),
        (HashFieldsSpec::SrcDstIp, true, HashAlgoSpec::Fast)
    );
    let [maglev, vxlan, gue] = &c.bgp.policies[..] else {
        panic!("three policies expected: {:?}", c.bgp.policies)
    };
    assert_eq!((maglev.range, maglev.line), (p("198.19.0.0/16"), 24));
    let g = maglev.group;
    assert_eq!(
        (g.mode, g.buckets),
        (GroupMode::Maglev, 1024),
        "buckets inherited"
    );
    assert_eq!(
        (g.hash.fields, g.hash.symmetric, g.hash.algo),
        (HashFieldsSpec::SrcDstIp, true, HashAlgoSpec::Crc32c)
    );
    assert_eq!(g.action, ActionTemplateSpec::Rewrite);
    assert_eq!(vxlan.group.mode, GroupMode::Idle);
    assert_eq!(vxlan.group.idle_timer, Duration::from_secs(30));
    assert_eq!(
        vxlan.group.action,
        ActionTemplateSpec::Encap {
            kind: EncapKindSpec::Vxlan {
                vni: 7,
                inner_mac: None,
                udp_port: VXLAN_PORT
            },
            src: "198.18.0.254".parse().unwrap(),
        }
    );
    assert_eq!(
        gue.group.action,
        ActionTemplateSpec::Encap {
            kind: EncapKindSpec::Gue { udp_port: 6080 },
            src: "2001:2::fe".parse().unwrap(),
        }
    );
    // Longest covering range wins; other families and shorter prefixes fall through.
    assert_eq!(c.bgp.policy_for(&p("198.19.1.128/25")), &vxlan.group);
    assert_eq!(c.bgp.policy_for(&p("198.19.1.0/24")), &vxlan.group);
    assert_eq!(c.bgp.policy_for(&p("198.19.7.0/24")), &maglev.group);
    assert_eq!(c.bgp.policy_for(&p("198.18.0.0/15")), &d);
    assert_eq!(c.bgp.policy_for(&p("2001:2:ffff:1::/64")), &gue.group);
    assert_eq!(c.bgp.policy_for(&p("::/0")), &d);
    // Buckets not given anywhere follow each policy's own mode.
    let c = ok("[bgp]\n[[bgp.policy]]\nprefix = \"10.0.0.0/8\"\nmode = \"maglev\"\n");
    assert_eq!(c.bgp.policies[0].group.buckets, 4096);
    assert_eq!(c.bgp.default_policy.buckets, 256);
    let c = ok("[bgp]\nmode = \"rendezvous\"\n");
    assert_eq!(
        (c.bgp.default_policy.mode, c.bgp.default_policy.buckets),
        (GroupMode::Rendezvous, 4096)
    );
}

#[test]
fn bgp_errors() {
    fails(
        "[bgp]\nmode = \"fast\" #<\n",
        "bgp.mode",
        "unknown variant `fast`",
    );
    fails(
        "[bgp]\nbuckets = 100 #<\n",
        "bgp.buckets",
        "not a power of two",
    );
    fails(
        "[bgp]\nidle_timer = \"5s\" #<\n",
        "bgp.idle_timer",
        "only used by mode = \"idle\"",
    );
    fails(
        "[bgp]\nmode = \"idle\"\nidle_timer = \"0s\" #<\n",
        "bgp.idle_timer",
        "greater than zero",
    );
    fails(
        "[bgp] #<\nhash = { algo = \"lb-key\" }\nmode = \"maglev\"\n",
        "bgp.buckets",
        "lb-key",
    );
    fails(
        "[bgp]\naction = \"encap\" #<\n",
        "bgp.action",
        "needs a [bgp.encap] table",
    );
    fails(
        "[bgp]\naction = \"rewrite\" #<\n[bgp.encap]\nkind = \"ipip\"\nsrc = \"198.18.0.254\"\n",
        "bgp.action",
        "conflicts with the [bgp.encap] table",
    );
    fails(
        "[bgp.encap]\nkind = \"ipip\"\nsrc = \"198.18.0.254\"\ndst = \"198.18.1.1\" #<\n",
        "bgp.encap.dst",
        "the outer destination is each BGP next hop",
    );
    fails(
        "[bgp.encap]\nkind = \"vxlan\" #<\nsrc = \"198.18.0.254\"\n",
        "bgp.encap.vni",
        "needs `vni`",
    );
    fails(
        "[bgp.encap]\nkind = \"gre\"\nsrc = \"198.18.0.254\"\nlabel = 20 #<\n",
        "bgp.encap.label",
        "not used by kind = \"gre\"",
    );
    fails(
        "[bgp.encap]\nkind = \"gre\"\nsrc = \"224.0.0.1\" #<\n",
        "bgp.encap.src",
        "not a unicast address",
    );
    fails(
        "[bgp]\nweight = 2 #<\n",
        "bgp.weight",
        "unknown field `weight`",
    );
    let pol = "[[bgp.policy]]\nprefix = \"198.19.0.0/16\"\n";
    fails(
        &format!("{pol}[[bgp.policy]]\nprefix = \"198.19.0.0/16\" #<\n"),
        "bgp.policy[1].prefix",
        "duplicate policy for 198.19.0.0/16 (first on line 17)",
    );
    fails(
        "[[bgp.policy]]\nprefix = \"198.19.0.1/16\" #<\n",
        "bgp.policy[0].prefix",
        "host bits set",
    );
    fails(
        "[[bgp.policy]] #<\nmode = \"idle\"\n",
        "bgp.policy[0].prefix",
        "missing field `prefix`",
    );
    fails(
        &format!("{pol}buckets = 3 #<\n"),
        "bgp.policy[0].buckets",
        "not a power of two",
    );
    fails(
        &format!("{pol}unbalanced_timer = \"1m\" #<\n"),
        "bgp.policy[0].unbalanced_timer",
        "only used by mode = \"idle\"",
    );
    fails(
        &format!("{pol}policy = [] #<\n"),
        "bgp.policy[0].policy",
        "unknown field `policy`",
    );
    fails(
        &format!("{pol}hash = {{ algo = \"lb-key\" }}\nbuckets = 2048 #<\n"),
        "bgp.policy[0].buckets",
        "lb-key",
    );
    fails(
        &format!("{pol}action = \"encap\" #<\n"),
        "bgp.policy[0].action",
        "needs a [bgp.policy[0].encap] table",
    );
    fails(
        &format!(
            "{pol}[bgp.policy.encap]\nkind = \"mpls-udp\"\nsrc = \"198.18.0.254\"\nlabel = 2 #<\n"
        ),
        "bgp.policy[0].encap.label",
        "reserved",
    );
}

/// The tables that describe a group's shape, as (header, key path); each is followed by the
/// keys under test.
const SHAPE_TABLES: [(&str, &str); 3] = [
    ("[[group]]\nname = \"g\"\n", "group[0]"),
    ("[bgp]\n", "bgp"),
    ("[[bgp.policy]]\nprefix = \"10.0.0.0/8\"\n", "bgp.policy[0]"),
];

#[test]
fn group_and_bgp_policies_refuse_shape_mistakes_alike() {
    let mistakes = [
        ("buckets = 100\n", "buckets"),
        ("buckets = 131072\n", "buckets"),
        ("mode = \"fast\"\n", "mode"),
        ("idle_timer = \"5s\"\n", "idle_timer"),
        (
            "mode = \"maglev\"\nunbalanced_timer = \"1m\"\n",
            "unbalanced_timer",
        ),
        ("mode = \"idle\"\nidle_timer = \"0s\"\n", "idle_timer"),
        ("hash = { algo = \"lb-key\" }\nbuckets = 2048\n", "buckets"),
        // No bucket count anywhere: Maglev's default is too many for lb-key.
        (
            "hash = { algo = \"lb-key\" }\nmode = \"maglev\"\n",
            "buckets",
        ),
    ];
    for (keys, field) in mistakes {
        let errors: Vec<(String, String)> = SHAPE_TABLES
            .iter()
            .map(|(header, _)| {
                let (_, key, message) = error_of(&format!("{header}{keys}"));
                (key, message)
            })
            .collect();
        for ((key, message), (_, path)) in errors.iter().zip(SHAPE_TABLES) {
            assert_eq!(key, &format!("{path}.{field}"), "{keys}");
            assert_eq!(message, &errors[0].1, "{path} vs group[0] for:\n{keys}");
        }
    }
}

#[test]
fn group_and_bgp_policies_read_shape_keys_alike() {
    for keys in [
        "",
        "mode = \"maglev\"\n",
        "mode = \"manual\"\nbuckets = 64\n",
        "mode = \"idle\"\nidle_timer = \"30s\"\nunbalanced_timer = \"5m\"\n",
        "hash = { fields = \"src-ip\", algo = \"lb-key\" }\n",
    ] {
        let c = ok(&format!(
            "[hash]\nsymmetric = true\n{}{keys}{}{keys}",
            SHAPE_TABLES[0].0, SHAPE_TABLES[2].0
        ));
        let g = &c.groups[0];
        let pol = c.bgp.policies[0].group;
        assert_eq!(
            (g.mode, g.buckets, g.idle_timer, g.unbalanced_timer, g.hash),
            (
                pol.mode,
                pol.buckets,
                pol.idle_timer,
                pol.unbalanced_timer,
                pol.hash
            ),
            "{keys}"
        );
        assert!(g.hash.symmetric, "both start from [hash]");
    }
}

#[test]
fn next_hops_and_bgp_policies_refuse_action_mistakes_alike() {
    let hop = "[[nexthop]]\nname = \"h\"\naddress = \"198.18.1.1\"\nport = \"m0\"\nmac = \"02:00:00:00:01:01\"\n";
    let policy = SHAPE_TABLES[2].0;
    let mistakes = [
        ("action = \"encap\"\n", "action"),
        (
            "action = \"rewrite\"\n[T.encap]\nkind = \"ipip\"\nsrc = \"198.18.0.254\"\n",
            "action",
        ),
        (
            "[T.encap]\nkind = \"vxlan\"\nsrc = \"198.18.0.254\"\n",
            "encap.vni",
        ),
        (
            "[T.encap]\nkind = \"vxlan\"\nsrc = \"198.18.0.254\"\nvni = 16777216\n",
            "encap.vni",
        ),
        (
            "[T.encap]\nkind = \"gre\"\nsrc = \"198.18.0.254\"\nlabel = 20\n",
            "encap.label",
        ),
        (
            "[T.encap]\nkind = \"mpls-udp\"\nsrc = \"198.18.0.254\"\nlabel = 15\n",
            "encap.label",
        ),
        (
            "[T.encap]\nkind = \"gue\"\nsrc = \"198.18.0.254\"\n",
            "encap.udp_port",
        ),
        (
            "[T.encap]\nkind = \"gue\"\nsrc = \"198.18.0.254\"\nudp_port = 0\n",
            "encap.udp_port",
        ),
        (
            "[T.encap]\nkind = \"ipip\"\nsrc = \"224.0.0.1\"\n",
            "encap.src",
        ),
    ];
    for (keys, field) in mistakes {
        let (_, hop_key, hop_message) =
            error_of(&format!("{hop}{}", keys.replace("[T.", "[nexthop.")));
        let (_, pol_key, pol_message) =
            error_of(&format!("{policy}{}", keys.replace("[T.", "[bgp.policy.")));
        assert_eq!(
            (hop_key.as_str(), pol_key.as_str()),
            (
                format!("nexthop[0].{field}").as_str(),
                format!("bgp.policy[0].{field}").as_str()
            ),
            "{keys}"
        );
        // Messages name the encap table the way each section writes it.
        assert_eq!(
            hop_message.replace("[nexthop.encap]", "[T.encap]"),
            pol_message.replace("[bgp.policy[0].encap]", "[T.encap]"),
            "{keys}"
        );
    }
}
