//! The error type of the I/O layer.
//!
//! Hot-path calls (`rx_burst`, `tx_burst`) never return errors, per the `Port` trait: they report
//! trouble through counters, and a port that hits an I/O error keeps it for its owner to collect
//! (e.g. [`PcapPort::take_error`](crate::pcap::PcapPort::take_error)). Every error about a file
//! names the file.

use std::path::PathBuf;

/// Errors of the I/O layer.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// A packet could not be loaded into a frame.
    #[error(transparent)]
    Frame(#[from] ecmp_port::PortError),
    /// A capture file could not be opened or created.
    #[error("{}: cannot open", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Reading a capture failed.
    #[error("{}: read error at byte {offset}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Offset of the header or record being read.
        offset: u64,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Writing a capture failed.
    #[error("{}: write error", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file does not start with a capture magic number the reader accepts: classic pcap in
    /// either byte order, or (where pcapng is read too) a pcapng section header.
    #[error("{}: not a pcap capture (magic {magic:#010x})", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The first four bytes, read little-endian.
        magic: u32,
    },
    /// The pcap major version is not 2.
    #[error("{}: unsupported pcap version {major}.{minor}", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
    },
    /// The capture's link type is not Ethernet.
    #[error("{}: link type {linktype} is not Ethernet (1)", path.display())]
    UnsupportedLinkType {
        /// The file.
        path: PathBuf,
        /// Link type found (low 16 bits of the header field).
        linktype: u32,
    },
    /// The file ends inside a header or a packet.
    #[error("{}: truncated at byte {offset}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Offset of the header or record cut short.
        offset: u64,
    },
    /// A record claims more captured bytes than any pcap may hold.
    #[error("{}: record at byte {offset} claims {caplen} captured bytes", path.display())]
    RecordTooLong {
        /// The file.
        path: PathBuf,
        /// Offset of the record header.
        offset: u64,
        /// The captured length it claims.
        caplen: u32,
    },
    /// A header, record or block that pcap-file's parser rejects.
    #[error("{}: malformed capture at byte {offset}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Offset of the header, record or block.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A capture filter expression that libpcap does not accept.
    #[error("bad capture filter {filter:?}: {message}")]
    Filter {
        /// The expression as given.
        filter: String,
        /// libpcap's message.
        message: String,
    },
}
