//! The number inside a pid, on its own: a plain value that parses and
//! prints like an Erlang pid, and knows nothing of processes.

use std::fmt;
use std::str::FromStr;

/// The number inside a pid (`N` in `<0.N.0>`), without a handle to the process.
///
/// Parse one from user input (a console, a URL) and resolve it with
/// [`Node::lookup`](crate::Node::lookup). It prints as a pid, in `{}` and `{:?}` alike.
///
/// ```
/// use owl_runtime::PidId;
/// assert_eq!(format!("{:?}", PidId(5)), "<0.5.0>");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PidId(pub u64);

impl fmt::Debug for PidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for PidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<0.{}.0>", self.0)
    }
}

/// Why a string is not a pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsePidError(String);

impl fmt::Display for ParsePidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a pid: {:?} (expected <0.N.0> or N)", self.0)
    }
}
impl std::error::Error for ParsePidError {}

impl FromStr for PidId {
    type Err = ParsePidError;

    /// Accepts `<0.N.0>`, `0.N.0` and a bare `N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParsePidError(s.chars().take(64).collect());
        let trimmed = s.trim();
        let inner = trimmed
            .strip_prefix('<')
            .and_then(|t| t.strip_suffix('>'))
            .unwrap_or(trimmed);
        let number = match inner.split('.').collect::<Vec<_>>().as_slice() {
            ["0", n, "0"] => *n,
            [n] => *n,
            _ => return Err(err()),
        };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        number.parse().map(PidId).map_err(|_| err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_printed_forms() {
        assert_eq!("<0.42.0>".parse::<PidId>(), Ok(PidId(42)));
        assert_eq!("0.42.0".parse::<PidId>(), Ok(PidId(42)));
        assert_eq!(" 42 ".parse::<PidId>(), Ok(PidId(42)));
        assert_eq!(PidId(42).to_string(), "<0.42.0>");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "<>",
            "<0..0>",
            "<1.2.0>",
            "abc",
            "<0.-1.0>",
            "<0.1.2.0>",
            "99999999999999999999999",
        ] {
            assert!(bad.parse::<PidId>().is_err(), "{bad:?} parsed");
        }
    }
}
