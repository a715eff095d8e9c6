//! Numbers for people and from people: byte sizes written out (one formatter, binary units:
//! `399.4 KiB`, `2.8 GiB`, so every message about bytes reads the same way) and read back
//! (`"4 MiB"` in a recipe or `LITERT_WORKER_MEMORY`), and counts with digit grouping
//! (`1,234,567`).

/// `512 B`, `399.4 KiB`, `13.3 MiB`, `2.8 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `"4 MiB"` → 4194304. Decimal units are powers of 1000, binary ones of 1024.
pub fn parse_byte_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "kB" | "KB" => 1e3,
        "KiB" => 1024.0,
        "MB" => 1e6,
        "MiB" => 1024.0 * 1024.0,
        "GB" => 1e9,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = n * mult;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (bytes.is_finite() && (0.0..1.8e19).contains(&bytes)).then(|| bytes.round() as u64)
}

/// `1234567` as `1,234,567`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 tensor`, `2 tensors`, `1,024 tensors`: a grouped count and its noun (a regular plural).
pub fn count(n: u64, noun: &str) -> String {
    format!("{} {noun}{}", group(n), if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(409_032), "399.4 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(human_bytes(3_000_000_000), "2.8 GiB");
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("4 MiB"), Some(4 * 1024 * 1024));
        assert_eq!(parse_byte_size("500kB"), Some(500_000));
        assert_eq!(parse_byte_size("1.5 GB"), Some(1_500_000_000));
        assert_eq!(parse_byte_size("12 parsecs"), None);
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
    }
}
