//! What a post must be: a text and an author, both non-empty after
//! trimming, the text at most 2,000 characters (newlines kept), the author
//! at most 80, neither with control characters beyond line breaks and tabs.

use std::fmt;

/// The longest text a post may have, in characters.
pub const MAX_TEXT_CHARS: usize = 2_000;
/// The longest author name, in characters.
pub const MAX_AUTHOR_CHARS: usize = 80;

/// A post that passed the rules, trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    /// The text (trimmed, newlines as `\n`).
    pub text: String,
    /// The author (trimmed).
    pub author: String,
}

/// What is wrong with a post, per field (`None`: that field is fine).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors {
    /// The text's problem.
    pub text: Option<&'static str>,
    /// The author's problem.
    pub author: Option<&'static str>,
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [("text", self.text), ("author", self.author)]
            .into_iter()
            .filter_map(|(field, e)| e.map(|e| format!("{field}: {e}")))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

fn check(value: &str, max: usize, multiline: bool) -> Result<String, &'static str> {
    let normalized = value.replace("\r\n", "\n");
    let trimmed = normalized.trim();
    if trimmed.is_empty() {
        return Err("must not be empty");
    }
    if trimmed.chars().count() > max {
        return Err(if multiline {
            "is longer than 2,000 characters"
        } else {
            "is longer than 80 characters"
        });
    }
    let allowed = |c: char| !c.is_control() || (multiline && (c == '\n' || c == '\t'));
    if !trimmed.chars().all(allowed) {
        return Err("contains control characters");
    }
    Ok(trimmed.to_string())
}

impl Draft {
    /// Checks a post as typed.
    ///
    /// ```
    /// use owl_system::board::Draft;
    /// let draft = Draft::new("  supervisors\nand links ", " Ada ").unwrap();
    /// assert_eq!((draft.text.as_str(), draft.author.as_str()), ("supervisors\nand links", "Ada"));
    /// let errors = Draft::new("   ", &"x".repeat(81)).unwrap_err();
    /// assert_eq!(errors.text, Some("must not be empty"));
    /// assert_eq!(errors.author, Some("is longer than 80 characters"));
    /// ```
    pub fn new(text: &str, author: &str) -> Result<Draft, FieldErrors> {
        let text = check(text, MAX_TEXT_CHARS, true);
        let author = check(author, MAX_AUTHOR_CHARS, false);
        match (text, author) {
            (Ok(text), Ok(author)) => Ok(Draft { text, author }),
            (text, author) => Err(FieldErrors {
                text: text.err(),
                author: author.err(),
            }),
        }
    }
}
