//! One control-socket request line through the request decoder the server uses; see
//! `ecmpfwd_fuzz::decoders` for the invariants asserted.
#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ecmpfwd_fuzz::decoders::check_request(data);
});
