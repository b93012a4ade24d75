//! The board's topics: data, not code. Each is a question to the audience.

/// One topic of the board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topic {
    /// Its name in URLs: `/board/{slug}`.
    pub slug: &'static str,
    /// The question the topic asks.
    pub question: &'static str,
}

/// Every topic, in the order the board lists them.
pub const TOPICS: &[Topic] = &[
    Topic {
        slug: "building-blocks",
        question: "What are your building blocks for robust systems?",
    },
    Topic {
        slug: "observability",
        question: "How do you find a misbehaving part of your software?",
    },
];

/// Where `/board` and unknown topics lead.
pub const DEFAULT_TOPIC: &str = "building-blocks";
