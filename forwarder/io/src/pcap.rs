//! Capture files and a port that reads and writes them: classic libpcap files in and out, pcapng
//! files in (what `ecmpctl capture` writes, so a capture can be replayed).
//!
//! Both formats are parsed by the `pcap-file` crate, from a byte slice and without copying: the
//! reader keeps one fixed buffer per file, refills it from the source, and hands pcap-file the
//! unread part ([`pcap_file::pcap::PcapParser`], [`pcap_file::pcapng::PcapNgParser`]). The offset
//! of every header, record and block is the count of bytes consumed before it, so errors name the
//! byte where a file goes wrong. The one copy of a packet is from that buffer into a pool frame.
//! The writer encodes through pcap-file too (its header and raw record encoders).
//!
//! Invariants:
//! - Nothing in the file is trusted: a captured length above [`MAX_CAPLEN`] is an error before
//!   anything waits for that many bytes, and a file that ends inside a header, record or block is
//!   an error naming its offset, while a file ending exactly at a record boundary is a clean end.
//! - Only Ethernet captures ([`LINKTYPE_ETHERNET`]) are accepted: the pipeline parses from the
//!   Ethernet header. In pcapng that is checked per packet, against the interface it names.
//! - Every error names the file it concerns.
//! - [`PcapPort`] does no allocation after it is built when it reads a classic pcap, and never when
//!   it writes. pcap-file's pcapng block parser collects a block's options into a `Vec`, so a pcapng
//!   packet carrying options (a drop's comment) costs one allocation: replaying such a capture is a
//!   test and tooling path, not the data path.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use pcap_file::PcapError;
use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{Block, PcapNgParser, RawBlock};

use ecmp_port::{Burst, Frame, Port};

use crate::IoError;
use ecmp_port::PortStats;
use ecmp_port::memory::{FramePool, MAX_PACKET, MemFrame};

/// The link type of Ethernet captures.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// The largest captured length accepted or written (libpcap's `MAXIMUM_SNAPLEN`).
pub const MAX_CAPLEN: u32 = 262_144;

const FILE_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;
const NANOS_PER_SEC: u64 = 1_000_000_000;
/// Bytes a reader buffers: any accepted record (or a pcapng block of that size with its framing
/// and some options) fits whole, with room left to read ahead in large reads.
const READ_BUF: usize = 1 << 20;
const _: () = assert!(READ_BUF >= 2 * (RECORD_HEADER_LEN + MAX_CAPLEN as usize));
/// The first four bytes of a pcapng file (a section header block's type, the same either way
/// round).
const PCAPNG_MAGIC: [u8; 4] = pcap_file::pcapng::blocks::SECTION_HEADER_BLOCK.to_be_bytes();
/// Why a pcapng block that never completes in a full buffer is refused.
const TOO_LONG: &str = "block longer than the reader's 1 MiB buffer";
/// pcapng's default `if_tsresol`: microseconds.
const PCAPNG_DEFAULT_TSRESOL: u8 = 6;

/// Timestamp resolution of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolution {
    /// Microseconds (magic `a1b2c3d4`).
    #[default]
    Micro,
    /// Nanoseconds (magic `a1b23c4d`).
    Nano,
}

impl Resolution {
    fn nanos_per_unit(self) -> u64 {
        match self {
            Self::Micro => 1_000,
            Self::Nano => 1,
        }
    }
}

/// Byte order of a capture's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Endian {
    /// Little-endian (what x86 and ARM hosts write).
    #[default]
    Little,
    /// Big-endian.
    Big,
}

/// The file header of a capture, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// Timestamp resolution.
    pub resolution: Resolution,
    /// Byte order of the header fields.
    pub endian: Endian,
    /// Major version (always 2 once accepted).
    pub version_major: u16,
    /// Minor version.
    pub version_minor: u16,
    /// Snapshot length the capture was taken with (informational; records are checked against
    /// [`MAX_CAPLEN`]).
    pub snaplen: u32,
    /// Link type (low 16 bits of the field; always [`LINKTYPE_ETHERNET`] once accepted).
    pub linktype: u32,
}

/// The header of one captured packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Capture time in nanoseconds since the Unix epoch.
    pub ts_nanos: u64,
    /// Bytes captured (present in the file).
    pub caplen: u32,
    /// Length of the packet on the wire.
    pub orig_len: u32,
}

