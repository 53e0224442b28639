//! The whole data path: the input is split into frames, hop-state events and clock steps (see
//! `ecmpfwd_fuzz::input`) and run through one worker; see `ecmpfwd_fuzz::harness` for the
//! invariants asserted.
#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ecmpfwd_fuzz::harness::run_one(data);
});
