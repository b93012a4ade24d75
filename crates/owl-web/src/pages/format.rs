//! Figures as people read them.

/// Bytes in the largest fitting unit.
pub(crate) fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// `1234567` as `1,234,567`: figures read at a glance on a projector.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// A span of time in the largest units that keep it short: `850 µs`,
/// `26.6 ms`, `4.2 s`, `3 min 12 s`, `2 h 13 min`.
pub(crate) fn duration(d: std::time::Duration) -> String {
    let us = d.as_micros();
    let s = d.as_secs();
    match () {
        _ if us < 1_000 => format!("{us} µs"),
        _ if us < 1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        _ if s < 60 => format!("{:.1} s", d.as_secs_f64()),
        _ if s < 3_600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3_600, (s % 3_600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn figures_and_times_read_at_a_glance() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(duration(Duration::from_micros(850)), "850 µs");
        assert_eq!(duration(Duration::from_micros(26_633_304)), "26.6 s");
        assert_eq!(duration(Duration::from_millis(266)), "266.0 ms");
        assert_eq!(duration(Duration::from_secs(192)), "3 min 12 s");
        assert_eq!(
            duration(Duration::from_secs(2 * 3600 + 13 * 60 + 5)),
            "2 h 13 min"
        );
    }
}
