//! `parse_frame`, `parse_inner` and every checked wire view on arbitrary bytes; see
//! `ecmpfwd_fuzz::wire_checks` for the invariants asserted.
#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ecmpfwd_fuzz::wire_checks::check_frame(data);
});