/// One captured packet, owned (see [`PcapReader`]'s iterator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Its record header.
    pub header: RecordHeader,
    /// The captured bytes.
    pub data: Vec<u8>,
}

/// What [`PcapReader::read_into`] did with the next record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// The packet was copied into `buf[..caplen]`.
    Packet(RecordHeader),
    /// The packet was longer than the buffer; it was skipped, nothing was copied.
    Oversize(RecordHeader),
}

impl Fetched {
    /// Copies `data` into `buf` when it fits.
    fn copy(header: RecordHeader, data: &[u8], buf: &mut [u8]) -> Self {
        match buf.get_mut(..data.len()) {
            Some(dst) => {
                dst.copy_from_slice(data);
                Self::Packet(header)
            }
            None => Self::Oversize(header),
        }
    }
}

/// A source read through one fixed buffer, for parsers that work on byte slices.
struct Input<R> {
    r: R,
    path: PathBuf,
    buf: Box<[u8]>,
    /// Start of the unread bytes in `buf`.
    pos: usize,
    /// End of the bytes read into `buf`.
    len: usize,
    /// File offset of `buf[pos]`.
    offset: u64,
}

impl<R: Read> Input<R> {
    fn new(r: R, path: PathBuf) -> Self {
        Self {
            r,
            path,
            buf: vec![0; READ_BUF].into_boxed_slice(),
            pos: 0,
            len: 0,
            offset: 0,
        }
    }

    fn unread(&self) -> &[u8] {
        &self.buf[self.pos..self.len]
    }

    /// True when the unread bytes fill the buffer: a parser still wanting more never gets it.
    fn full(&self) -> bool {
        self.len - self.pos == self.buf.len()
    }

    fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len - self.pos);
        self.pos += n;
        self.offset += n as u64;
    }

    /// Moves the unread bytes to the front and reads more after them; returns how many were read
    /// (0 at the end of the input).
    fn refill(&mut self) -> Result<usize, IoError> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.len, 0);
            self.len -= self.pos;
            self.pos = 0;
        }
        loop {
            match self.r.read(&mut self.buf[self.len..]) {
                Ok(n) => {
                    self.len += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(IoError::Read {
                        path: self.path.clone(),
                        offset: self.offset,
                        source,
                    });
                }
            }
        }
    }

    /// Reads until at least `n` bytes are unread or the input ends.
    fn fill_to(&mut self, n: usize) -> Result<(), IoError> {
        while self.len - self.pos < n && self.refill()? > 0 {}
        Ok(())
    }

    fn truncated(&self) -> IoError {
        IoError::Truncated {
            path: self.path.clone(),
            offset: self.offset,
        }
    }

    fn malformed(&self, reason: impl ToString) -> IoError {
        IoError::Malformed {
            path: self.path.clone(),
            offset: self.offset,
            reason: reason.to_string(),
        }
    }
}

/// Reads packets from a classic pcap capture.
pub struct PcapReader<R> {
    input: Input<R>,
    parser: PcapParser,
    header: FileHeader,
    /// Set after the end or an error, so iteration stops for good.
    done: bool,
}

impl PcapReader<File> {
    /// Opens a capture file and reads its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, IoError> {
        let path = path.as_ref();
        Self::new(open(path)?, path)
    }
}

fn open(path: &Path) -> Result<File, IoError> {
    File::open(path).map_err(|source| IoError::Open {
        path: path.to_path_buf(),
        source,
    })
}

impl<R: Read> PcapReader<R> {
    /// Reads the file header from `r`; `path` names the source in errors.
    pub fn new(r: R, path: impl Into<PathBuf>) -> Result<Self, IoError> {
        Self::from_input(Input::new(r, path.into()))
    }

