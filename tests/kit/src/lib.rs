//! The test kit of ecmpfwd: what tests, benches, the demo and the traffic generator share to make
//! and check traffic, and to build and tear down labs.
//!
//! - [`frames`]: the one frame builder ([`frames::FrameSpec`]) for pktgen templates, golden inputs,
//!   the trace query and fuzz seeds, on etherparse: it never uses the forwarder's own wire crate,
//!   so what it builds is an independent witness of what the forwarder parses and emits.
//! - [`lab`]: a lab built by `scripts/lab` ([`lab::Lab`]), hand-made network namespaces
//!   ([`lab::Netns`]), and bounded commands inside a namespace (tests run as root).
//! - [`proc`]: a child process that is stopped by its PID when its guard drops ([`proc::Proc`]).
//! - [`promtool`]: `promtool check metrics` on an exposition text.
//!
//! It depends on no crate of the workspace, so any crate (ecmp-io included) can use it without a
//! cycle; every guard tears down what it built on a failed assertion too.

pub mod frames;
pub mod lab;
pub mod proc;
pub mod promtool;
