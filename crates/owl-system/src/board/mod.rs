//! The bulletin board: the audience answers the talk's questions from their
//! phones; every viewer of a topic sees new and deleted posts at once.
//!
//! Each save runs in its own process under the board's supervisor, watched
//! by whoever asked (a page's session, an API request): the acknowledgement
//! arrives as a message once the post is durably committed, a failure as
//! the watcher's `Down`. Committed posts go to the topic's process group, so
//! every page on the topic hears of them.
//!
//! ```text
//! board_sup (one_for_one)
//! ├── board_store    owns the database (its writer thread commits in groups)
//! └── board_saves    dynamic: one temporary child per post being saved
//! ```

mod draft;
mod postgres;
mod sqlite;
mod store;
mod topics;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use owl_runtime::supervisor::{ChildSpec, Restart, Strategy, SupervisorRef, SupervisorSpec};
use owl_runtime::{Down, ExitReason, Message, Pid, Process, SpawnOptions};
use parking_lot::RwLock;

pub use draft::{Draft, FieldErrors, MAX_AUTHOR_CHARS, MAX_TEXT_CHARS};
pub use store::StoreError;
pub use topics::{DEFAULT_TOPIC, TOPICS, Topic};

use crate::math::Client;
use crate::rate::SlidingWindow;
use postgres::PgStore;
use sqlite::SqliteStore;
use store::{NewPost, PostStore};

/// The registered name of the board's supervisor.
pub const SUPERVISOR: &str = "board_sup";
/// The registered name of the process that owns the database.
pub const STORE: &str = "board_store";
/// The registered name of the saves' supervisor.
pub const SAVES: &str = "board_saves";
/// What a visitor is told when a post could not be saved (the talk's own
/// words).
pub const SAVE_FAILED: &str = "Posting of Message failed.";
/// What a visitor reads when a post could not be saved: the talk's words,
/// why in a few words, and what to do (their text stays in the form).
///
/// ```
/// use owl_runtime::ExitReason;
/// use owl_system::board::save_failed;
/// let why = save_failed(&ExitReason::error("the board is read-only (the operator's …)"));
/// assert_eq!(why, "Posting of Message failed: the board is read-only for now. Your text is kept; try again later.");
/// ```
pub fn save_failed(reason: &ExitReason) -> String {
    let text = reason.to_string();
    let why = match reason {
        _ if text.contains("read-only") => "the board is read-only for now",
        ExitReason::Killed | ExitReason::Kill => "the save was stopped",
        r if r.is_shutdown() => "the board is restarting",
        _ if text.contains("timed out") || text.contains("took") => "the database was too slow",
        _ => "the database did not take it",
    };
    format!(
        "{}: {why}. Your text is kept; try again later.",
        SAVE_FAILED.trim_end_matches('.')
    )
}

/// How long a save may take before it counts as failed.
const SAVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Posts a topic shows at once; older ones are paged.
pub const PAGE: usize = 100;

/// One post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Post {
    /// Its id, increasing: newer posts have larger ids.
    pub id: i64,
    /// Its topic's slug.
    pub topic: String,
    /// What was posted (newlines kept).
    pub text: String,
    /// Who posted it.
    pub author: String,
    /// When it was committed, in Unix milliseconds.
    pub inserted_at: i64,
}

/// What the pages of a topic hear: sent to the topic's group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BoardEvent {
    /// A post was committed.
    Posted(Post),
    /// A post was deleted.
    Deleted {
        /// Its topic.
        topic: String,
        /// Its id.
        id: i64,
    },
    /// The topic was emptied.
    Reset {
        /// The topic.
        topic: String,
    },
}

/// The answer a save process sends its watcher once the post is committed.
#[derive(Clone, Debug)]
pub struct Saved {
    /// The save process.
    pub from: Pid,
    /// The committed post.
    pub post: Post,
}

/// How a save ended, read from a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Committed.
    Saved(Post),
    /// Not saved: the save process ended without an acknowledgement.
    Failed(ExitReason),
}

