//! Sizes on the command line: `4096`, `4k`, `128K`, `1m`, `2G`.

/// Parses a byte count with an optional binary suffix (k, m, g).
pub fn parse(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, shift) = match t.chars().last().map(|c| c.to_ascii_lowercase()) {
        Some('k') => (&t[..t.len() - 1], 10),
        Some('m') => (&t[..t.len() - 1], 20),
        Some('g') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (like 4096, 4k, 1m)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_suffixes_and_refuses_junk() {
        assert_eq!(parse("512"), Ok(512));
        assert_eq!(parse("4k"), Ok(4096));
        assert_eq!(parse("128K"), Ok(128 << 10));
        assert_eq!(parse("2m"), Ok(2 << 20));
        assert_eq!(parse("1G"), Ok(1 << 30));
        assert!(parse("").is_err());
        assert!(parse("4x").is_err());
        assert!(parse("99999999999999999999g").is_err());
    }
}
