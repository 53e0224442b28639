//! Unit tests of config loading. Shared here: a valid head every test appends to, and the
//! helpers that check an error's `file:line: key: message`; the tests themselves are in
//! `tests/`, one file per part of the schema.

mod announce;
mod dpdk;
mod groups;
mod ports;
mod sockets;
mod values;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use toml::de::DeTable;

use super::error::{Ctx, key_path};
use super::schema::gid_in_group_file;
use super::validate::parse_with_base;
use super::value::mask;
use super::*;

/// A valid head (16 lines): a memory port `m0` and an AF_XDP port `x0`, one worker.
const HEAD: &str = r#"[instance]
name = "t"

[[port]]
name = "m0"
kind = "memory"
mac = "02:00:00:00:00:01"

[[port]]
name = "x0"
kind = "afxdp"
interface = "veth-t0"

[[worker]]
core = 0
ports = ["m0", "x0"]
"#;

/// Next hops on both ports: `hm` (memory, with a MAC) and `hx` (AF_XDP, without).
const HOPS: &str = "[[nexthop]]\nname = \"hm\"\naddress = \"198.18.1.1\"\nport = \"m0\"\nmac = \"02:00:00:00:01:01\"\n[[nexthop]]\nname = \"hx\"\naddress = \"198.18.2.1\"\nport = \"x0\"\n";

/// [`HEAD`] and `tail` must load; relative paths resolve against `/etc/ecmpfwd`.
fn ok(tail: &str) -> Config {
    let text = format!("{HEAD}{tail}");
    match parse_with_base(&text, "t.toml", Some(Path::new("/etc/ecmpfwd"))) {
        Ok(c) => c,
        Err(e) => panic!("{e}\n{text}"),
    }
}

/// `tail` appended to [`HEAD`] must fail on the line ending in `#<`, at `key`, with a
/// message containing `message`.
#[track_caller]
fn fails(tail: &str, key: &str, message: &str) {
    fails_whole(&format!("{HEAD}{tail}"), key, message);
}

/// Like [`fails`], for a whole file.
#[track_caller]
fn fails_whole(text: &str, key: &str, message: &str) {
    let line = text
        .lines()
        .position(|l| l.ends_with("#<"))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no #< marker in:\n{text}"));
    let e = match Config::parse(text, "t.toml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    };
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("t.toml:{line}: {key}: ")) && shown.contains(message),
        "expected `t.toml:{line}: {key}: ...{message}...`, got `{shown}` for:\n{text}"
    );
    assert_eq!((e.line(), e.key()), (Some(line), Some(key)), "{shown}");
}

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

/// The error `tail` appended to [`HEAD`] gives, as (line, key, message after the key).
#[track_caller]
fn error_of(tail: &str) -> (usize, String, String) {
    let text = format!("{HEAD}{tail}");
    let e = match Config::parse(&text, "t.toml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    };
    let (line, key) = (e.line().unwrap_or(0), e.key().unwrap_or("").to_owned());
    let shown = e.to_string();
    let message = shown
        .strip_prefix(&format!("t.toml:{line}: {key}: "))
        .unwrap_or_else(|| panic!("not `file:line: key: message`: {shown}"))
        .to_owned();
    (line, key, message)
}
