//! Classic libpcap capture files (not pcapng) and a port that reads and writes them.
//!
//! Format: a 24-byte file header (magic, version 2.x, zone, sigfigs, snaplen, link type) then
//! records of a 16-byte header (seconds, sub-second, captured length, original length) and the
//! captured bytes. The magic gives both the byte order and the timestamp resolution:
//! `a1b2c3d4` microseconds, `a1b23c4d` nanoseconds, each either way round.
//!
//! Invariants:
//! - Nothing in the file is trusted: a captured length above [`MAX_CAPLEN`] is an error before any
//!   buffer is sized by it, and a file that ends inside a header or a packet is an error naming the
//!   offset, while a file ending exactly at a record boundary is a clean end.
//! - Only Ethernet captures ([`LINKTYPE_ETHERNET`]) are accepted: the pipeline parses from the
//!   Ethernet header.
//! - Every error names the file it concerns.
//! - [`PcapPort`] does no allocation after it is built: the reader reads straight into pool frames
//!   and the writer writes from them, both through fixed buffers.
//!
//! The writer encodes through the `pcap-file` crate (its header and raw record encoders). The
//! reader still parses by hand: pcap-file's reader reads each record into a buffer of its own and
//! its errors carry no file offset, while this one reads straight into pool frames and names the
//! byte where a file is cut.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ecmp_port::{Burst, Frame, Port};

use crate::IoError;
use ecmp_port::PortStats;
use ecmp_port::memory::{FramePool, MAX_PACKET, MemFrame};

/// The link type of Ethernet captures.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// The largest captured length accepted or written (libpcap's `MAXIMUM_SNAPLEN`).
pub const MAX_CAPLEN: u32 = 262_144;

const MAGIC_MICRO: u32 = 0xa1b2_c3d4;
const MAGIC_NANO: u32 = 0xa1b2_3c4d;
const FILE_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;
const NANOS_PER_SEC: u64 = 1_000_000_000;

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

impl Endian {
    fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            Self::Little => u16::from_le_bytes(b),
            Self::Big => u16::from_be_bytes(b),
        }
    }

    fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            Self::Little => u32::from_le_bytes(b),
            Self::Big => u32::from_be_bytes(b),
        }
    }
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

/// Reads packets from a classic pcap capture.
pub struct PcapReader<R> {
    r: R,
    path: PathBuf,
    header: FileHeader,
    /// Offset of the next record header, for error messages.
    offset: u64,
    /// Set after the end or an error, so iteration stops for good.
    done: bool,
}

impl PcapReader<BufReader<File>> {
    /// Opens a capture file and reads its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, IoError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| IoError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::new(BufReader::new(file), path)
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> PcapReader<R> {
    /// Reads the file header from `r`; `path` names the source in errors.
    pub fn new(mut r: R, path: impl Into<PathBuf>) -> Result<Self, IoError> {
        let path = path.into();
        let mut h = [0u8; FILE_HEADER_LEN];
        let n = read_full(&mut r, &mut h).map_err(|source| IoError::Read {
            path: path.clone(),
            offset: 0,
            source,
        })?;
        if n < 4 {
            return Err(IoError::Truncated { path, offset: 0 });
        }
        let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let (resolution, endian) = match magic {
            MAGIC_MICRO => (Resolution::Micro, Endian::Little),
            MAGIC_NANO => (Resolution::Nano, Endian::Little),
            m if m.swap_bytes() == MAGIC_MICRO => (Resolution::Micro, Endian::Big),
            m if m.swap_bytes() == MAGIC_NANO => (Resolution::Nano, Endian::Big),
            magic => return Err(IoError::BadMagic { path, magic }),
        };
        if n < FILE_HEADER_LEN {
            return Err(IoError::Truncated { path, offset: 0 });
        }
        let version_major = endian.u16([h[4], h[5]]);
        let version_minor = endian.u16([h[6], h[7]]);
        if version_major != 2 {
            return Err(IoError::UnsupportedVersion {
                path,
                major: version_major,
                minor: version_minor,
            });
        }
        let snaplen = endian.u32([h[16], h[17], h[18], h[19]]);
        // The high bits carry FCS information, not the link type.
        let linktype = endian.u32([h[20], h[21], h[22], h[23]]) & 0xffff;
        if linktype != LINKTYPE_ETHERNET {
            return Err(IoError::UnsupportedLinkType { path, linktype });
        }
        Ok(Self {
            r,
            path,
            header: FileHeader {
                resolution,
                endian,
                version_major,
                version_minor,
                snaplen,
                linktype,
            },
            offset: FILE_HEADER_LEN as u64,
            done: false,
        })
    }

    /// The capture's file header.
    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// The file this reader reads (as named in errors).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True once the end of the capture or an error was reached.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn read_error(&mut self, source: io::Error) -> IoError {
        self.done = true;
        IoError::Read {
            path: self.path.clone(),
            offset: self.offset,
            source,
        }
    }

