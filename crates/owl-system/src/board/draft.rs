//! What a post must be: a text and an author, both with something visible
//! in them after trimming, the text at most 2,000 characters (newlines
//! kept), the author at most 80, neither with control characters beyond
//! line breaks and tabs. An author name may not hold text-direction
//! controls (an override can make a name read as another); a text may —
//! right-to-left writing uses them — and pages show each post in a
//! paragraph of its own, which no direction control reaches beyond.

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

/// Characters that show nothing: whitespace, zero-width and joiner
/// characters, direction marks and controls, invisible fillers and tags.
/// A field of nothing else is empty to a reader.
fn invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
            | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}')
}

/// Embeddings, overrides and isolates: they change how the text around
/// them reads.
fn direction_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn check(value: &str, max: usize, multiline: bool) -> Result<String, &'static str> {
    let normalized = value.replace("\r\n", "\n");
    let trimmed = normalized.trim();
    if trimmed.chars().all(invisible) {
        return Err("must not be empty");
    }
    if !multiline && trimmed.chars().any(direction_control) {
        return Err("must not contain text-direction controls");
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
    /// // Nothing visible is nothing.
    /// assert_eq!(Draft::new("\u{200b}\u{200d}", "A").unwrap_err().text, Some("must not be empty"));
    /// // A name that reads backwards from the middle is refused.
    /// let spoof = Draft::new("hi", "Ada\u{202e}nimda").unwrap_err();
    /// assert_eq!(spoof.author, Some("must not contain text-direction controls"));
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
