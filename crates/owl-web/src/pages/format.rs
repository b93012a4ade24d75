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

/// A Unix time in milliseconds as a civil UTC date and time:
/// `(year, month, day, second of the day, millisecond)`.
pub(crate) fn civil(unix_ms: i64) -> (i64, i64, i64, i64, i64) {
    let (secs, millis) = (unix_ms.div_euclid(1000), unix_ms.rem_euclid(1000));
    let (days, of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (proleptic Gregorian), by eras
    // of 400 years (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, of_day, millis)
}

/// A Unix time in milliseconds as `2026-12-02 16:31 UTC`: the same for
/// every visitor, whatever their locale (no 12/02 against 02/12).
pub(crate) fn utc_minute(unix_ms: i64) -> String {
    let (year, month, day, of_day, _) = civil(unix_ms);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        of_day / 3_600,
        (of_day % 3_600) / 60
    )
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
