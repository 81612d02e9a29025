//! Kubernetes resource quantities: `128Mi`, `1Gi`, `500M`, `1e9`.

/// Bytes in a memory quantity, or `None` when it is not one.
pub fn parse_quantity(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(raw.len());
    let (number, suffix) = raw.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        exponent if exponent.starts_with(['e', 'E']) => 10f64.powi(exponent[1..].parse().ok()?),
        _ => return None,
    };
    let bytes = number * multiplier;
    (bytes.is_finite() && bytes >= 0.0).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_quantity;

    #[test]
    fn quantities_read_like_kubernetes() {
        assert_eq!(parse_quantity("128Mi"), Some(128 << 20));
        assert_eq!(parse_quantity("1Gi"), Some(1 << 30));
        assert_eq!(parse_quantity("500M"), Some(500_000_000));
        assert_eq!(parse_quantity("1.5Gi"), Some(3 << 29));
        assert_eq!(parse_quantity("1e6"), Some(1_000_000));
        assert_eq!(parse_quantity("4096"), Some(4096));
        assert_eq!(parse_quantity("lots"), None);
        assert_eq!(parse_quantity("12Qi"), None);
    }
}
