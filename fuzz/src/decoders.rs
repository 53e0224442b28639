//! The text decoders facing the outside: the feed decoder (`feed_line` target), the control
//! socket's request decoder (`ctl_request`) and the config loader (`config`). Each takes bytes
//! as they arrive (a line without its newline, or a whole file), so invalid UTF-8 is an input
//! too: the servers and the loader reject it before decoding, and so do these checks.
//!
//! What every input must leave true, besides not panicking:
//! - feed: an error's excerpt of the offending value stays bounded (a hostile line must not
//!   bloat logs), and a decoded event survives a JSON round trip through the feed's own types;
//! - control request: a decoded request serializes and decodes back to itself (`ecmpctl` builds
//!   requests with the same types, so the two ends agree on every request either can express);
//! - config: an error names the origin label and a line inside the text, `file:line` leads its
//!   message, and its key (when it names one) is in the message too.

use ecmp_control::feed::{FeedError, decode_line};
use ecmp_proto::ctl::Request;
use ecmpfwd::config::{Config, ConfigError};

/// The origin label config errors must name.
pub const CONFIG_ORIGIN: &str = "fuzz.toml";

/// Longest value excerpt a feed error may carry: the decoder's bound (64 bytes) plus the
/// quoting `Debug` adds when the error is displayed is not counted here, only the kept bytes.
const FEED_EXCERPT: usize = 64;

/// Decodes one feed line and checks the outcome.
pub fn check_feed_line(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    match decode_line(line) {
        Ok(Some(event)) => {
            let json = match serde_json::to_string(&event) {
                Ok(j) => j,
                Err(e) => panic!("decoded feed event does not serialize: {e}: {event:?}"),
            };
            let back: ecmp_proto::FeedEvent = match serde_json::from_str(&json) {
                Ok(b) => b,
                Err(e) => panic!("feed event does not decode back: {e}: {json}"),
            };
            assert_eq!(back, event, "feed event changed in a round trip via {json}");
        }
        Ok(None) => {}
        Err(FeedError::Invalid { value, .. }) => {
            assert!(
                value.len() <= FEED_EXCERPT,
                "feed error excerpt of {} bytes",
                value.len()
            );
        }
        Err(FeedError::NotJson | FeedError::Field(_)) => {}
    }
}

/// Decodes one control-socket request line as the server does and checks the outcome.
pub fn check_request(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(request) = serde_json::from_str::<Request>(line) else {
        return;
    };
    let json = match serde_json::to_string(&request) {
        Ok(j) => j,
        Err(e) => panic!("decoded request does not serialize: {e}: {request:?}"),
    };
    match serde_json::from_str::<Request>(&json) {
        Ok(back) => assert_eq!(back, request, "request changed in a round trip via {json}"),
        Err(e) => panic!("request {request:?} serialized as {json} does not decode: {e}"),
    }
}

/// Loads one config text and checks where its error (if any) points.
pub fn check_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Err(err) = Config::parse(text, CONFIG_ORIGIN) else {
        return;
    };
    check_config_error(text, &err);
}

/// The location checks of [`check_config`] on one error of `text`.
pub fn check_config_error(text: &str, err: &ConfigError) {
    let Some(at) = err.location() else {
        panic!("an error parsing text has no location: {err}");
    };
    assert_eq!(at.origin, CONFIG_ORIGIN, "{err}");
    let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
    assert!(
        (1..=lines).contains(&at.line),
        "line {} outside the text's {lines} lines: {err}",
        at.line
    );
    let shown = err.to_string();
    let lead = format!("{CONFIG_ORIGIN}:{}", at.line);
    assert!(
        shown.starts_with(&lead),
        "{shown:?} does not start {lead:?}"
    );
    if !at.key.is_empty() {
        assert!(
            shown.contains(&at.key),
            "{shown:?} does not name {:?}",
            at.key
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds;

    fn run_seeds(target: &str, check: fn(&[u8])) -> usize {
        let seeds = seeds::seed_dir(target).expect("seed dir readable");
        assert!(!seeds.is_empty(), "no seeds for {target}");
        for (name, input) in &seeds {
            let caught = std::panic::catch_unwind(|| check(input));
            assert!(caught.is_ok(), "{target}/{name} fails its checks");
        }
        seeds.len()
    }

    #[test]
    fn feed_seeds_run_clean_and_cover_every_outcome() {
        run_seeds("feed_line", check_feed_line);
        let mut events = 0;
        let mut errors = 0;
        for (_, input) in seeds::seed_dir("feed_line").expect("feed seeds") {
            match decode_line(std::str::from_utf8(&input).unwrap_or("")) {
                Ok(Some(_)) => events += 1,
                Ok(None) => {}
                Err(_) => errors += 1,
            }
        }
        assert!(events >= 5, "only {events} seeds decode to events");
        assert!(errors >= 1, "no seed is rejected");
    }

    #[test]
    fn request_seeds_run_clean_and_decode() {
        run_seeds("ctl_request", check_request);
        for (name, input) in seeds::seed_dir("ctl_request").expect("request seeds") {
            if name.starts_with("bad__") || name.starts_with("cmin-") {
                continue;
            }
            let line = std::str::from_utf8(&input).expect("seed is UTF-8");
            assert!(
                serde_json::from_str::<Request>(line).is_ok(),
                "{name} does not decode"
            );
        }
    }

    #[test]
    fn config_seeds_run_clean_and_the_examples_load() {
        run_seeds("config", check_config);
        for (name, input) in seeds::seed_dir("config").expect("config seeds") {
            if name.starts_with("bad__") || name.starts_with("cmin-") {
                continue;
            }
            let text = std::str::from_utf8(&input).expect("seed is UTF-8");
            if let Err(e) = Config::parse(text, CONFIG_ORIGIN) {
                panic!("{name}: {e}");
            }
        }
    }

    #[test]
    fn config_errors_point_into_the_text() {
        let cases = [
            ("[instance\n", 1),
            ("[instance]\nname = \"x\"\nbogus = 1\n", 3),
            (
                "\n\n[[port]]\nname = \"p\"\nkind = \"memory\"\nmac = \"zz\"\n",
                6,
            ),
        ];
        for (text, line) in cases {
            let err = match Config::parse(text, CONFIG_ORIGIN) {
                Err(e) => e,
                Ok(_) => panic!("{text:?} loaded"),
            };
            check_config_error(text, &err);
            assert_eq!(err.line(), Some(line), "{err}");
        }
    }

    #[test]
    fn bad_utf8_and_bad_json_are_inputs_too() {
        for data in [&b"\xff\xfe"[..], b"", b"{", b"[[[[[[[[", b"done"] {
            check_feed_line(data);
            check_request(data);
            check_config(data);
        }
    }
}