    fn truncated(&mut self) -> IoError {
        self.done = true;
        IoError::Truncated {
            path: self.path.clone(),
            offset: self.offset,
        }
    }

    /// Reads the next record header; `None` at a clean end of file.
    fn next_header(&mut self) -> Result<Option<RecordHeader>, IoError> {
        if self.done {
            return Ok(None);
        }
        let mut h = [0u8; RECORD_HEADER_LEN];
        let n = read_full(&mut self.r, &mut h).map_err(|e| self.read_error(e))?;
        if n == 0 {
            self.done = true;
            return Ok(None);
        }
        if n < RECORD_HEADER_LEN {
            return Err(self.truncated());
        }
        let e = self.header.endian;
        let secs = e.u32([h[0], h[1], h[2], h[3]]);
        let frac = e.u32([h[4], h[5], h[6], h[7]]);
        let caplen = e.u32([h[8], h[9], h[10], h[11]]);
        let orig_len = e.u32([h[12], h[13], h[14], h[15]]);
        if caplen > MAX_CAPLEN {
            self.done = true;
            return Err(IoError::RecordTooLong {
                path: self.path.clone(),
                offset: self.offset,
                caplen,
            });
        }
        // Cannot overflow: secs < 2^32 and frac < 2^32, so the sum stays below 2^63.
        let ts_nanos = u64::from(secs) * NANOS_PER_SEC
            + u64::from(frac) * self.header.resolution.nanos_per_unit();
        Ok(Some(RecordHeader {
            ts_nanos,
            caplen,
            orig_len,
        }))
    }

    /// Reads the next packet into `buf` (or skips it when longer than `buf`); `None` at the end.
    pub fn read_into(&mut self, buf: &mut [u8]) -> Result<Option<Fetched>, IoError> {
        let Some(header) = self.next_header()? else {
            return Ok(None);
        };
        // caplen <= MAX_CAPLEN, so the conversion is lossless on any host with 32-bit usize.
        let caplen = header.caplen as usize;
        let fetched = if let Some(dst) = buf.get_mut(..caplen) {
            let n = read_full(&mut self.r, dst).map_err(|e| self.read_error(e))?;
            if n < caplen {
                return Err(self.truncated());
            }
            Fetched::Packet(header)
        } else {
            let want = u64::from(header.caplen);
            let skipped = io::copy(&mut (&mut self.r).take(want), &mut io::sink())
                .map_err(|e| self.read_error(e))?;
            if skipped < want {
                return Err(self.truncated());
            }
            Fetched::Oversize(header)
        };
        self.offset += (RECORD_HEADER_LEN + caplen) as u64;
        Ok(Some(fetched))
    }

    /// Reads the next packet into a new buffer; `None` at the end. (Allocates: for tests and tools.)
    pub fn next_packet(&mut self) -> Result<Option<Packet>, IoError> {
        let Some(header) = self.next_header()? else {
            return Ok(None);
        };
        let mut data = vec![0u8; header.caplen as usize];
        let n = read_full(&mut self.r, &mut data).map_err(|e| self.read_error(e))?;
        if n < data.len() {
            return Err(self.truncated());
        }
        self.offset += (RECORD_HEADER_LEN + data.len()) as u64;
        Ok(Some(Packet { header, data }))
    }
}

impl<R: Read> Iterator for PcapReader<R> {
    type Item = Result<Packet, IoError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_packet().transpose()
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

/// A port that receives the packets of a capture once each, then nothing, and appends what it
/// transmits to another capture. Either side may be absent: without a reader `rx_burst` returns
/// nothing; without a writer `tx_burst` refuses everything.
///
/// `rx_burst` and `tx_burst` cannot return errors, so the first I/O error is kept for
/// [`PcapPort::take_error`] / [`PcapPort::finish`]; after a read error the port receives nothing
/// more, after a write error it refuses every frame (a half-written record would corrupt the file).
pub struct PcapPort<R = BufReader<File>, W: Write = BufWriter<File>> {
    pool: FramePool,
    rx: Option<PcapReader<R>>,
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
            port = port.with_rx(PcapReader::open(path)?);
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

    /// Receives from `reader`.
    pub fn with_rx(mut self, reader: PcapReader<R>) -> Self {
        self.rx = Some(reader);
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
        self.rx.as_ref().is_none_or(PcapReader::is_done)
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
