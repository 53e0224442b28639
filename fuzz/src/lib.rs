//! Fuzz harnesses of ecmpfwd, shared by the cargo-fuzz targets in `fuzz_targets/` and tested
//! by `cargo test` in this directory (which replays the seed corpora without libFuzzer).
//!
//! - [`wire_checks`]: the `parse_frame` target. No input panics the parser or any checked
//!   view, and an accepted frame's `PacketMeta` agrees with its bytes.
//! - [`harness`] with [`input`]: the `pipeline` target. Frames split from the input go through
//!   a real worker over memory ports; every frame is sent or dropped and counted, no frame leaks,
//!   and every sent frame has valid outer headers toward a configured next hop.
//! - [`decoders`]: the `feed_line`, `ctl_request` and `config` targets. The feed decoder, the
//!   control socket's request decoder and the config loader take any bytes without panicking;
//!   what they decode round-trips, and config errors point at a line of the text.
//! - [`seeds`]: the seed corpora under `fuzz/seeds/`, generated from the wire crate's regression
//!   corpus, a few valid frames, feed lines, requests and the example configs.
//!
//! A failed check panics: that is how a harness reports a finding to libFuzzer.
#![forbid(unsafe_code)]

pub mod decoders;
pub mod harness;
pub mod input;
pub mod seeds;
pub mod wire_checks;
