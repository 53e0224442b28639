//! BGP multipath selection: which of a prefix's paths take new flows.
//!
//! The rule (RFC 4271 9.1.2.2 steps a-c, then the multipath set as routers form it): among the
//! candidate paths, keep
//! 1. the highest LOCAL_PREF (absent: 100, the usual default, e.g. for eBGP-learnt paths);
//! 2. then the shortest AS_PATH (an AS_SEQUENCE counts its ASes, an AS_SET counts 1, confederation
//!    segments count 0 as RFC 5065 says);
//! 3. then the lowest ORIGIN (IGP < EGP < INCOMPLETE; absent: IGP);
//! 4. then, within each group of paths from the same neighbour AS, the lowest MED (absent: 0).
//!    The neighbour AS is the first AS of the path when it starts with an AS_SEQUENCE (after any
//!    confederation segments); otherwise (empty path, or a leading AS_SET) it is the local AS,
//!    which all such paths share. MEDs of different neighbour ASes are never compared, so paths
//!    from two neighbour ASes can both stay.
//!
//! The paths left are the multipath set, all tied; every other path lost at the first step that
//! dropped it, and [`select`] says which step and by what values. Later steps of a router's
//! decision process (eBGP over iBGP, IGP cost, router id) only pick one best among equals;
//! multipath keeps them all, so they are not applied. Pure code, no I/O.

use ecmp_proto::ctl::Criterion;
use ecmp_proto::{AsPathSegment, Attributes, Origin, SegmentKind};

/// LOCAL_PREF of a path that carries none.
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// What selection compares of one path, worked out once from its attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PathRank {
    /// LOCAL_PREF, defaulted.
    pub local_pref: u32,
    /// AS_PATH length as selection counts it.
    pub as_path_len: u32,
    /// ORIGIN, defaulted.
    pub origin: Origin,
    /// MED, defaulted to 0.
    pub med: u32,
    /// The neighbour AS MEDs are compared within; `None` is the local AS.
    pub neighbor_as: Option<u32>,
}

impl Default for PathRank {
    /// A path with no attributes at all.
    fn default() -> Self {
        PathRank::of(&Attributes::default())
    }
}

impl PathRank {
    /// The rank of a path announced with `attributes`.
    pub fn of(attributes: &Attributes) -> PathRank {
        PathRank {
            local_pref: attributes.local_pref.unwrap_or(DEFAULT_LOCAL_PREF),
            as_path_len: as_path_len(&attributes.as_path),
            origin: attributes.origin.unwrap_or(Origin::Igp),
            med: attributes.med.unwrap_or(0),
            neighbor_as: neighbor_as(&attributes.as_path),
        }
    }
}

/// Why a path is not in the multipath set: the step it lost at, its value and the winners'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Loss {
    /// The step.
    pub criterion: Criterion,
    /// This path's value (ORIGIN as its code).
    pub value: u32,
    /// The value of the paths that went on (for MED: the best of its neighbour AS).
    pub best: u32,
}

fn as_path_len(path: &[AsPathSegment]) -> u32 {
    path.iter()
        .map(|seg| match seg.kind {
            SegmentKind::Sequence => u32::try_from(seg.asns.len()).unwrap_or(u32::MAX),
            SegmentKind::Set => u32::from(!seg.asns.is_empty()),
            SegmentKind::ConfedSequence | SegmentKind::ConfedSet => 0,
        })
        .fold(0, u32::saturating_add)
}

fn neighbor_as(path: &[AsPathSegment]) -> Option<u32> {
    let first = path
        .iter()
        .find(|seg| matches!(seg.kind, SegmentKind::Sequence | SegmentKind::Set))?;
    match first.kind {
        SegmentKind::Sequence => first.asns.first().copied(),
        _ => None,
    }
}

/// One step before MED: keep the paths whose key is the best (highest when `higher`).
struct Step {
    criterion: Criterion,
    key: fn(&PathRank) -> u32,
    higher: bool,
}

const STEPS: [Step; 3] = [
    Step {
        criterion: Criterion::LocalPref,
        key: |r| r.local_pref,
        higher: true,
    },
    Step {
        criterion: Criterion::AsPathLength,
        key: |r| r.as_path_len,
        higher: false,
    },
    Step {
        criterion: Criterion::Origin,
        key: |r| r.origin.code(),
        higher: false,
    },
];

