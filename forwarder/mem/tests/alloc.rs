//! The allocator against the running kernel: what each policy gets, read back from smaps.

use ecmp_mem::{Backing, HUGE_PAGE, HugeArray, HugePages, MemError, Region, pool, set_policy};

const FOUR_MIB: usize = 4 << 20;

/// The THP mode in force (`always`, `madvise` or `never`), None when the kernel has no THP.
fn thp_mode() -> Option<String> {
    let s = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok()?;
    let start = s.find('[')? + 1;
    let end = s[start..].find(']')? + start;
    Some(s[start..end].to_owned())
}

#[test]
fn auto_gets_huge_pages_when_the_kernel_offers_them() {
    let a = HugeArray::try_filled("test auto", FOUR_MIB / 8, 7u64, HugePages::Auto)
        .expect("auto never fails for want of huge pages");
    assert_eq!(a.as_ptr() as usize % HUGE_PAGE, 0, "2 MiB aligned");
    let backing = a.backing();
    let p = pool();
    if p.free * p.page_bytes >= FOUR_MIB as u64 && p.page_bytes == HUGE_PAGE as u64 {
        assert_eq!(
            backing,
            Backing::HugeTlb {
                page_bytes: HUGE_PAGE
            }
        );
    } else {
        match thp_mode().as_deref() {
            Some("always") | Some("madvise") => match backing {
                Backing::Thp { huge_bytes } => {
                    assert!(huge_bytes > 0 && huge_bytes <= FOUR_MIB, "{huge_bytes}")
                }
                other => panic!("THP is enabled but the table got {other}"),
            },
            _ => assert_eq!(backing, Backing::Small, "THP is never or absent"),
        }
    }
    assert!(a.iter().all(|&x| x == 7));
}

#[test]
fn off_gets_no_huge_pages() {
    let a = HugeArray::try_filled("test off", FOUR_MIB / 8, 1u64, HugePages::Off).expect("maps");
    assert_eq!(a.backing(), Backing::Small);
    assert_eq!(a.backing().huge_bytes(FOUR_MIB), 0);
}

#[test]
fn require_without_a_pool_names_the_table() {
    let p = pool();
    let got = HugeArray::<u32>::try_zeroed("fib4 tbl24", FOUR_MIB / 4, HugePages::Require);
    if p.free * p.page_bytes < FOUR_MIB as u64 {
        let err = got.expect_err("no pool to require");
        assert!(matches!(err, MemError::NoHugePages { .. }), "{err:?}");
        assert!(err.to_string().starts_with("fib4 tbl24: "), "{err}");
        if p.free == 0 {
            let err = set_policy(HugePages::Require).expect_err("no pool at all");
            assert!(matches!(err, MemError::NoPool { .. }), "{err:?}");
        }
    } else {
        let a = got.expect("the pool has room");
        assert!(matches!(a.backing(), Backing::HugeTlb { .. }));
    }
}

#[test]
fn fill_clone_deref_round_trip() {
    for policy in [HugePages::Auto, HugePages::Off] {
        // One mapped (4 MiB), one on the heap (4 KiB).
        for len in [FOUR_MIB / 4, 1024] {
            let mut a = HugeArray::try_filled("test", len, 3u32, policy).expect("maps");
            assert_eq!(a.len(), len);
            a[0] = 1;
            a[len - 1] = 2;
            let b = a.clone();
            a[1] = 9;
            assert_eq!(b.len(), len);
            assert_eq!(
                (b[0], b[1], b[len - 1]),
                (1, 3, 2),
                "the clone kept its values"
            );
            assert_eq!(a[1], 9);
            assert_eq!(b.policy(), policy);
            assert_ne!(a.as_ptr(), b.as_ptr(), "the clone has its own memory");
            let c = b.resized(len + 5, 8);
            assert_eq!(&c[..len], &b[..]);
            assert!(c[len..].iter().all(|&x| x == 8));
            let d = b.resized(2, 0);
            assert_eq!(&d[..], &[1, 3]);

            let z = HugeArray::<u64>::try_zeroed("zeros", len, policy).expect("maps");
            assert!(z.iter().all(|&x| x == 0));
        }
    }
}

#[test]
fn a_table_is_its_own_smaps_entry() {
    // Two regions mapped back to back never merge into one entry (guard pages), so each reads
    // back its own huge pages only.
    let mut a = Region::map("a", FOUR_MIB, HugePages::Off).expect("maps");
    let mut b = Region::map("b", FOUR_MIB, HugePages::Off).expect("maps");
    a.prefault();
    b.prefault();
    assert_eq!(a.backing(), Backing::Small);
    assert_eq!(b.backing(), Backing::Small);
    let m = HugeArray::<u8>::try_zeroed("untouched", FOUR_MIB, HugePages::Auto).expect("maps");
    if !matches!(m.backing(), Backing::HugeTlb { .. }) {
        assert_eq!(
            m.backing(),
            Backing::Small,
            "nothing touched, nothing backed"
        );
    }
}

#[test]
fn placements_read_back_like_the_table_and_require_checks_them() {
    let a = HugeArray::try_filled("on", FOUR_MIB / 4, 0u32, HugePages::Auto).expect("maps");
    let b = HugeArray::try_filled("off", FOUR_MIB / 4, 0u32, HugePages::Off).expect("maps");
    let small = HugeArray::try_filled("small", 16, 0u32, HugePages::Off).expect("heap");
    let got = ecmp_mem::read_back(&[a.placement(), b.placement(), small.placement()]);
    assert_eq!(got[0], a.memory());
    assert_eq!(got[1].backing, Backing::Small);
    assert_eq!((got[1].name.as_str(), got[1].bytes), ("off", FOUR_MIB));
    assert_eq!(got[2].bytes, 64);
    assert!(ecmp_mem::check_required(HugePages::Auto, &got).is_ok());
    let err = ecmp_mem::check_required(HugePages::Require, &got[1..]).expect_err("off is 4k");
    assert_eq!(
        err.to_string(),
        "off: hugepages = \"require\" but the kernel backs it with 4 KiB pages"
    );
    assert!(
        ecmp_mem::check_required(HugePages::Require, &got[2..]).is_ok(),
        "tables under a huge page are not held to it"
    );
}

#[test]
fn lengths_near_the_address_space_are_refused_not_wrapped() {
    for policy in [HugePages::Off, HugePages::Auto, HugePages::Require] {
        for len in [usize::MAX, usize::MAX - 4095, isize::MAX as usize] {
            assert!(
                matches!(
                    ecmp_mem::Region::map("huge", len, policy),
                    Err(ecmp_mem::MemError::Map { .. })
                ),
                "{policy:?} {len}"
            );
        }
    }
}