    fn from_input(mut input: Input<R>) -> Result<Self, IoError> {
        input.fill_to(FILE_HEADER_LEN)?;
        let head = input.unread();
        let magic = head
            .get(..4)
            .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
        let bad_magic = |path: PathBuf, magic| IoError::BadMagic { path, magic };
        let (used, parser) = match PcapParser::new(head) {
            Ok((rest, parser)) => (head.len() - rest.len(), parser),
            Err(PcapError::IncompleteBuffer) => {
                // A short file is cut if it starts like a capture and foreign if not: let
                // pcap-file judge the magic of the header padded out to its full length.
                let Some(magic) = magic else {
                    return Err(input.truncated());
                };
                let mut padded = [0u8; FILE_HEADER_LEN];
                padded[..head.len()].copy_from_slice(head);
                return Err(match PcapParser::new(&padded) {
                    Ok(_) => input.truncated(),
                    Err(_) => bad_magic(input.path, magic),
                });
            }
            // The magic is the one thing a complete header can fail on.
            Err(_) => return Err(bad_magic(input.path, magic.unwrap_or_default())),
        };
        input.consume(used);
        let h = parser.header();
        if h.version_major != 2 {
            return Err(IoError::UnsupportedVersion {
                path: input.path,
                major: h.version_major,
                minor: h.version_minor,
            });
        }
        // The high bits carry FCS information, not the link type.
        let linktype = u32::from(h.datalink) & 0xffff;
        if linktype != LINKTYPE_ETHERNET {
            return Err(IoError::UnsupportedLinkType {
                path: input.path,
                linktype,
            });
        }
        let header = FileHeader {
            resolution: match h.ts_resolution {
                pcap_file::TsResolution::MicroSecond => Resolution::Micro,
                pcap_file::TsResolution::NanoSecond => Resolution::Nano,
            },
            endian: match h.endianness {
                pcap_file::Endianness::Little => Endian::Little,
                pcap_file::Endianness::Big => Endian::Big,
            },
            version_major: h.version_major,
            version_minor: h.version_minor,
            snaplen: h.snaplen,
            linktype,
        };
        Ok(Self {
            input,
            parser,
            header,
            done: false,
        })
    }

    /// The capture's file header.
    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// The file this reader reads (as named in errors).
    pub fn path(&self) -> &Path {
        &self.input.path
    }

    /// True once the end of the capture or an error was reached.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The captured length a record header at the start of `unread` claims, if it is all there.
    ///
    /// pcap-file reports a record it cannot complete only as "more bytes needed", which cannot
    /// tell a cut file from a header claiming gigabytes; this one field, in the byte order
    /// pcap-file found, tells them apart before the reader waits for bytes that never come.
    fn claimed_caplen(&self, unread: &[u8]) -> Option<u32> {
        use byteorder::ByteOrder;
        let field = unread.get(8..12)?;
        Some(match self.header.endian {
            Endian::Little => byteorder::LittleEndian::read_u32(field),
            Endian::Big => byteorder::BigEndian::read_u32(field),
        })
    }

    /// Parses the next record and hands its header and bytes to `f`; `None` at a clean end.
    fn next_with<T>(
        &mut self,
        f: impl FnOnce(RecordHeader, &[u8]) -> T,
    ) -> Result<Option<T>, IoError> {
        let result = self.next_inner(f);
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result
    }

    fn next_inner<T>(
        &mut self,
        f: impl FnOnce(RecordHeader, &[u8]) -> T,
    ) -> Result<Option<T>, IoError> {
        if self.done {
            return Ok(None);
        }
        loop {
            let unread = self.input.unread();
            match self.parser.next_raw_packet(unread) {
                Ok((rest, raw)) => {
                    let used = unread.len() - rest.len();
                    if raw.incl_len > MAX_CAPLEN {
                        return Err(self.too_long(raw.incl_len));
                    }
                    let resolution = self.header.resolution;
                    // Cannot overflow: secs < 2^32 and frac < 2^32, so the sum stays below 2^63.
                    let ts_nanos = u64::from(raw.ts_sec) * NANOS_PER_SEC
                        + u64::from(raw.ts_frac) * resolution.nanos_per_unit();
                    let header = RecordHeader {
                        ts_nanos,
                        caplen: raw.incl_len,
                        orig_len: raw.orig_len,
                    };
                    let out = f(header, &raw.data);
                    self.input.consume(used);
                    return Ok(Some(out));
                }
                Err(PcapError::IncompleteBuffer) => {
                    if let Some(caplen) = self.claimed_caplen(unread)
                        && caplen > MAX_CAPLEN
                    {
                        return Err(self.too_long(caplen));
                    }
                    let had = unread.len();
                    if self.input.refill()? == 0 {
                        return if had == 0 {
                            Ok(None)
                        } else {
                            Err(self.input.truncated())
                        };
                    }
                }
                Err(e) => return Err(self.input.malformed(e)),
            }
        }
    }

