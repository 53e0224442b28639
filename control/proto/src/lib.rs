//! ecmpfwd control-socket messages.
