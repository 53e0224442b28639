//! Per-group policy: how flows are hashed onto buckets.

/// Which packet fields feed the group's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HashFields {
    /// Source address only.
    SrcIp,
    /// Destination address only.
    DstIp,
    /// Source and destination addresses.
    SrcDstIp,
    /// Addresses, protocol and ports (fragments fall back to addresses and protocol).
    #[default]
    FiveTuple,
}

/// The hash function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HashAlgo {
    /// A fast seeded hash (foldhash).
    #[default]
    Fast,
    /// CRC32C (SSE4.2 where available), seeded.
    Crc32c,
    /// Toeplitz, as NIC RSS computes it, keyed by the configured RSS key.
    Toeplitz,
    /// The 10-bit XOR-fold lb-key of some switches (compatibility mode; only 1024 distinct values).
    LbKey,
}

/// How a group hashes flows onto its buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HashPolicy {
    /// Fields that feed the hash.
    pub fields: HashFields,
    /// The hash function.
    pub algo: HashAlgo,
    /// Both directions of a flow hash alike (addresses and ports sorted before hashing).
    pub symmetric: bool,
    /// Hash the inner headers of IP-in-IP, GRE and VXLAN packets when present.
    pub inner: bool,
}

impl HashPolicy {
    /// True when the group hashes the packet's own (outer) 5-tuple: then the exact outer 5-tuple
    /// is a flow-cache key for it (equal keys hash alike, and the key's destination names the
    /// route). Any other policy hashes fewer fields or inner headers, so its flows are keyed by
    /// the fields it hashes and by their group (see `ecmp_dataplane::pipeline`).
    #[inline]
    pub fn keys_outer_five_tuple(&self) -> bool {
        self.fields == HashFields::FiveTuple && !self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_outer_five_tuple_is_keyed_by_it_whatever_the_algo_or_symmetry() {
        for algo in [
            HashAlgo::Fast,
            HashAlgo::Crc32c,
            HashAlgo::Toeplitz,
            HashAlgo::LbKey,
        ] {
            for symmetric in [false, true] {
                for fields in [
                    HashFields::SrcIp,
                    HashFields::DstIp,
                    HashFields::SrcDstIp,
                    HashFields::FiveTuple,
                ] {
                    for inner in [false, true] {
                        let p = HashPolicy {
                            fields,
                            algo,
                            symmetric,
                            inner,
                        };
                        assert_eq!(
                            p.keys_outer_five_tuple(),
                            fields == HashFields::FiveTuple && !inner,
                            "{p:?}"
                        );
                    }
                }
            }
        }
        assert!(HashPolicy::default().keys_outer_five_tuple());
    }
}
