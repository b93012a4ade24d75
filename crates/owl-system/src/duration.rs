//! Durations as people type them: `30s`, `5m`, `2h`, `1500ms`, or plain
//! seconds — for flags, the console and the load test alike.

use std::time::Duration;

/// Reads `30s`, `5m`, `2h`, `1500ms` or plain seconds: longer than zero,
/// at most 30 days.
///
/// ```
/// use std::time::Duration;
/// use owl_system::duration::parse;
/// assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
/// assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
/// assert_eq!(parse("1500ms"), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse("2"), Ok(Duration::from_secs(2)));
/// for bad in ["", "0s", "-1s", "5x", "abc", "1e9h"] {
///     assert!(parse(bad).is_err(), "{bad:?}");
/// }
/// ```
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 30s, 5m, 1500ms)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text:?}: unit must be ms, s, m or h")),
    };
    if !(seconds > 0.0 && seconds <= 30.0 * 86_400.0) {
        return Err(format!(
            "{text:?}: must be longer than zero and at most 30 days"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}
