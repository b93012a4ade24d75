//! What counts as an input to the sum: an integer, as a visitor types it,
//! of any size up to [`MAX_INPUT_DIGITS`] digits.

use std::fmt;

/// The most digits an input may have. The guest takes any number (its
/// memory cap bounds the cost); this bound keeps a page line readable and a
/// page of a hundred lines, each with its input and its twice-as-long sum,
/// well inside one live frame.
pub const MAX_INPUT_DIGITS: usize = 1_000;

/// The longest input looked at, in characters: the digits, a sign, and
/// the spaces a phone keyboard adds. Anything longer is invalid without
/// parsing.
pub const MAX_INPUT_CHARS: usize = MAX_INPUT_DIGITS + 8;

/// Why an input is not a number the calculation can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidInput {
    /// Empty, or only spaces.
    Empty,
    /// Not an integer: letters, a decimal point, inner spaces, …
    NotAnInteger,
    /// More than [`MAX_INPUT_DIGITS`] digits.
    TooLong,
}

impl InvalidInput {
    /// A short explanation for the visitor, beside "invalid input".
    pub fn detail(self) -> &'static str {
        match self {
            InvalidInput::Empty => "nothing was entered",
            InvalidInput::NotAnInteger => "not an integer",
            InvalidInput::TooLong => "more than 1,000 digits",
        }
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid input ({})", self.detail())
    }
}

/// An integer a visitor typed, read exactly, whatever its size.
///
/// ```
/// use owl_system::math::{parse_input, Input};
///
/// let big = parse_input("-000123456789012345678901234567890").unwrap();
/// assert_eq!(big.as_str(), "-123456789012345678901234567890");
/// assert_eq!(big.to_i64(), None);
/// assert_eq!(Input::from(-7).to_i64(), Some(-7));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// In decimal: `-` for a negative number, no `+`, no leading zeros.
    text: String,
    /// The number, when it fits 64 bits.
    small: Option<i64>,
}

impl Input {
    /// The integer in decimal: a minus sign for a negative one, no plus
    /// sign, no leading zeros (`0` for zero).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The integer, if it fits 64 bits (the guest's fast path, `sum(n)`;
    /// larger ones go to `sum_digits`).
    pub fn to_i64(&self) -> Option<i64> {
        self.small
    }
}

impl From<i64> for Input {
    fn from(n: i64) -> Input {
        Input {
            text: n.to_string(),
            small: Some(n),
        }
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Reads `raw` as an integer: optional sign, decimal digits, at most
/// [`MAX_INPUT_DIGITS`] of them. Spaces around it are forgiven (phone
/// keyboards add them); anything else — `5.0`, `1e3`, `0x10`, `1 000` —
/// is not an integer.
///
/// ```
/// use owl_system::math::{parse_input, InvalidInput};
///
/// assert_eq!(parse_input(" 5").unwrap().to_i64(), Some(5));
/// assert_eq!(parse_input("-1").unwrap().to_i64(), Some(-1));
/// assert_eq!(parse_input("99999999999999999999").unwrap().as_str(), "99999999999999999999");
/// assert_eq!(parse_input("5.0"), Err(InvalidInput::NotAnInteger));
/// ```
pub fn parse_input(raw: &str) -> Result<Input, InvalidInput> {
    if raw.len() > MAX_INPUT_CHARS * 4 || raw.chars().count() > MAX_INPUT_CHARS {
        return Err(InvalidInput::TooLong);
    }
    let text = raw.trim();
    if text.is_empty() {
        return Err(InvalidInput::Empty);
    }
    let negative = text.starts_with('-');
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidInput::NotAnInteger);
    }
    let digits = digits.trim_start_matches('0');
    if digits.len() > MAX_INPUT_DIGITS {
        return Err(InvalidInput::TooLong);
    }
    let text = match (negative, digits) {
        (_, "") => "0".to_string(),
        (true, digits) => format!("-{digits}"),
        (false, digits) => digits.to_string(),
    };
    let small = text.parse::<i64>().ok();
    Ok(Input { text, small })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An input as read: its decimal text and, if it fits, its `i64`.
    type Read = Result<(String, Option<i64>), InvalidInput>;

    fn read(raw: &str) -> Read {
        parse_input(raw).map(|input| (input.as_str().to_string(), input.to_i64()))
    }

    #[test]
    fn integers_of_any_size_are_read_exactly_and_everything_else_is_named() {
        let small = |n: i64| Ok((n.to_string(), Some(n)));
        let big = |text: &str| Ok((text.to_string(), None));
        let cases: &[(&str, Read)] = &[
            ("5", small(5)),
            ("+7", small(7)),
            ("  42\t", small(42)),
            ("0", small(0)),
            ("-0", small(0)),
            ("007", small(7)),
            ("-1", small(-1)),
            ("9223372036854775807", small(i64::MAX)),
            ("-9223372036854775808", small(i64::MIN)),
            ("9223372036854775808", big("9223372036854775808")),
            ("-9223372036854775809", big("-9223372036854775809")),
            (
                "000123456789012345678901234567890",
                big("123456789012345678901234567890"),
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
            assert_eq!(read(raw), *want, "input {raw:?}");
        }
        let longest = "9".repeat(MAX_INPUT_DIGITS);
        assert_eq!(read(&longest), big(&longest));
        assert_eq!(read(&format!("-{longest}")), big(&format!("-{longest}")));
        assert_eq!(
            read(&"1".repeat(MAX_INPUT_DIGITS + 1)),
            Err(InvalidInput::TooLong)
        );
        assert_eq!(read(&"x".repeat(1 << 20)), Err(InvalidInput::TooLong));
    }
}
