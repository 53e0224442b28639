//! The test kit of ecmpfwd: what tests, benches, the demo and the traffic generator share to make
//! and check traffic. It never depends on the forwarder's own crates, so what it builds is an
//! independent witness of what the forwarder parses and emits.

pub mod frames;
