//! ecmpfwd control plane.