    fn too_long(&self, caplen: u32) -> IoError {
        IoError::RecordTooLong {
            path: self.input.path.clone(),
            offset: self.input.offset,
            caplen,
        }
    }

    /// Reads the next packet into `buf` (or skips it when longer than `buf`); `None` at the end.
    pub fn read_into(&mut self, buf: &mut [u8]) -> Result<Option<Fetched>, IoError> {
        self.next_with(|header, data| Fetched::copy(header, data, buf))
    }

    /// Reads the next packet into a new buffer; `None` at the end. (Allocates: for tests and tools.)
    pub fn next_packet(&mut self) -> Result<Option<Packet>, IoError> {
        self.next_with(|header, data| Packet {
            header,
            data: data.to_vec(),
        })
    }
}

impl<R: Read> Iterator for PcapReader<R> {
    type Item = Result<Packet, IoError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_packet().transpose()
    }
}

/// The parts of a pcapng packet block the reader uses.
struct PacketBlock<'a> {
    /// Index of the interface description block it names.
    interface: u32,
    /// Timestamp in the interface's units.
    units: u64,
    /// Length on the wire.
    orig_len: u32,
    /// Captured bytes.
    data: &'a [u8],
    /// A simple packet block (no timestamp, no captured length).
    simple: bool,
}

/// Reads packets from a pcapng capture: enhanced, simple and (obsolete) packet blocks, of
/// Ethernet interfaces; every other block is skipped.
pub struct PcapNgReader<R> {
    input: Input<R>,
    parser: PcapNgParser,
    /// Set after the end or an error, so iteration stops for good.
    done: bool,
}

impl PcapNgReader<File> {
    /// Opens a pcapng file and reads its first section header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, IoError> {
        let path = path.as_ref();
        Self::new(open(path)?, path)
    }
}

