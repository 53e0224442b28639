//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums here are ones'-complement sums of big-endian 16-bit words, folded to 16 bits and *not*
//! inverted; the value written into a header is `!sum`. A folded sum is 0 only when every byte
//! summed is 0, otherwise it lies in `1..=0xFFFF`, which is what makes the incremental updates
//! give exactly the value a full recomputation gives (RFC 1624 section 3). A range that starts
//! at an odd offset of the checksummed data contributes its sum byte-swapped (RFC 1071 2(B)).

/// Sums `bytes` as little-endian 32-bit words into a u64. The ones'-complement sum does not
/// depend on byte order except for a final swap (RFC 1071 2(B)), and native-order words with no
/// carries to track let the loop vectorise. Exact below 16 GiB, where the u64 cannot overflow.
#[inline]
fn sum_le(bytes: &[u8]) -> u64 {
    let (words, tail) = bytes.as_chunks::<4>();
    let mut acc: u64 = 0;
    for w in words {
        acc += u64::from(u32::from_le_bytes(*w));
    }
    let mut rest = tail;
    if let Some((w, r)) = rest.split_first_chunk::<2>() {
        acc += u64::from(u16::from_le_bytes(*w));
        rest = r;
    }
    // An odd last byte is the high half of a big-endian word: the low half in this order.
    if let Some(&b) = rest.first() {
        acc += u64::from(b);
    }
    acc
}

/// Folds a wide ones'-complement sum to 16 bits (2^16 is 1 modulo 0xFFFF, so folding keeps
/// the value); a non-zero sum never folds to 0.
#[inline]
fn fold(s: u64) -> u16 {
    let s = (s >> 32) + (s & 0xFFFF_FFFF);
    let s = (s >> 32) + (s & 0xFFFF_FFFF);
    let s = (s >> 16) + (s & 0xFFFF);
    let s = (s >> 16) + (s & 0xFFFF);
    let s = (s >> 16) + (s & 0xFFFF);
    s as u16
}

/// Folded ones'-complement sum of `bytes` (not inverted).
#[inline]
pub fn data(bytes: &[u8]) -> u16 {
    fold(sum_le(bytes)).swap_bytes()
}

/// Ones'-complement addition of two folded sums.
#[inline]
pub fn add(a: u16, b: u16) -> u16 {
    fold(u64::from(a) + u64::from(b))
}

/// Ones'-complement sum of several folded sums.
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// True when `bytes` (including their checksum field) sum to the ones'-complement zero.
#[inline]
pub fn verify(bytes: &[u8]) -> bool {
    data(bytes) == 0xFFFF
}

/// [`verify`] for an option-less IPv4 header: five 32-bit adds and one remainder.
///
/// Why this is exact: the folded sum is 0 only for all-zero data and otherwise lies in
/// `1..=0xFFFF`, with the wide sum congruent to it modulo 0xFFFF; so it equals 0xFFFF exactly
/// when the wide sum is a non-zero multiple of 0xFFFF. Native-order 32-bit words change the
/// sum only by factors of 2^8 and 2^16, which are invertible modulo 0xFFFF.
#[inline(always)]
pub fn verify_ipv4_header(h: &[u8; 20]) -> bool {
    let (words, _) = h.as_chunks::<4>();
    let s: u64 = words
        .iter()
        .map(|w| u64::from(u32::from_ne_bytes(*w)))
        .sum();
    s != 0 && s.is_multiple_of(0xFFFF)
}

/// The checksum to store for `bytes` whose checksum field is zero.
#[inline]
pub fn compute(bytes: &[u8]) -> u16 {
    !data(bytes)
}

/// Sum of the IPv4 pseudo-header (RFC 793 / RFC 768) for a TCP/UDP segment of `length` bytes.
#[inline]
pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], protocol: u8, length: u16) -> u16 {
    let s = u64::from(u32::from_be_bytes(src))
        + u64::from(u32::from_be_bytes(dst))
        + u64::from(protocol)
        + u64::from(length);
    fold(s)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 section 8.1) for an upper-layer packet of `length` bytes.
#[inline]
pub fn pseudo_header_v6(src: [u8; 16], dst: [u8; 16], next_header: u8, length: u32) -> u16 {
    add(
        add(data(&src), data(&dst)),
        fold(u64::from(length) + u64::from(next_header)),
    )
}

