//! Sizes as a person reads them, in decimal units as `docker system df` shows them.

/// `1500000` gives `1.5 MB`, `1500` gives `1.5 KB`, `15` gives `15 B`.
pub(crate) fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} KB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_size_gets_its_unit() {
        assert_eq!(super::human(2_000_000), "2.0 MB");
        assert_eq!(super::human(1_500), "1.5 KB");
        assert_eq!(super::human(15), "15 B");
    }
}
