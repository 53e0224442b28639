//! tcpdump filter expressions compiled to classic BPF by libpcap itself (`pcap_compile` on a
//! dead Ethernet handle), so `ecmpctl capture` accepts exactly what tcpdump does. The result is
//! plain instructions: the workers run them in their own safe interpreter
//! (`ecmp_dataplane::capture::Filter`), never libpcap.
//!
//! Compiling is for the control side only (it allocates and takes a lock). [`offline_filter`]
//! runs libpcap's own interpreter, the reference the data path's interpreter is tested against.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_uint};
use std::sync::Mutex;

use crate::IoError;

/// One classic BPF instruction, as libpcap lays it out (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    /// Opcode.
    pub code: u16,
    /// Jump offset when true.
    pub jt: u8,
    /// Jump offset when false.
    pub jf: u8,
    /// Constant operand.
    pub k: u32,
}

#[repr(C)]
struct BpfProgram {
    bf_len: c_uint,
    bf_insns: *mut BpfInsn,
}

#[repr(C)]
struct PcapPkthdr {
    ts: libc::timeval,
    caplen: u32,
    len: u32,
}

#[repr(C)]
struct PcapT {
    _opaque: [u8; 0],
}

const DLT_EN10MB: c_int = 1;
/// libpcap's `PCAP_NETMASK_UNKNOWN`: `ip broadcast` then fails to compile rather than guess.
const NETMASK_UNKNOWN: u32 = 0xffff_ffff;
/// The snapshot length the dead handle compiles for (libpcap's maximum).
const SNAPLEN: c_int = 262_144;

#[link(name = "pcap")]
unsafe extern "C" {
    fn pcap_open_dead(linktype: c_int, snaplen: c_int) -> *mut PcapT;
    fn pcap_close(p: *mut PcapT);
    fn pcap_compile(
        p: *mut PcapT,
        prog: *mut BpfProgram,
        s: *const c_char,
        optimize: c_int,
        netmask: u32,
    ) -> c_int;
    fn pcap_geterr(p: *mut PcapT) -> *mut c_char;
    fn pcap_freecode(prog: *mut BpfProgram);
    fn pcap_offline_filter(prog: *const BpfProgram, h: *const PcapPkthdr, pkt: *const u8) -> c_int;
}

/// libpcap before 1.8 kept the compiler's state in globals; one compile at a time is cheap
/// insurance on any version.
static COMPILE: Mutex<()> = Mutex::new(());

/// Compiles `filter` (tcpdump syntax) for Ethernet frames. A bad expression is
/// [`IoError::Filter`] naming it with libpcap's message.
pub fn compile(filter: &str) -> Result<Vec<BpfInsn>, IoError> {
    let bad = |message: String| IoError::Filter {
        filter: filter.to_owned(),
        message,
    };
    let text = CString::new(filter).map_err(|_| bad("contains a NUL byte".to_owned()))?;
    let _guard = COMPILE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // SAFETY: pcap_open_dead takes plain integers and returns an owned handle or null.
    let handle = unsafe { pcap_open_dead(DLT_EN10MB, SNAPLEN) };
    if handle.is_null() {
        return Err(bad("libpcap could not open a dead handle".to_owned()));
    }
    let mut prog = BpfProgram {
        bf_len: 0,
        bf_insns: std::ptr::null_mut(),
    };
    // SAFETY: `handle` is live (checked non-null above), `prog` is a valid out-parameter and
    // `text` a NUL-terminated string that outlives the call.
    let rc = unsafe { pcap_compile(handle, &mut prog, text.as_ptr(), 1, NETMASK_UNKNOWN) };
    let result = if rc != 0 {
        // SAFETY: after a failed compile pcap_geterr returns the handle's NUL-terminated error
        // buffer, valid until the handle is closed below; it is copied out before that.
        let message = unsafe { CStr::from_ptr(pcap_geterr(handle)) }
            .to_string_lossy()
            .into_owned();
        Err(bad(message))
    } else {
        let insns = if prog.bf_insns.is_null() {
            Vec::new()
        } else {
            // SAFETY: a successful compile leaves `bf_len` instructions at `bf_insns`, owned by
            // `prog` until pcap_freecode below; they are copied out first.
            unsafe { std::slice::from_raw_parts(prog.bf_insns, prog.bf_len as usize) }.to_vec()
        };
        // SAFETY: `prog` was filled by a successful pcap_compile and is freed once.
        unsafe { pcap_freecode(&mut prog) };
        Ok(insns)
    };
    // SAFETY: `handle` came from pcap_open_dead and is closed once; nothing refers to it after.
    unsafe { pcap_close(handle) };
    result
}

/// Runs `insns` over `frame` with libpcap's own interpreter (`pcap_offline_filter`), `frame`
/// being the whole frame (captured length = length on the wire); returns its verdict (0: reject).
/// For tests against the data path's interpreter.
pub fn offline_filter(insns: &[BpfInsn], frame: &[u8]) -> u32 {
    let mut copy = insns.to_vec();
    let prog = BpfProgram {
        bf_len: copy.len() as c_uint,
        bf_insns: copy.as_mut_ptr(),
    };
    let header = PcapPkthdr {
        ts: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        caplen: frame.len() as u32,
        len: frame.len() as u32,
    };
    // SAFETY: `prog` points at `copy`'s `bf_len` instructions, alive for the call; `header`
    // says `caplen` bytes, exactly `frame`'s length, are readable at `frame.as_ptr()`. libpcap's
    // interpreter bounds-checks every load against `caplen`. It only reads the program.
    unsafe { pcap_offline_filter(&prog, &header, frame.as_ptr()) as u32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expression_compiles_to_what_tcpdump_dumps() {
        // `tcpdump -d ip`: ldh [12]; jeq #0x800; ret #262144; ret #0.
        let insns = compile("ip").unwrap();
        assert_eq!(
            insns,
            [
                BpfInsn {
                    code: 0x28,
                    jt: 0,
                    jf: 0,
                    k: 12
                },
                BpfInsn {
                    code: 0x15,
                    jt: 0,
                    jf: 1,
                    k: 0x800
                },
                BpfInsn {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: 262_144
                },
                BpfInsn {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: 0
                },
            ]
        );
        let mut frame = [0u8; 60];
        frame[12] = 0x08;
        assert_ne!(offline_filter(&insns, &frame), 0);
        frame[13] = 0x06;
        assert_eq!(offline_filter(&insns, &frame), 0);
    }

    #[test]
    fn a_bad_expression_names_itself_and_libpcaps_complaint() {
        let e = compile("udp port banana").unwrap_err();
        let IoError::Filter { filter, message } = &e else {
            panic!("{e:?}");
        };
        assert_eq!(filter, "udp port banana");
        assert!(!message.is_empty());
        assert!(e.to_string().contains("udp port banana"), "{e}");
        assert!(matches!(compile("a\0b"), Err(IoError::Filter { .. })));
    }
}