/// RFC 1624 eqn. 3: the checksum after one 16-bit word of the covered data changed from `old` to `new`.
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    // Three 16-bit values sum below 2^18: two folding steps reach 16 bits, and further steps
    // of `fold` would change nothing.
    let s = u32::from(!csum) + u32::from(!old) + u32::from(new);
    let s = (s >> 16) + (s & 0xFFFF);
    let s = (s >> 16) + (s & 0xFFFF);
    !(s as u16)
}

/// [`update16`] of an IPv4 header whose TTL goes from `ttl` to `ttl - 1` (saturating), on the
/// checksum as read in native byte order (`u16::from_ne_bytes`; store the result the same way).
/// The TTL shares its checksummed word with the protocol, and `!old + new` of that word is the
/// same for every protocol (0xFFFE in native order on a little-endian machine, 0xFEFF on a
/// big-endian one; 0xFFFF when a zero TTL stays zero), so the update is one add and one fold,
/// with exactly the result of [`update16`] (one's complement sums do not depend on byte order,
/// RFC 1071 2.B). Tested over every checksum.
#[inline(always)]
pub fn decrement_ttl_ne(csum: u16, ttl: u8) -> u16 {
    let delta = if ttl == 0 {
        0xFFFF
    } else {
        u32::from(u16::from_ne_bytes([0xFE, 0xFF]))
    };
    let s = u32::from(!csum) + delta;
    !(((s & 0xFFFF) + (s >> 16)) as u16)
}

/// [`update16`] for an aligned 32-bit field (an IPv4 address, a TCP sequence number).
#[inline]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    let old_sum = fold(u64::from(old >> 16) + u64::from(old & 0xFFFF));
    let new_sum = fold(u64::from(new >> 16) + u64::from(new & 0xFFFF));
    update16(csum, old_sum, new_sum)
}

