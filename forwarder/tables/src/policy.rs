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
