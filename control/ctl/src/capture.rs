//! `ecmpctl capture`: asks the daemon for a capture stream and writes it as pcapng.
//!
//! The file is written here, with the caller's own permissions, never by the daemon (which runs
//! as root for clients that need not be): see the daemon's capture module. One interface
//! description block per daemon port (named after it, nanosecond timestamps), then one enhanced
//! packet block per frame; a dropped frame carries its drop reason as the packet's comment, a
//! sent or received one says which way it went the same way. Every block is flushed as it is
//! written, so a capture cut short (Ctrl-C) leaves a file Wireshark reads up to that frame.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ecmp_proto::ctl::{
    CaptureDir, CaptureEnd, CaptureLine, CaptureStarted, CapturedPacket, Reply, Request, hex_decode,
};
use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};

/// pcapng `if_tsresol`: timestamps in 10^-9 s, as the daemon stamps them.
const TS_NANOS: u8 = 9;

/// The daemon said no (exit status 1, like other refused commands).
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// A pcapng file being written.
pub struct CaptureFile<W: Write> {
    writer: PcapNgWriter<W>,
    ports: usize,
}

impl<W: Write> CaptureFile<W> {
    /// Starts the file: section header, then one interface per port of `started`.
    pub fn new(out: W, started: &CaptureStarted) -> Result<Self> {
        let mut writer = PcapNgWriter::new(out).context("writing the pcapng section header")?;
        for name in &started.ports {
            writer
                .write_pcapng_block(InterfaceDescriptionBlock {
                    linktype: DataLink::ETHERNET,
                    snaplen: started.snaplen,
                    options: vec![
                        InterfaceDescriptionOption::IfName(Cow::Borrowed(name)),
                        InterfaceDescriptionOption::IfTsResol(TS_NANOS),
                    ],
                })
                .context("writing an interface description")?;
        }
        writer.get_mut().flush()?;
        Ok(CaptureFile {
            writer,
            ports: started.ports.len(),
        })
    }

    /// Appends one frame.
    pub fn write(&mut self, p: &CapturedPacket) -> Result<()> {
        if usize::from(p.port) >= self.ports {
            bail!(
                "the daemon sent a frame of port {} of {}",
                p.port,
                self.ports
            );
        }
        let data = hex_decode(&p.data).context("the daemon sent a frame that is not hex")?;
        let comment = match (p.dir, &p.drop) {
            (CaptureDir::Drop, Some(reason)) => format!("drop: {reason}"),
            (CaptureDir::Drop, None) => "drop".to_owned(),
            (CaptureDir::Rx, _) => "rx".to_owned(),
            (CaptureDir::Tx, _) => "tx".to_owned(),
        };
        self.writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: u32::from(p.port),
                timestamp: Duration::from_nanos(p.ts_ns),
                original_len: p.len,
                data: Cow::Owned(data),
                options: vec![EnhancedPacketOption::Comment(Cow::Owned(comment))],
            })
            .context("writing a packet")?;
        self.writer.get_mut().flush()?;
        Ok(())
    }
}

/// Runs a capture over an open connection to the daemon: sends `req`, writes what comes back to
/// `path`; returns how it ended. Stops on the daemon's end line, or when it closes the stream.
pub fn run(stream: UnixStream, req: &Request, path: &Path) -> Result<CaptureEnd> {
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    (&stream).write_all(&line)?;
    let mut reader = BufReader::new(&stream);
    let mut text = String::new();
    reader.read_line(&mut text).context("no reply")?;
    if text.is_empty() {
        bail!("the daemon closed the connection");
    }
    let reply: Reply = serde_json::from_str(&text).context("the daemon's reply is not valid")?;
    if !reply.ok {
        return Err(Refused(
            reply
                .error
                .unwrap_or_else(|| "refused without a reason".to_owned()),
        )
        .into());
    }
    let started: CaptureStarted =
        serde_json::from_value(reply.result).context("the daemon's reply is not valid")?;
    // The stream may be quiet for as long as no frame matches.
    stream.set_read_timeout(None)?;
    let file = File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    let mut out = CaptureFile::new(BufWriter::new(file), &started)
        .with_context(|| path.display().to_string())?;
    let mut captured = 0u64;
    loop {
        text.clear();
        if reader.read_line(&mut text)? == 0 {
            bail!("the daemon closed the capture after {captured} packet(s) without an end line");
        }
        match serde_json::from_str(&text).context("the daemon sent an invalid capture line")? {
            CaptureLine::Packet(p) => {
                out.write(&p).with_context(|| path.display().to_string())?;
                captured += 1;
            }
            CaptureLine::End(end) => return Ok(end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::{Block, PcapNgReader};

    #[test]
    fn a_written_capture_reads_back_with_its_interfaces_times_and_comments() {
        let started = CaptureStarted {
            ports: vec!["up".to_owned(), "down".to_owned()],
            snaplen: 128,
        };
        let mut buf = Vec::new();
        {
            let mut f = CaptureFile::new(&mut buf, &started).unwrap();
            f.write(&CapturedPacket {
                port: 1,
                dir: CaptureDir::Drop,
                ts_ns: 1_700_000_000_123_456_789,
                len: 60,
                data: "0a0b0c".to_owned(),
                drop: Some("ttl_expired".to_owned()),
            })
            .unwrap();
            f.write(&CapturedPacket {
                port: 0,
                dir: CaptureDir::Rx,
                ts_ns: 5,
                len: 3,
                data: "ffee01".to_owned(),
                drop: None,
            })
            .unwrap();
            assert!(
                f.write(&CapturedPacket {
                    port: 2,
                    dir: CaptureDir::Rx,
                    ts_ns: 5,
                    len: 1,
                    data: "00".to_owned(),
                    drop: None,
                })
                .is_err(),
                "a port the daemon did not list"
            );
        }
        let mut r = PcapNgReader::new(&buf[..]).unwrap();
        let mut names = Vec::new();
        let mut packets = Vec::new();
        while let Some(b) = r.next_block() {
            match b.unwrap() {
                Block::InterfaceDescription(idb) => {
                    assert_eq!(idb.linktype, DataLink::ETHERNET);
                    for o in &idb.options {
                        if let InterfaceDescriptionOption::IfName(n) = o {
                            names.push(n.to_string());
                        }
                    }
                    assert!(
                        idb.options
                            .contains(&InterfaceDescriptionOption::IfTsResol(9))
                    );
                }
                Block::EnhancedPacket(epb) => packets.push((
                    epb.interface_id,
                    epb.timestamp,
                    epb.original_len,
                    epb.data.to_vec(),
                    epb.options
                        .clone()
                        .into_iter()
                        .map(|o| o.into_owned())
                        .collect::<Vec<_>>(),
                )),
                _ => {}
            }
        }
        assert_eq!(names, ["up", "down"]);
        assert_eq!(packets.len(), 2);
        assert_eq!(packets[0].0, 1);
        assert_eq!(
            packets[0].1,
            Duration::from_nanos(1_700_000_000_123_456_789)
        );
        assert_eq!(
            (packets[0].2, packets[0].3.as_slice()),
            (60, &[10u8, 11, 12][..])
        );
        assert_eq!(
            packets[0].4,
            [EnhancedPacketOption::Comment(Cow::Borrowed(
                "drop: ttl_expired"
            ))]
        );
        assert_eq!(packets[1].0, 0);
        assert_eq!(
            packets[1].4,
            [EnhancedPacketOption::Comment(Cow::Borrowed("rx"))]
        );
    }
}