/// The checksum after the bytes at `offset` (relative to the start of the checksummed data)
/// changed from `old` to `new`. If the slices differ in length, the missing bytes of the shorter
/// one count as zero (a zero byte adds nothing to the sum).
#[inline]
pub fn update_bytes(csum: u16, offset: usize, old: &[u8], new: &[u8]) -> u16 {
    let (mut o, mut n) = (data(old), data(new));
    if !offset.is_multiple_of(2) {
        o = o.swap_bytes();
        n = n.swap_bytes();
    }
    update16(csum, o, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_decrement_in_native_order_is_update16_for_every_checksum() {
        for csum in 0..=u16::MAX {
            for ttl in [0u8, 1, 2, 63, 64, 128, 255] {
                for proto in [0u8, 1, 6, 17, 47, 255] {
                    let new = ttl.saturating_sub(1);
                    let want = update16(
                        csum,
                        u16::from_be_bytes([ttl, proto]),
                        u16::from_be_bytes([new, proto]),
                    );
                    let got = decrement_ttl_ne(u16::from_ne_bytes(csum.to_be_bytes()), ttl);
                    assert_eq!(
                        got.to_ne_bytes(),
                        want.to_be_bytes(),
                        "{csum:#06x} {ttl} {proto}"
                    );
                }
            }
        }
    }
    use proptest::prelude::*;

    /// Straightforward RFC 1071 reference: 16-bit words into a u32.
    fn reference(bytes: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for w in bytes.chunks(2) {
            let hi = u32::from(w[0]) << 8;
            let lo = u32::from(*w.get(1).unwrap_or(&0));
            s += hi | lo;
        }
        while s >> 16 != 0 {
            s = (s & 0xFFFF) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn ipv4_header_known_checksum() {
        // A captured IPv4 header with checksum b861 (the classic Wikipedia example).
        let h = crate::test_util::hex("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7");
        assert!(verify(&h));
        let mut z = h.clone();
        z[10] = 0;
        z[11] = 0;
        assert_eq!(compute(&z), 0xb861);
    }

    #[test]
    fn odd_lengths_and_empty() {
        assert_eq!(data(&[]), 0);
        assert_eq!(data(&[0xab]), 0xab00);
        assert_eq!(data(&[0xff; 9]), reference(&[0xff; 9]));
        let jumbo: Vec<u8> = (0..65_535u32).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(data(&jumbo), reference(&jumbo));
        assert_eq!(data(&[0xff; 65_535]), reference(&[0xff; 65_535]));
    }

    /// Arbitrary data with a checksum field at an even offset, checksum filled.
    fn with_checksum(mut d: Vec<u8>, at: usize) -> (Vec<u8>, usize) {
        let at = (at % (d.len() / 2)) * 2;
        d[at] = 0;
        d[at + 1] = 0;
        let c = compute(&d);
        d[at..at + 2].copy_from_slice(&c.to_be_bytes());
        (d, at)
    }

    fn csum_at(d: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([d[at], d[at + 1]])
    }

    fn recompute(d: &mut [u8], at: usize) -> u16 {
        d[at] = 0;
        d[at + 1] = 0;
        let c = compute(d);
        d[at..at + 2].copy_from_slice(&c.to_be_bytes());
        c
    }

    #[test]
    fn ipv4_header_verify_edge_cases() {
        let h = crate::test_util::hex("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7");
        let h: [u8; 20] = h.try_into().unwrap();
        assert!(verify_ipv4_header(&h));
        // All zero sums to 0, not to the ones'-complement zero; all 0xFF sums to 0xFFFF.
        assert!(!verify_ipv4_header(&[0; 20]));
        assert!(verify_ipv4_header(&[0xff; 20]));
        let mut bad = h;
        bad[11] ^= 1;
        assert!(!verify_ipv4_header(&bad));
    }

    proptest! {
        #[test]
        fn ipv4_header_verify_matches_verify(mut h in any::<[u8; 20]>(), fill in any::<bool>()) {
            if fill {
                // Half the cases carry a valid checksum, so both answers are exercised.
                h[10] = 0;
                h[11] = 0;
                let c = compute(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
            }
            prop_assert_eq!(verify_ipv4_header(&h), verify(&h));
        }

        #[test]
        fn fast_sum_matches_reference(d in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(data(&d), reference(&d));
        }

        #[test]
        fn update16_matches_recompute(
            d in proptest::collection::vec(any::<u8>(), 4..64).prop_filter("even", |d| d.len().is_multiple_of(2)),
            at in any::<usize>(), word in any::<usize>(), new in any::<u16>(),
        ) {
            let (mut d, at) = with_checksum(d, at);
            let w = (word % (d.len() / 2)) * 2;
            prop_assume!(w != at);
            let old = u16::from_be_bytes([d[w], d[w + 1]]);
            let c = csum_at(&d, at);
            d[w..w + 2].copy_from_slice(&new.to_be_bytes());
            prop_assume!(d.iter().enumerate().any(|(i, &b)| b != 0 && i != at && i != at + 1));
            let incr = update16(c, old, new);
            prop_assert_eq!(incr, recompute(&mut d, at));
            prop_assert!(verify(&d));
        }

        #[test]
        fn update32_matches_recompute(
            d in proptest::collection::vec(any::<u8>(), 8..64).prop_filter("x4", |d| d.len().is_multiple_of(4)),
            word in any::<usize>(), new in any::<u32>(),
        ) {
            // Checksum in the first word, the changed 32-bit field aligned after it.
            let (mut d, at) = with_checksum(d, 0);
            let w = 4 + (word % (d.len() / 4 - 1)) * 4;
            let old = u32::from_be_bytes([d[w], d[w + 1], d[w + 2], d[w + 3]]);
            let c = csum_at(&d, at);
            d[w..w + 4].copy_from_slice(&new.to_be_bytes());
            prop_assume!(d[2..].iter().any(|&b| b != 0));
            prop_assert_eq!(update32(c, old, new), recompute(&mut d, at));
        }

        #[test]
        fn update_bytes_matches_recompute(
            d in proptest::collection::vec(any::<u8>(), 8..80).prop_filter("even", |d| d.len().is_multiple_of(2)),
            start in any::<usize>(), len in 0usize..20, fill in proptest::collection::vec(any::<u8>(), 20),
        ) {
            // Checksum in bytes 0..2; the changed range may start at any (odd or even) offset after it.
            let (mut d, at) = with_checksum(d, 0);
            let start = 2 + start % (d.len() - 2);
            let end = (start + len).min(d.len());
            let old = d[start..end].to_vec();
            d[start..end].copy_from_slice(&fill[..end - start]);
            let c = csum_at(&d, at);
            prop_assume!(d[2..].iter().any(|&b| b != 0));
            let incr = update_bytes(c, start, &old, &d[start..end]);
            prop_assert_eq!(incr, recompute(&mut d, at));
        }
    }
}
