//! What counts as an input to the sum: an integer, as a visitor types it.

use std::fmt;

/// The longest input looked at; anything longer is invalid without parsing.
/// (The largest accepted number, `i64::MIN`, has 20 characters.)
pub const MAX_INPUT_CHARS: usize = 40;

/// Why an input is not a number the calculation can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidInput {
    /// Empty, or only spaces.
    Empty,
    /// Not an integer: letters, a decimal point, inner spaces, …
    NotAnInteger,
    /// An integer beyond what the guest takes (64-bit signed).
    OutOfRange,
    /// Longer than [`MAX_INPUT_CHARS`].
    TooLong,
}

impl InvalidInput {
    /// A short explanation for the visitor, beside "invalid input".
    pub fn detail(self) -> &'static str {
        match self {
            InvalidInput::Empty => "nothing was entered",
            InvalidInput::NotAnInteger => "not an integer",
            InvalidInput::OutOfRange => "beyond the 64-bit range the calculation takes",
            InvalidInput::TooLong => "too long to be a number the calculation takes",
        }
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid input ({})", self.detail())
    }
}

/// Reads `raw` as a 64-bit integer: optional sign, decimal digits.
/// Spaces around it are forgiven (phone keyboards add them); anything else
/// — `5.0`, `1e3`, `0x10`, `1 000` — is not an integer.
///
/// ```
/// use owl_system::math::{parse_input, InvalidInput};
///
/// assert_eq!(parse_input(" 5"), Ok(5));
/// assert_eq!(parse_input("-1"), Ok(-1));
/// assert_eq!(parse_input("5.0"), Err(InvalidInput::NotAnInteger));
/// assert_eq!(parse_input("99999999999999999999"), Err(InvalidInput::OutOfRange));
/// ```
pub fn parse_input(raw: &str) -> Result<i64, InvalidInput> {
    if raw.len() > MAX_INPUT_CHARS * 4 || raw.chars().count() > MAX_INPUT_CHARS {
        return Err(InvalidInput::TooLong);
    }
    let text = raw.trim();
    if text.is_empty() {
        return Err(InvalidInput::Empty);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidInput::NotAnInteger);
    }
    // Only digits and one sign are left, so the only possible failure is range.
    text.parse::<i64>().map_err(|_| InvalidInput::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_read_exactly_and_everything_else_is_named() {
        let cases: &[(&str, Result<i64, InvalidInput>)] = &[
            ("5", Ok(5)),
            ("+7", Ok(7)),
            ("  42\t", Ok(42)),
            ("0", Ok(0)),
            ("-1", Ok(-1)),
            ("9223372036854775807", Ok(i64::MAX)),
            ("-9223372036854775808", Ok(i64::MIN)),
            ("9223372036854775808", Err(InvalidInput::OutOfRange)),
            (
                "123456789012345678901234567890",
                Err(InvalidInput::OutOfRange),
            ),
            ("", Err(InvalidInput::Empty)),
            ("   ", Err(InvalidInput::Empty)),
            ("abc", Err(InvalidInput::NotAnInteger)),
            ("5.0", Err(InvalidInput::NotAnInteger)),
            ("1e3", Err(InvalidInput::NotAnInteger)),
            ("1 000", Err(InvalidInput::NotAnInteger)),
            ("-", Err(InvalidInput::NotAnInteger)),
            ("--5", Err(InvalidInput::NotAnInteger)),
            ("٣", Err(InvalidInput::NotAnInteger)),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_input(raw), *want, "input {raw:?}");
        }
        assert_eq!(parse_input(&"1".repeat(41)), Err(InvalidInput::TooLong));
        assert_eq!(
            parse_input(&"x".repeat(1 << 20)),
            Err(InvalidInput::TooLong)
        );
    }
}
