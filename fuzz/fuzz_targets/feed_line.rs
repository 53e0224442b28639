//! One feed line (ExaBGP JSON, without its newline) through the feed decoder; see
//! `ecmpfwd_fuzz::decoders` for the invariants asserted.
#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ecmpfwd_fuzz::decoders::check_feed_line(data);
});