/// Nanoseconds of `units` timestamp units of an interface (its `if_tsresol`: 10^-n s, or 2^-n s
/// when the top bit is set; saturating).
fn pcapng_nanos(units: u64, interface: &InterfaceDescriptionBlock<'_>) -> u64 {
    let tsresol = interface
        .options
        .iter()
        .find_map(|o| match o {
            InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
            _ => None,
        })
        .unwrap_or(PCAPNG_DEFAULT_TSRESOL);
    let exp = u32::from(tsresol & 0x7f);
    let nanos = if tsresol & 0x80 != 0 {
        (u128::from(units) * u128::from(NANOS_PER_SEC)) >> exp.min(127)
    } else if exp <= 9 {
        u128::from(units) * 10u128.pow(9 - exp)
    } else {
        10u128
            .checked_pow(exp - 9)
            .map_or(0, |d| u128::from(units) / d)
    };
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

impl<R: Read> PcapNgReader<R> {
    /// Reads the first section header from `r`; `path` names the source in errors.
    pub fn new(r: R, path: impl Into<PathBuf>) -> Result<Self, IoError> {
        Self::from_input(Input::new(r, path.into()))
    }

    fn from_input(mut input: Input<R>) -> Result<Self, IoError> {
        loop {
            let unread = input.unread();
            match PcapNgParser::new(unread) {
                Ok((rest, parser)) => {
                    let used = unread.len() - rest.len();
                    input.consume(used);
                    return Ok(Self {
                        input,
                        parser,
                        done: false,
                    });
                }
                Err(PcapError::IncompleteBuffer) if input.full() => {
                    return Err(input.malformed(TOO_LONG));
                }
                Err(PcapError::IncompleteBuffer) => {
                    if input.refill()? == 0 {
                        return Err(input.truncated());
                    }
                }
                Err(e) => return Err(input.malformed(e)),
            }
        }
    }

    /// The file this reader reads (as named in errors).
    pub fn path(&self) -> &Path {
        &self.input.path
    }

    /// True once the end of the capture or an error was reached.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Parses blocks up to the next packet and hands its header and bytes to `f`; `None` at a
    /// clean end.
    fn next_with<T>(
        &mut self,
        f: impl FnOnce(RecordHeader, &[u8]) -> T,
    ) -> Result<Option<T>, IoError> {
        let result = self.next_inner(f);
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result
    }

    fn next_inner<T>(
        &mut self,
        f: impl FnOnce(RecordHeader, &[u8]) -> T,
    ) -> Result<Option<T>, IoError> {
        if self.done {
            return Ok(None);
        }
        let mut f = Some(f);
        loop {
            let unread = self.input.unread();
            match self.parser.next_block(unread) {
                Ok((rest, block)) => {
                    let used = unread.len() - rest.len();
                    let packet = match &block {
                        Block::EnhancedPacket(b) => Some(PacketBlock {
                            interface: b.interface_id,
                            units: u64::try_from(b.timestamp.as_nanos()).unwrap_or(u64::MAX),
                            orig_len: b.original_len,
                            data: &b.data,
                            simple: false,
                        }),
                        Block::Packet(b) => Some(PacketBlock {
                            interface: u32::from(b.interface_id),
                            units: b.timestamp,
                            orig_len: b.original_len,
                            data: &b.data,
                            simple: false,
                        }),
                        Block::SimplePacket(b) => Some(PacketBlock {
                            interface: 0,
                            units: 0,
                            orig_len: b.original_len,
                            data: &b.data,
                            simple: true,
                        }),
                        _ => None,
                    };
                    if let Some(packet) = packet {
                        let out = self.packet(packet, &mut f)?;
                        self.input.consume(used);
                        return Ok(Some(out));
                    }
                    self.input.consume(used);
                }
                Err(PcapError::IncompleteBuffer) => {
                    // pcap-file also says "more bytes" about some fields inside a complete
                    // block: when the block's framing is whole, the block is malformed.
                    let whole = match self.parser.section().endianness {
                        pcap_file::Endianness::Big => {
                            RawBlock::from_slice::<byteorder::BigEndian>(unread).is_ok()
                        }
                        pcap_file::Endianness::Little => {
                            RawBlock::from_slice::<byteorder::LittleEndian>(unread).is_ok()
                        }
                    };
                    if whole {
                        return Err(self
                            .input
                            .malformed("a field runs past the end of its block"));
                    }
                    if self.input.full() {
                        return Err(self.input.malformed(TOO_LONG));
                    }
                    let had = unread.len();
                    if self.input.refill()? == 0 {
                        return if had == 0 {
                            Ok(None)
                        } else {
                            Err(self.input.truncated())
                        };
                    }
                }
                Err(e) => return Err(self.input.malformed(e)),
            }
        }
    }

    /// Checks a packet block against the interface it names and hands it to `f`.
    fn packet<T>(
        &self,
        p: PacketBlock<'_>,
        f: &mut Option<impl FnOnce(RecordHeader, &[u8]) -> T>,
    ) -> Result<T, IoError> {
        let PacketBlock {
            interface,
            units,
            orig_len,
            mut data,
            simple,
        } = p;
        let Some(idb) = self.parser.interfaces().get(interface as usize) else {
            return Err(self
                .input
                .malformed(PcapError::InvalidInterfaceId(interface)));
        };
        if simple {
            // A simple packet block stores no captured length: it is the original length cut to
            // the interface's snaplen, and pcap-file hands over the block's padding with it.
            let snaplen = if idb.snaplen == 0 {
                u32::MAX
            } else {
                idb.snaplen
            };
            let caplen = usize::try_from(orig_len.min(snaplen)).unwrap_or(usize::MAX);
            data = &data[..caplen.min(data.len())];
        }
        let linktype = u32::from(idb.linktype);
        if linktype != LINKTYPE_ETHERNET {
            return Err(IoError::UnsupportedLinkType {
                path: self.input.path.clone(),
                linktype,
            });
        }
        // pcap-file checks the block holds the captured bytes; this layer's bound still holds.
        let caplen = u32::try_from(data.len()).unwrap_or(u32::MAX);
        if caplen > MAX_CAPLEN {
            return Err(IoError::RecordTooLong {
                path: self.input.path.clone(),
                offset: self.input.offset,
                caplen,
            });
        }
        let header = RecordHeader {
            ts_nanos: pcapng_nanos(units, idb),
            caplen,
            orig_len,
        };
        // Called once per `next_inner`, right before it returns.
        let f = f.take().expect("one packet per call");
        Ok(f(header, data))
    }

    /// Reads the next packet into `buf` (or skips it when longer than `buf`); `None` at the end.
    pub fn read_into(&mut self, buf: &mut [u8]) -> Result<Option<Fetched>, IoError> {
        self.next_with(|header, data| Fetched::copy(header, data, buf))
    }

    /// Reads the next packet into a new buffer; `None` at the end. (Allocates: for tests and tools.)
    pub fn next_packet(&mut self) -> Result<Option<Packet>, IoError> {
        self.next_with(|header, data| Packet {
            header,
            data: data.to_vec(),
        })
    }
}

impl<R: Read> Iterator for PcapNgReader<R> {
    type Item = Result<Packet, IoError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_packet().transpose()
    }
}