/// Why a post was not accepted for saving.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PostError {
    /// No such topic.
    NoTopic,
    /// The text or author is not acceptable; per field.
    Invalid(FieldErrors),
    /// This client posted too often; it may again after this long.
    TooOften(Duration),
    /// The clients of this client's address together posted their
    /// ceiling; they may again after this long.
    AddressTooOften(Duration),
    /// The board cannot save right now (restarting, overloaded).
    Unavailable(String),
}

impl std::fmt::Display for PostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PostError::NoTopic => f.write_str("no such topic"),
            PostError::Invalid(e) => e.fmt(f),
            PostError::TooOften(wait) => write!(
                f,
                "too many posts; you may post again in {} s",
                wait.as_secs() + 1
            ),
            PostError::AddressTooOften(wait) => write!(
                f,
                "too many posts from your network address (everyone on it together); \
                 you may post again in {} s",
                wait.as_secs() + 1
            ),
            PostError::Unavailable(why) => write!(f, "the board cannot save right now: {why}"),
        }
    }
}
impl std::error::Error for PostError {}

/// Settings of the board.
#[derive(Clone, Debug)]
pub struct BoardConfig {
    /// The SQLite file (used without a `database_url`).
    pub database: PathBuf,
    /// A PostgreSQL URL (`postgres://user@host:port/db`): posts shared by
    /// every node that uses it.
    pub database_url: Option<String>,
    /// Posts one client may make per `rate_window`.
    pub rate_posts: usize,
    /// Posts all the clients of one address may make per `rate_window`.
    pub rate_posts_per_address: usize,
    /// See `rate_posts`.
    pub rate_window: Duration,
}

/// The board service. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Board {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: BoardConfig,
    /// The database while its owner process runs.
    store: RwLock<Option<Arc<dyn PostStore>>>,
    /// Recent posts per client, for the per-visitor rate limit…
    per_client: SlidingWindow<Client>,
    /// …and per address, for all the visitors behind one.
    per_address: SlidingWindow<std::net::IpAddr>,
    /// The latest posts per topic, and when they were counted.
    counted: parking_lot::Mutex<Option<(std::time::Instant, TopicCounts)>>,
}

/// Posts per topic, every topic listed.
type TopicCounts = Vec<(&'static str, u64)>;

/// The board's store as the system page shows it (LiveDashboard's Ecto
/// stats): where the posts are, how much they take, how many there are.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BoardFigures {
    /// Where the posts are (see [`Board::location`]).
    pub location: String,
    /// Bytes the SQLite database takes on disk (its file and write-ahead
    /// log); `None` for a shared PostgreSQL database.
    pub bytes_on_disk: Option<u64>,
    /// Memory SQLite holds in this node, in bytes.
    pub memory_bytes: u64,
    /// Posts per topic, as of at most [`COUNTS_MAX_AGE`] ago (empty until
    /// a page has asked for them).
    pub posts: Vec<(String, u64)>,
}

/// How old a count of posts per topic may be when a page shows it: every
/// page shows the counts, and a thousand phones loading pages must not
/// become a thousand counting queries.
pub const COUNTS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens where the posts are: this node's SQLite file, or a PostgreSQL
/// database shared with other nodes.
async fn open_store(config: &BoardConfig) -> Result<Arc<dyn PostStore>, StoreError> {
    let store: Arc<dyn PostStore> = match &config.database_url {
        Some(url) => Arc::new(PgStore::open(url).await?),
        None => {
            let path = config.database.clone();
            let opened = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await
                .map_err(|e| StoreError(format!("opening the database: {e}")))??;
            Arc::new(opened)
        }
    };
    if store.read_only().await? {
        tracing::warn!(target: "owl::board",
            "the board is read-only: it refuses new posts until `owl console board readonly off`");
    }
    Ok(store)
}

/// The group of a topic's pages.
pub fn group(topic: &str) -> String {
    format!("board:{topic}")
}

impl Board {
    /// The board on the database at `config.database`, which is opened (and
    /// created, migrated) when its owner process starts.
    pub fn new(config: BoardConfig) -> Board {
        Board {
            inner: Arc::new(Inner {
                per_client: SlidingWindow::new(config.rate_posts, config.rate_window),
                per_address: SlidingWindow::new(config.rate_posts_per_address, config.rate_window),
                config,
                store: RwLock::new(None),
                counted: Default::default(),
            }),
        }
    }

