//! The test kit of ecmpfwd, a dev-dependency of the crates whose tests need a veth lab (run as
//! root) or spawn processes: one implementation of each guard, so that every lab test tears down
//! what it built the same way, on a failed assertion too.
//!
//! - [`lab`]: a lab built by `scripts/lab` ([`lab::Lab`]), hand-made network namespaces
//!   ([`lab::Netns`]), and bounded commands inside a namespace.
//! - [`proc`]: a child process that is stopped by its PID when its guard drops ([`proc::Proc`]).
//!
//! It depends on std alone, so that any crate (ecmp-io included) can use it without a cycle.

pub mod lab;
pub mod proc;
