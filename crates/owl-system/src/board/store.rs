//! What the board asks of a database, whichever it is: one trait with a
//! typed reply per request (a delete answers with the topic it deleted
//! from, a reset with how many posts went — no reply can be of the wrong
//! kind), and one list of schema versions for both databases.
//!
//! Two stores implement it: [`SqliteStore`](super::sqlite::SqliteStore)
//! (this node's file, the default) and [`PgStore`](super::postgres::PgStore)
//! (a PostgreSQL database that several nodes share).
//!
//! **Read-only** is a setting of the database, not of a node: a row of
//! `board_settings`. Every node that shares a PostgreSQL board sees it at
//! once, and it survives restarts (the node logs it at start). It refuses new
//! posts only: a moderator can still delete and reset while the board is
//! frozen.

use std::future::Future;
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use owl_runtime::Node;

use super::Post;

/// Why the store did not do something.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for StoreError {}

/// What a store request answers, later.
pub(crate) type Reply<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A post to save, checked already.
#[derive(Clone, Debug)]
pub(crate) struct NewPost {
    pub topic: String,
    pub text: String,
    pub author: String,
}

/// The board's database. Each change is durable once its reply is `Ok`.
pub(crate) trait PostStore: Send + Sync + std::fmt::Debug {
    /// Saves a post, refused while the board is read-only.
    fn insert(&self, post: NewPost) -> Reply<'_, Post>;
    /// Deletes post `id` (only within `topic`, when given); the topic it
    /// was in, or `None` if there was no such post (there).
    fn delete(&self, id: i64, topic: Option<String>) -> Reply<'_, Option<String>>;
    /// Deletes every post of `topic`; how many went.
    fn reset(&self, topic: String) -> Reply<'_, usize>;
    /// Refuses (or accepts again) new posts.
    fn set_read_only(&self, read_only: bool) -> Reply<'_, ()>;
    /// Whether new posts are refused.
    fn read_only(&self) -> Reply<'_, bool>;
    /// Up to `limit` posts of `topic` older than `before`, newest first.
    fn list(&self, topic: String, before: Option<i64>, limit: usize) -> Reply<'_, Vec<Post>>;
    /// How many posts `topic` has.
    fn count(&self, topic: String) -> Reply<'_, u64>;
    /// Tells this node's pages of every change the database announces, for
    /// as long as the store is open. A shared database announces every
    /// node's changes, this node's own included; a store only this node
    /// writes announces nothing (the node tells its pages itself) and this
    /// never returns.
    fn follow(&self, node: Node) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// One schema change. Most are the same SQL for both databases; where the
/// dialects differ (how an id counts up), each has its own.
pub(crate) struct Migration {
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

impl Migration {
    const fn same(sql: &'static str) -> Migration {
        Migration {
            sqlite: sql,
            postgres: sql,
        }
    }
}

/// Every schema change, in order; a database records how many it has had.
pub(crate) const MIGRATIONS: &[Migration] = &[
    // 1: posts, newest first per topic.
    Migration {
        sqlite: "CREATE TABLE posts (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             topic TEXT NOT NULL,
             text TEXT NOT NULL,
             author TEXT NOT NULL,
             inserted_at INTEGER NOT NULL
         );
         CREATE INDEX posts_by_topic ON posts (topic, id DESC);",
        postgres: "CREATE TABLE posts (
             id BIGSERIAL PRIMARY KEY,
             topic TEXT NOT NULL,
             text TEXT NOT NULL,
             author TEXT NOT NULL,
             inserted_at BIGINT NOT NULL
         );
         CREATE INDEX posts_by_topic ON posts (topic, id DESC);",
    },
    // 2: the board's settings, one row: read-only belongs to the database.
    Migration::same(
        "CREATE TABLE board_settings (read_only INTEGER NOT NULL);
         INSERT INTO board_settings (read_only) VALUES (0);",
    ),
];

/// Refuses a schema newer than this build knows (a downgrade would
/// misread it).
pub(crate) fn check_version(version: usize) -> Result<(), StoreError> {
    if version > MIGRATIONS.len() {
        return Err(StoreError(format!(
            "the database has schema version {version}, newer than this owl knows ({})",
            MIGRATIONS.len()
        )));
    }
    Ok(())
}

/// Reads whether the board refuses new posts (the same SQL for both).
pub(crate) const READ_ONLY: &str = "SELECT read_only FROM board_settings";

/// What a post meets while the board is read-only.
pub(crate) fn refused_read_only() -> StoreError {
    StoreError(
        "the board is read-only (the operator's `board readonly on`; \
         `board readonly off` accepts posts again)"
            .into(),
    )
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