    /// Where the posts are, for messages: the SQLite file, or the
    /// PostgreSQL server and database (never its password).
    pub fn location(&self) -> String {
        match &self.inner.config.database_url {
            Some(url) => match url.parse::<tokio_postgres::Config>() {
                Ok(config) => format!("PostgreSQL at {}", postgres::describe(&config)),
                Err(_) => "PostgreSQL (unreadable URL)".into(),
            },
            None => format!("SQLite in {}", self.inner.config.database.display()),
        }
    }

    /// True if the posts are shared with other nodes (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.inner.config.database_url.is_some()
    }

    /// The board's subtree for the application's tree.
    pub fn child_spec(&self) -> ChildSpec {
        let inner = self.inner.clone();
        let store = ChildSpec::worker(STORE, move |args| {
            let inner = inner.clone();
            async move {
                let opened = open_store(&inner.config).await.map_err(ExitReason::error)?;
                *inner.store.write() = Some(opened.clone());
                let opts = SpawnOptions::new().label("board store");
                Ok(args.spawn_link_opts(opts, move |mut p| async move {
                    p.set_activity("owns the database");
                    // The database is this process's: when it ends, so does
                    // the writer (its channel closes with the store), and so
                    // does listening to a shared database.
                    let _closed = StoreSlot(inner.clone());
                    let node = p.node().clone();
                    tokio::select! {
                        () = opened.follow(node) => {}
                        () = async { loop { p.recv_any().await; } } => {}
                    }
                }))
            }
        });
        ChildSpec::supervisor(
            SUPERVISOR,
            SupervisorSpec::new(Strategy::OneForOne)
                .name(SUPERVISOR)
                .label("board supervisor")
                .child(store)
                .child(ChildSpec::supervisor(
                    SAVES,
                    SupervisorSpec::dynamic()
                        .name(SAVES)
                        .label("board save supervisor")
                        .max_children(10_000),
                )),
        )
    }

    /// The topic named `slug`, if it is one.
    pub fn topic(slug: &str) -> Option<&'static Topic> {
        TOPICS.iter().find(|t| t.slug == slug)
    }

    fn store(&self) -> Result<Arc<dyn PostStore>, PostError> {
        self.inner
            .store
            .read()
            .clone()
            .ok_or_else(|| PostError::Unavailable("the database is (re)starting".into()))
    }

    /// Counts a post of `client` against its rate limits — its own, and
    /// its address's — and refuses past either.
    pub fn check_rate(&self, client: &Client) -> Result<(), PostError> {
        let now = Instant::now();
        let inner = &self.inner;
        inner
            .per_client
            .check(client, now)
            .map_err(PostError::TooOften)?;
        if let Some(ip) = client.ip() {
            inner
                .per_address
                .check(&ip, now)
                .map_err(PostError::AddressTooOften)?;
            inner.per_address.count(&ip, now);
        }
        inner.per_client.count(client, now);
        Ok(())
    }

    /// Checks `draft` for `client` on `topic` and starts saving it in its own
    /// process under the board's supervisor, monitored by `ctx`: a [`Saved`]
    /// message arrives once it is committed, a `Down` if it failed (read
    /// either with [`settle`](Self::settle)).
    pub async fn start_save(
        &self,
        ctx: &mut Process,
        client: &Client,
        topic: &str,
        text: &str,
        author: &str,
    ) -> Result<Pid, PostError> {
        if Board::topic(topic).is_none() {
            return Err(PostError::NoTopic);
        }
        let draft = Draft::new(text, author).map_err(PostError::Invalid)?;
        self.check_rate(client)?;
        let saves = ctx
            .node()
            .resolve(SAVES)
            .ok_or_else(|| PostError::Unavailable("the board is restarting".into()))?;
        let (board, watcher, topic) = (self.clone(), ctx.pid().clone(), topic.to_string());
        let spec = ChildSpec::worker("save", move |args| {
            let (board, watcher, topic, draft) =
                (board.clone(), watcher.clone(), topic.clone(), draft.clone());
            let opts = SpawnOptions::new()
                .label("board save")
                .link_to(args.supervisor.clone())
                .parent(args.supervisor.clone())
                .monitored_by(watcher.clone());
            let pid = args
                .node
                .spawn_opts(opts, move |p| save(p, board, watcher, topic, draft));
            async move { Ok(pid) }
        })
        .restart(Restart::Temporary);
        SupervisorRef::from_pid(saves)
            .start_child(spec, SAVE_TIMEOUT)
            .await
            .map_err(|e| PostError::Unavailable(e.to_string()))
    }

    /// Reads a save's end from a message: its acknowledgement, or the `Down`
    /// of a save that ended without one. Anything else comes back.
    pub fn settle(msg: Message) -> Result<(Pid, SaveOutcome), Message> {
        let msg = match msg.downcast::<Saved>() {
            Ok(saved) => return Ok((saved.from, SaveOutcome::Saved(saved.post))),
            Err(other) => other,
        };
        let down = msg.downcast::<Down>()?;
        Ok((down.pid, SaveOutcome::Failed(down.reason)))
    }

    /// Up to `limit` posts of `topic` older than `before`, newest first
    /// (read off the schedulers).
    pub async fn list(
        &self,
        topic: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Post>, StoreError> {
        let store = self.store().map_err(|e| StoreError(e.to_string()))?;
        store.list(topic.to_string(), before, limit).await
    }

    /// Posts per topic, every topic listed.
    pub async fn counts(&self) -> Result<Vec<(&'static str, u64)>, StoreError> {
        let store = self.store().map_err(|e| StoreError(e.to_string()))?;
        let mut counts = Vec::with_capacity(TOPICS.len());
        for t in TOPICS {
            counts.push((t.slug, store.count(t.slug.to_string()).await?));
        }
        Ok(counts)
    }

    /// Posts per topic as of at most [`COUNTS_MAX_AGE`] ago (counted again
    /// when older; `None` if they cannot be counted now).
    pub async fn recent_counts(&self) -> Option<Vec<(&'static str, u64)>> {
        if let Some((at, counts)) = &*self.inner.counted.lock()
            && at.elapsed() < COUNTS_MAX_AGE
        {
            return Some(counts.clone());
        }
        let counts = tokio::time::timeout(SAVE_TIMEOUT, self.counts())
            .await
            .ok()?
            .ok()?;
        *self.inner.counted.lock() = Some((std::time::Instant::now(), counts.clone()));
        Some(counts)
    }

    /// Memory the board's SQLite holds in this node, in bytes (0 on a
    /// shared PostgreSQL database).
    pub fn memory_bytes(&self) -> u64 {
        if self.is_shared() {
            0
        } else {
            sqlite::memory_in_use()
        }
    }

    /// The store's figures now, without asking the store (the counts are
    /// the latest a page asked for).
    pub fn figures(&self) -> BoardFigures {
        let bytes_on_disk = (!self.is_shared()).then(|| {
            let file = &self.inner.config.database;
            ["", "-wal", "-shm"]
                .iter()
                .filter_map(|suffix| {
                    let mut name = file.clone().into_os_string();
                    name.push(suffix);
                    std::fs::metadata(name).ok().map(|m| m.len())
                })
                .sum()
        });
        let posts = match &*self.inner.counted.lock() {
            Some((_, counts)) => counts
                .iter()
                .map(|(topic, n)| (topic.to_string(), *n))
                .collect(),
            None => Vec::new(),
        };
        BoardFigures {
            location: self.location(),
            bytes_on_disk,
            memory_bytes: self.memory_bytes(),
            posts,
        }
    }

    /// Keeps the counted posts of `topic` true to this node's own change
    /// (another node's changes to a shared database show when the counts
    /// are next taken).
    fn adjust_count(&self, topic: &str, change: impl FnOnce(&mut u64)) {
        if let Some((_, counts)) = &mut *self.inner.counted.lock()
            && let Some((_, n)) = counts.iter_mut().find(|(slug, _)| *slug == topic)
        {
            change(n);
        }
    }

    /// Asks the store, waiting at most [`SAVE_TIMEOUT`] for its answer.
    async fn ask<T>(
        &self,
        request: impl for<'s> FnOnce(&'s dyn PostStore) -> store::Reply<'s, T>,
    ) -> Result<T, StoreError> {
        let store = self.store().map_err(|e| StoreError(e.to_string()))?;
        match tokio::time::timeout(SAVE_TIMEOUT, request(&*store)).await {
            Ok(result) => result,
            Err(_) => Err(StoreError("the database did not answer in time".into())),
        }
    }

    /// Deletes post `id` — only if it is in `topic`, when one is given (a
    /// moderator's page or URL names the topic it acts on); every viewer of
    /// its topic sees it go. False if there is no such post (there).
    pub async fn delete(
        &self,
        node: &owl_runtime::Node,
        topic: Option<&str>,
        id: i64,
    ) -> Result<bool, StoreError> {
        let topic = topic.map(str::to_string);
        let topic = self.ask(|store| store.delete(id, topic)).await?;
        let Some(topic) = topic else {
            return Ok(false);
        };
        self.adjust_count(&topic, |n| *n = n.saturating_sub(1));
        tracing::warn!(target: "owl::board", id, topic, "post deleted");
        if self.is_shared() {
            return Ok(true);
        }
        node.broadcast(
            &group(&topic),
            BoardEvent::Deleted {
                topic: topic.clone(),
                id,
            },
        );
        Ok(true)
    }

    /// Empties `topic` (before a talk); returns how many posts went.
    pub async fn reset(&self, node: &owl_runtime::Node, topic: &str) -> Result<usize, StoreError> {
        if Board::topic(topic).is_none() {
            return Err(StoreError(format!("no topic {topic:?}")));
        }
        let slug = topic.to_string();
        let removed = self.ask(|store| store.reset(slug)).await?;
        self.adjust_count(topic, |n| *n = 0);
        tracing::warn!(target: "owl::board", topic, removed, "topic reset");
        if self.is_shared() {
            return Ok(removed);
        }
        node.broadcast(
            &group(topic),
            BoardEvent::Reset {
                topic: topic.to_string(),
            },
        );
        Ok(removed)
    }

    /// Stops (or resumes) accepting new posts: a setting of the database,
    /// so every node that shares it refuses them, and it outlasts a restart.
    /// Saves fail meanwhile (the pages show the talk's "Posting of Message
    /// failed."); deleting and resetting still work.
    pub async fn set_read_only(&self, read_only: bool) -> Result<(), StoreError> {
        self.ask(|store| store.set_read_only(read_only)).await?;
        tracing::warn!(target: "owl::board", read_only, "board read-only switched");
        Ok(())
    }

    /// Whether the board refuses new posts (see
    /// [`set_read_only`](Self::set_read_only)).
    pub async fn read_only(&self) -> Result<bool, StoreError> {
        self.ask(|store| store.read_only()).await
    }
}

/// Empties the store slot when the owner process ends.
struct StoreSlot(Arc<Inner>);

impl Drop for StoreSlot {
    fn drop(&mut self) {
        self.0.store.write().take();
    }
}

/// A save: hands the post to the database writer and waits for the commit;
/// then tells the watcher and the topic's pages.
async fn save(
    p: Process,
    board: Board,
    watcher: Pid,
    topic: String,
    draft: Draft,
) -> Result<(), ExitReason> {
    p.set_activity(format!("saving a post on {topic}"));
    let post = board
        .ask(|store| {
            store.insert(NewPost {
                topic: topic.clone(),
                text: draft.text,
                author: draft.author,
            })
        })
        .await
        .map_err(|e| ExitReason::error(format!("the post was not saved: {e}")))?;
    board.adjust_count(&topic, |n| *n += 1);
    let from = p.pid().clone();
    let _ = watcher.send_reply(Saved {
        from,
        post: post.clone(),
    });
    // A shared database announces the post to every node, this one too.
    if !board.is_shared() {
        p.node().broadcast(&group(&topic), BoardEvent::Posted(post));
    }
    Ok(())
}