/// A capture in either format, told apart by its first bytes.
pub enum CaptureReader<R> {
    /// A classic pcap file.
    Pcap(PcapReader<R>),
    /// A pcapng file.
    PcapNg(PcapNgReader<R>),
}

impl CaptureReader<File> {
    /// Opens a capture file of either format and reads its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, IoError> {
        let path = path.as_ref();
        Self::new(open(path)?, path)
    }
}

impl<R: Read> CaptureReader<R> {
    /// Reads the header of a capture of either format from `r`; `path` names it in errors.
    pub fn new(r: R, path: impl Into<PathBuf>) -> Result<Self, IoError> {
        let mut input = Input::new(r, path.into());
        input.fill_to(PCAPNG_MAGIC.len())?;
        if input.unread().starts_with(&PCAPNG_MAGIC) {
            PcapNgReader::from_input(input).map(Self::PcapNg)
        } else {
            PcapReader::from_input(input).map(Self::Pcap)
        }
    }

    /// True once the end of the capture or an error was reached.
    pub fn is_done(&self) -> bool {
        match self {
            Self::Pcap(r) => r.is_done(),
            Self::PcapNg(r) => r.is_done(),
        }
    }

    /// Reads the next packet into `buf` (or skips it when longer than `buf`); `None` at the end.
    pub fn read_into(&mut self, buf: &mut [u8]) -> Result<Option<Fetched>, IoError> {
        match self {
            Self::Pcap(r) => r.read_into(buf),
            Self::PcapNg(r) => r.read_into(buf),
        }
    }
}

impl<R: Read> Iterator for CaptureReader<R> {
    type Item = Result<Packet, IoError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Pcap(r) => r.next(),
            Self::PcapNg(r) => r.next(),
        }
    }
}

impl<R> From<PcapReader<R>> for CaptureReader<R> {
    fn from(r: PcapReader<R>) -> Self {
        Self::Pcap(r)
    }
}

impl<R> From<PcapNgReader<R>> for CaptureReader<R> {
    fn from(r: PcapNgReader<R>) -> Self {
        Self::PcapNg(r)
    }
}

/// Writes packets to a classic pcap capture (link type Ethernet, snaplen [`MAX_CAPLEN`]).
pub struct PcapWriter<W: Write> {
    w: W,
    path: PathBuf,
    resolution: Resolution,
    endian: Endian,
}

