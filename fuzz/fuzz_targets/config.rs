//! A whole config file through the daemon's config loader; see
//! `ecmpfwd_fuzz::decoders` for the invariants asserted.
#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ecmpfwd_fuzz::decoders::check_config(data);
});
