//! The hex text format of the fixture files (the same as `forwarder/wire/tests/corpus/`): lines
//! starting with `#` are comments, everything else is hex digits with whitespace ignored.

use std::fmt::Write as _;

/// Bytes per line written by [`encode`]: one Ethernet-header-and-a-bit per line reads well.
const BYTES_PER_LINE: usize = 16;

/// Why hex text did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// The digits do not pair up into bytes.
    #[error("odd number of hex digits ({0})")]
    OddDigits(usize),
    /// A character that is neither a hex digit, whitespace nor part of a comment line.
    #[error("line {line}: {ch:?} is not a hex digit")]
    NotHex {
        /// 1-based line of the character.
        line: usize,
        /// The character.
        ch: char,
    },
}

/// The bytes of hex `text` (comment lines skipped).
pub fn decode(text: &str) -> Result<Vec<u8>, HexError> {
    let mut nibbles = Vec::with_capacity(text.len());
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        for ch in line.chars().filter(|c| !c.is_whitespace()) {
            let v = ch
                .to_digit(16)
                .ok_or(HexError::NotHex { line: i + 1, ch })?;
            // A hex digit is below 16.
            nibbles.push(v as u8);
        }
    }
    if nibbles.len() % 2 != 0 {
        return Err(HexError::OddDigits(nibbles.len()));
    }
    Ok(nibbles.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}

/// `bytes` as hex text: one `# ` line per line of `comment`, then 16 space-separated bytes per line.
pub fn encode(comment: &str, bytes: &[u8]) -> String {
    let mut out = String::with_capacity(comment.len() + bytes.len() * 3 + 8);
    for line in comment.lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    for chunk in bytes.chunks(BYTES_PER_LINE) {
        let mut first = true;
        for b in chunk {
            if !first {
                out.push(' ');
            }
            first = false;
            // Writing to a String cannot fail.
            let _ = write!(out, "{b:02x}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_comments() {
        let bytes: Vec<u8> = (0..=255).collect();
        let text = encode("a frame\nsecond line", &bytes);
        assert!(text.starts_with("# a frame\n# second line\n00 01 02"));
        assert_eq!(text.lines().count(), 2 + 16);
        assert_eq!(decode(&text), Ok(bytes));
    }

    #[test]
    fn rejects_odd_and_non_hex() {
        assert_eq!(decode("0a b"), Err(HexError::OddDigits(3)));
        assert_eq!(
            decode("# c\n0a\nzz"),
            Err(HexError::NotHex { line: 3, ch: 'z' })
        );
        assert_eq!(decode("  # only a comment\n"), Ok(vec![]));
    }
}