impl PcapWriter<BufWriter<File>> {
    /// Creates (or truncates) a capture file with microsecond little-endian timestamps.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, IoError> {
        Self::create_with(path, Resolution::Micro, Endian::Little)
    }

    /// Creates (or truncates) a capture file with the given resolution and byte order.
    pub fn create_with(
        path: impl AsRef<Path>,
        resolution: Resolution,
        endian: Endian,
    ) -> Result<Self, IoError> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|source| IoError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::new(BufWriter::new(file), path, resolution, endian)
    }
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header to `w`; `path` names the destination in errors.
    pub fn new(
        w: W,
        path: impl Into<PathBuf>,
        resolution: Resolution,
        endian: Endian,
    ) -> Result<Self, IoError> {
        let mut me = Self {
            w,
            path: path.into(),
            resolution,
            endian,
        };
        // thiszone and sigfigs stay 0, as every modern writer leaves them.
        let header = pcap_file::pcap::PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen: MAX_CAPLEN,
            datalink: pcap_file::DataLink::ETHERNET,
            ts_resolution: match resolution {
                Resolution::Micro => pcap_file::TsResolution::MicroSecond,
                Resolution::Nano => pcap_file::TsResolution::NanoSecond,
            },
            endianness: match endian {
                Endian::Little => pcap_file::Endianness::Little,
                Endian::Big => pcap_file::Endianness::Big,
            },
        };
        let written = header.write_to(&mut me.w);
        me.written(written)?;
        Ok(me)
    }

    /// The file this writer writes (as named in errors).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Maps what pcap-file says about a write to this layer's error.
    fn written(&self, result: pcap_file::PcapResult<usize>) -> Result<(), IoError> {
        result.map(drop).map_err(|e| IoError::Write {
            path: self.path.clone(),
            source: match e {
                pcap_file::PcapError::IoError(source) => source,
                // Headers and raw records only fail in the writer underneath.
                other => io::Error::other(other.to_string()),
            },
        })
    }

    /// Appends one packet captured at `ts_nanos` (since the Unix epoch). A packet longer than
    /// [`MAX_CAPLEN`] is stored cut to that length with its full original length, as libpcap does.
    pub fn write_packet(&mut self, ts_nanos: u64, data: &[u8]) -> Result<(), IoError> {
        let orig_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let caplen = orig_len.min(MAX_CAPLEN);
        let secs = u32::try_from(ts_nanos / NANOS_PER_SEC).unwrap_or(u32::MAX);
        // Below 10^9, so it fits.
        let frac = ((ts_nanos % NANOS_PER_SEC) / self.resolution.nanos_per_unit()) as u32;
        // Raw, not `PcapPacket`: the seconds saturate instead of refusing the packet.
        let record = pcap_file::pcap::RawPcapPacket {
            ts_sec: secs,
            ts_frac: frac,
            incl_len: caplen,
            orig_len,
            data: std::borrow::Cow::Borrowed(&data[..caplen as usize]),
        };
        let written = match self.endian {
            Endian::Little => record.write_to::<_, byteorder::LittleEndian>(&mut self.w),
            Endian::Big => record.write_to::<_, byteorder::BigEndian>(&mut self.w),
        };
        self.written(written)
    }

    /// Flushes buffered records to the destination.
    pub fn flush(&mut self) -> Result<(), IoError> {
        self.w.flush().map_err(|source| IoError::Write {
            path: self.path.clone(),
            source,
        })
    }

    /// Flushes and returns the destination.
    pub fn into_inner(mut self) -> Result<W, IoError> {
        self.flush()?;
        Ok(self.w)
    }
}

/// Where [`PcapPort`] takes the timestamps of transmitted packets from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxClock {
    /// The n-th transmitted packet (from 0) is stamped n microseconds after the epoch, so output
    /// captures are byte-for-byte reproducible (golden files).
    #[default]
    Sequence,
    /// Wall-clock time, read once per `tx_burst`.
    Wall,
}

/// A port that receives the packets of a capture (pcap or pcapng) once each, then nothing, and appends what it
/// transmits to another capture. Either side may be absent: without a reader `rx_burst` returns
/// nothing; without a writer `tx_burst` refuses everything.
///
/// `rx_burst` and `tx_burst` cannot return errors, so the first I/O error is kept for
/// [`PcapPort::take_error`] / [`PcapPort::finish`]; after a read error the port receives nothing
/// more, after a write error it refuses every frame (a half-written record would corrupt the file).
pub struct PcapPort<R = File, W: Write = BufWriter<File>> {
    pool: FramePool,
    rx: Option<CaptureReader<R>>,
    tx: Option<PcapWriter<W>>,
    clock: TxClock,
    tx_seq: u64,
    tx_failed: bool,
    error: Option<IoError>,
    rx_oversize: u64,
    stats: PortStats,
}

impl PcapPort {
    /// A port receiving from the capture at `rx` and/or writing to a new capture at `tx`.
    pub fn open(pool: FramePool, rx: Option<&Path>, tx: Option<&Path>) -> Result<Self, IoError> {
        let mut port = Self::new(pool);
        if let Some(path) = rx {
            port = port.with_rx(CaptureReader::open(path)?);
        }
        if let Some(path) = tx {
            port = port.with_tx(PcapWriter::create(path)?);
        }
        Ok(port)
    }
}

impl<R: Read, W: Write> PcapPort<R, W> {
    /// A port with neither side, drawing frames from `pool`.
    pub fn new(pool: FramePool) -> Self {
        Self {
            pool,
            rx: None,
            tx: None,
            clock: TxClock::default(),
            tx_seq: 0,
            tx_failed: false,
            error: None,
            rx_oversize: 0,
            stats: PortStats::default(),
        }
    }