/// Runs the selection over `ranks`: for each path, `None` when it is in the multipath set, else
/// where it lost. An empty input gives an empty output; a non-empty one always keeps a path.
pub fn select(ranks: &[PathRank]) -> Vec<Option<Loss>> {
    let mut out: Vec<Option<Loss>> = vec![None; ranks.len()];
    let mut alive: Vec<usize> = (0..ranks.len()).collect();
    for Step {
        criterion,
        key,
        higher,
    } in STEPS
    {
        let values = alive.iter().map(|&i| key(&ranks[i]));
        let Some(best) = (if higher { values.max() } else { values.min() }) else {
            return out;
        };
        alive.retain(|&i| {
            let value = key(&ranks[i]);
            if value == best {
                return true;
            }
            out[i] = Some(Loss {
                criterion,
                value,
                best,
            });
            false
        });
    }
    for &i in &alive {
        let neighbor = ranks[i].neighbor_as;
        let best = alive
            .iter()
            .filter(|&&j| ranks[j].neighbor_as == neighbor)
            .map(|&j| ranks[j].med)
            .min()
            .unwrap_or(ranks[i].med);
        if ranks[i].med > best {
            out[i] = Some(Loss {
                criterion: Criterion::Med,
                value: ranks[i].med,
                best,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rank(local_pref: u32, as_path_len: u32, origin: Origin, med: u32, nas: u32) -> PathRank {
        PathRank {
            local_pref,
            as_path_len,
            origin,
            med,
            neighbor_as: Some(nas),
        }
    }

    fn seq(asns: &[u32]) -> AsPathSegment {
        AsPathSegment {
            kind: SegmentKind::Sequence,
            asns: asns.to_vec(),
        }
    }

    fn loss(criterion: Criterion, value: u32, best: u32) -> Option<Loss> {
        Some(Loss {
            criterion,
            value,
            best,
        })
    }

    #[test]
    fn ranks_default_absent_attributes() {
        assert_eq!(
            PathRank::default(),
            PathRank {
                local_pref: 100,
                as_path_len: 0,
                origin: Origin::Igp,
                med: 0,
                neighbor_as: None,
            }
        );
        let a = Attributes {
            origin: Some(Origin::Egp),
            as_path: vec![
                AsPathSegment {
                    kind: SegmentKind::ConfedSequence,
                    asns: vec![64512, 64513],
                },
                seq(&[65001, 65002]),
                AsPathSegment {
                    kind: SegmentKind::Set,
                    asns: vec![1, 2, 3],
                },
            ],
            med: Some(5),
            local_pref: Some(1),
            communities: vec![],
        };
        assert_eq!(
            PathRank::of(&a),
            PathRank {
                local_pref: 1,
                as_path_len: 3,
                origin: Origin::Egp,
                med: 5,
                neighbor_as: Some(65001),
            }
        );
        // A path starting with an AS_SET (an aggregate) has the local AS as neighbour.
        let aggregate = Attributes {
            as_path: vec![AsPathSegment {
                kind: SegmentKind::Set,
                asns: vec![1, 2],
            }],
            ..Attributes::default()
        };
        assert_eq!(PathRank::of(&aggregate).neighbor_as, None);
        assert_eq!(PathRank::of(&aggregate).as_path_len, 1);
    }

    #[test]
    fn each_step_in_order() {
        use Origin::{Egp, Igp, Incomplete};
        // Local preference beats everything after it.
        assert_eq!(
            select(&[rank(100, 5, Incomplete, 9, 1), rank(1, 0, Igp, 0, 1)]),
            vec![None, loss(Criterion::LocalPref, 1, 100)]
        );
        // Then AS-path length.
        assert_eq!(
            select(&[rank(100, 2, Igp, 0, 1), rank(100, 1, Incomplete, 9, 1)]),
            vec![loss(Criterion::AsPathLength, 2, 1), None]
        );
        // Then origin.
        assert_eq!(
            select(&[rank(100, 1, Egp, 0, 1), rank(100, 1, Igp, 9, 1)]),
            vec![loss(Criterion::Origin, 1, 0), None]
        );
        // Then MED, within one neighbour AS.
        assert_eq!(
            select(&[rank(100, 1, Igp, 10, 1), rank(100, 1, Igp, 50, 1)]),
            vec![None, loss(Criterion::Med, 50, 10)]
        );
        // Ties on every step are all kept.
        assert_eq!(
            select(&[rank(100, 1, Igp, 0, 1); 3]),
            vec![None, None, None]
        );
        assert!(select(&[]).is_empty());
    }

    #[test]
    fn meds_of_different_neighbour_ases_are_not_compared() {
        let ranks = [
            rank(100, 1, Origin::Igp, 10, 65001),
            rank(100, 1, Origin::Igp, 50, 65002),
            rank(100, 1, Origin::Igp, 70, 65001),
        ];
        assert_eq!(
            select(&ranks),
            vec![None, None, loss(Criterion::Med, 70, 10)]
        );
        // The local AS (iBGP-originated paths) is one neighbour AS.
        let local = PathRank {
            neighbor_as: None,
            ..rank(100, 0, Origin::Igp, 20, 0)
        };
        let local_low = PathRank { med: 0, ..local };
        assert_eq!(
            select(&[local, local_low]),
            vec![loss(Criterion::Med, 20, 0), None]
        );
    }

    #[test]
    fn a_loser_is_judged_only_against_paths_still_in_the_running() {
        // Path 1's MED is lower than path 0's, but path 1 already lost on local preference.
        let ranks = [
            rank(100, 1, Origin::Igp, 50, 1),
            rank(50, 1, Origin::Igp, 0, 1),
        ];
        assert_eq!(
            select(&ranks),
            vec![None, loss(Criterion::LocalPref, 50, 100)]
        );
    }

    fn any_rank() -> impl Strategy<Value = PathRank> {
        (
            prop::sample::select(vec![0u32, 1, 100, 200]),
            0u32..4,
            prop::sample::select(vec![Origin::Igp, Origin::Egp, Origin::Incomplete]),
            0u32..3,
            prop::option::of(0u32..3),
        )
            .prop_map(
                |(local_pref, as_path_len, origin, med, neighbor_as)| PathRank {
                    local_pref,
                    as_path_len,
                    origin,
                    med,
                    neighbor_as,
                },
            )
    }

    proptest! {
        /// The set is non-empty, its members tie on the first three steps and are each the lowest
        /// MED of their neighbour AS among the set; every loser is beaten at the step it names,
        /// by a selected path, and no selected path beats another.
        #[test]
        fn the_multipath_set_is_the_tied_best(ranks in proptest::collection::vec(any_rank(), 1..8)) {
            let out = select(&ranks);
            let chosen: Vec<&PathRank> =
                ranks.iter().zip(&out).filter(|(_, l)| l.is_none()).map(|(r, _)| r).collect();
            prop_assert!(!chosen.is_empty());
            let key = |r: &PathRank| (r.local_pref, r.as_path_len, r.origin);
            for r in &chosen {
                prop_assert_eq!(key(r), key(chosen[0]));
                for other in &chosen {
                    if other.neighbor_as == r.neighbor_as {
                        prop_assert_eq!(other.med, r.med);
                    }
                }
            }
            let best = chosen[0];
            for (r, l) in ranks.iter().zip(&out) {
                let Some(l) = l else { continue };
                match l.criterion {
                    Criterion::LocalPref => {
                        prop_assert_eq!((l.value, l.best), (r.local_pref, best.local_pref));
                        prop_assert!(r.local_pref < best.local_pref);
                    }
                    Criterion::AsPathLength => {
                        prop_assert_eq!(r.local_pref, best.local_pref);
                        prop_assert_eq!((l.value, l.best), (r.as_path_len, best.as_path_len));
                        prop_assert!(r.as_path_len > best.as_path_len);
                    }
                    Criterion::Origin => {
                        prop_assert_eq!((r.local_pref, r.as_path_len), (best.local_pref, best.as_path_len));
                        prop_assert_eq!((l.value, l.best), (r.origin.code(), best.origin.code()));
                        prop_assert!(r.origin > best.origin);
                    }
                    Criterion::Med => {
                        prop_assert_eq!(key(r), key(best));
                        prop_assert!(chosen.iter().any(|c| c.neighbor_as == r.neighbor_as && c.med == l.best));
                        prop_assert!(r.med > l.best);
                    }
                }
            }
        }

        /// The outcome depends on the paths, not on the order they are listed in.
        #[test]
        fn order_does_not_matter(ranks in proptest::collection::vec(any_rank(), 1..8), seed in any::<u64>()) {
            let out = select(&ranks);
            let mut order: Vec<usize> = (0..ranks.len()).collect();
            let n = order.len();
            for i in (1..n).rev() {
                let j = usize::try_from(seed.rotate_left(u32::try_from(i).unwrap_or(0)) % (i as u64 + 1)).unwrap_or(0);
                order.swap(i, j);
            }
            let shuffled: Vec<PathRank> = order.iter().map(|&i| ranks[i]).collect();
            let again = select(&shuffled);
            for (k, &i) in order.iter().enumerate() {
                prop_assert_eq!(again[k], out[i]);
            }
        }
    }
}