    /// Receives from `reader` (a [`PcapReader`], [`PcapNgReader`] or [`CaptureReader`]).
    pub fn with_rx(mut self, reader: impl Into<CaptureReader<R>>) -> Self {
        self.rx = Some(reader.into());
        self
    }

    /// Transmits to `writer`.
    pub fn with_tx(mut self, writer: PcapWriter<W>) -> Self {
        self.tx = Some(writer);
        self
    }

    /// Stamps transmitted packets from `clock`.
    pub fn with_clock(mut self, clock: TxClock) -> Self {
        self.clock = clock;
        self
    }

    /// True once every packet of the rx capture was received (or reading failed, or no capture).
    pub fn rx_done(&self) -> bool {
        self.rx.as_ref().is_none_or(CaptureReader::is_done)
    }

    /// Packets of the rx capture skipped because they do not fit a frame.
    pub fn rx_oversize(&self) -> u64 {
        self.rx_oversize
    }

    /// The first I/O error since the last call, if any.
    pub fn take_error(&mut self) -> Option<IoError> {
        self.error.take()
    }

    /// The port's counters.
    pub fn stats(&self) -> PortStats {
        self.stats
    }

    fn keep_error(&mut self, e: IoError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// Flushes the output capture and returns its destination, or the first error the port met.
    pub fn finish(mut self) -> Result<Option<W>, IoError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.tx.take().map(PcapWriter::into_inner).transpose()
    }
}

impl<R: Read, W: Write> Port for PcapPort<R, W> {
    type Frame = MemFrame;

    fn rx_burst(&mut self, out: &mut Burst<MemFrame>) -> usize {
        let Some(reader) = self.rx.as_mut().filter(|r| !r.is_done()) else {
            return 0;
        };
        let mut failure = None;
        let mut bytes = 0u64;
        let mut oversize = 0u64;
        let (n, dry) = self.pool.fill_burst(out, usize::MAX, |frame| {
            loop {
                match reader.read_into(frame.payload_area()) {
                    Ok(Some(Fetched::Packet(h))) => {
                        let len = h.caplen as usize;
                        // The reader copied into a MAX_PACKET-byte area, so this holds.
                        debug_assert!(len <= MAX_PACKET);
                        frame.set_loaded_len(len);
                        bytes += len as u64;
                        return Some(());
                    }
                    Ok(Some(Fetched::Oversize(_))) => oversize += 1,
                    Ok(None) => return None,
                    Err(e) => {
                        failure = Some(e);
                        return None;
                    }
                }
            }
        });
        self.rx_oversize += oversize;
        self.stats.rx_packets += n as u64;
        self.stats.rx_bytes += bytes;
        self.stats.rx_no_buffer += u64::from(dry);
        if let Some(e) = failure {
            self.keep_error(e);
        }
        n
    }

    fn tx_burst(&mut self, frames: &mut Burst<MemFrame>) -> usize {
        let Some(writer) = self.tx.as_mut().filter(|_| !self.tx_failed) else {
            self.stats.tx_refused += frames.len() as u64;
            return 0;
        };
        let base = match self.clock {
            TxClock::Sequence => None,
            TxClock::Wall => Some(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            ),
        };
        let mut accepted = 0;
        let mut bytes = 0u64;
        let mut failure = None;
        for frame in frames.iter() {
            let ts = base.unwrap_or(self.tx_seq.saturating_mul(1_000));
            if let Err(e) = writer.write_packet(ts, frame.data()) {
                failure = Some(e);
                break;
            }
            self.tx_seq += 1;
            accepted += 1;
            bytes += frame.data().len() as u64;
        }
        self.pool.release_all(frames.drain(..accepted));
        self.stats.tx_packets += accepted as u64;
        self.stats.tx_bytes += bytes;
        self.stats.tx_refused += frames.len() as u64;
        if let Some(e) = failure {
            self.tx_failed = true;
            self.keep_error(e);
        }
        accepted
    }

    fn release(&mut self, frame: MemFrame) {
        self.pool.release(frame);
    }

    fn flush(&mut self) {
        if self.tx_failed {
            return;
        }
        if let Some(writer) = self.tx.as_mut()
            && let Err(e) = writer.flush()
        {
            self.tx_failed = true;
            self.keep_error(e);
        }
    }
}

#[cfg(test)]
mod tests;
