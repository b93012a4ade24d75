//! Where posts live: SQLite in the data directory (WAL, `synchronous=FULL`,
//! versioned migrations), written by one thread that commits many posts
//! with one sync (group commit), read by another.
//!
//! A post is acknowledged only once the transaction that holds it has
//! committed — and with `synchronous=FULL` a committed transaction survives
//! a crash of the node and a power loss.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, params};
use tokio::sync::oneshot;

use super::Post;

/// Writes waiting for one transaction at most.
const GROUP: usize = 512;

/// Versioned schema changes, applied in order; `PRAGMA user_version` says
/// how many a database has had.
const MIGRATIONS: &[&str] = &[
    // 1: posts, newest first per topic.
    "CREATE TABLE posts (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         topic TEXT NOT NULL,
         text TEXT NOT NULL,
         author TEXT NOT NULL,
         inserted_at INTEGER NOT NULL
     );
     CREATE INDEX posts_by_topic ON posts (topic, id DESC);",
];

/// Why the store did not do something.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for StoreError {}

fn failed(what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError(format!("{what}: {e}"))
}

/// A change for the writer thread.
pub(crate) enum Write {
    Insert {
        topic: String,
        text: String,
        author: String,
        done: oneshot::Sender<Result<Post, StoreError>>,
    },
    Delete {
        id: i64,
        /// Only within this topic, when given.
        topic: Option<String>,
        done: oneshot::Sender<Result<Option<String>, StoreError>>,
    },
    Reset {
        topic: String,
        done: oneshot::Sender<Result<usize, StoreError>>,
    },
    /// Refuse (or accept again) changes at the database itself.
    ReadOnly {
        read_only: bool,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// The database: a writer thread and a read connection.
pub(crate) struct Store {
    path: PathBuf,
    writes: mpsc::SyncSender<Write>,
    reader: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn open(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(failed("busy timeout"))?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
        .map_err(failed("setting WAL and full sync"))?;
    Ok(conn)
}

/// The database holds every post and who wrote it: readable by this user
/// only, like the data directory (a file made before that rule, or under a
/// lax umask, is tightened; SQLite gives its `-wal` and `-shm` files the
/// database's mode, and they are tightened too if they exist already).
fn keep_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut files = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        files.push(name.into());
    }
    for file in files {
        if let Ok(meta) = std::fs::metadata(&file)
            && meta.permissions().mode() & 0o077 != 0
            && let Err(e) = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
        {
            tracing::warn!(target: "owl::board", file = %file.display(), error = %e,
                "cannot make the database private to this user");
        }
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(failed("reading the schema version"))?;
    if version > MIGRATIONS.len() {
        return Err(StoreError(format!(
            "the database has schema version {version}, newer than this owl knows ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction().map_err(failed("migrating"))?;
        tx.execute_batch(sql).map_err(failed("migrating"))?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
            .map_err(failed("migrating"))?;
        tx.commit().map_err(failed("migrating"))?;
    }
    Ok(())
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Store {
    /// Opens (creating and migrating) the database at `path`, and starts
    /// its writer thread. Errors say what is wrong with the file.
    pub(crate) fn open(path: &Path) -> Result<Store, StoreError> {
        let mut writer = open(path, OpenFlags::default())?;
        migrate(&mut writer)?;
        keep_private(path);
        let reader = open(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let (writes, pending) = mpsc::sync_channel::<Write>(GROUP * 8);
        std::thread::Builder::new()
            .name("owl-board-writer".into())
            .spawn(move || write_loop(writer, pending))
            .map_err(|e| StoreError(format!("cannot start the database writer: {e}")))?;
        Ok(Store {
            path: path.to_path_buf(),
            writes,
            reader: Mutex::new(reader),
        })
    }

    /// Queues a change for the writer (it answers on the change's channel).
    pub(crate) fn write(&self, write: Write) -> Result<(), StoreError> {
        self.writes
            .try_send(write)
            .map_err(|_| StoreError("the database writer is overloaded or stopped".into()))
    }

    /// Up to `limit` posts of `topic` older than `before` (newest first).
    pub(crate) fn list(
        &self,
        topic: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Post>, StoreError> {
        let conn = self.reader.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, topic, text, author, inserted_at FROM posts
                 WHERE topic = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
            )
            .map_err(failed("reading posts"))?;
        let rows = stmt
            .query_map(
                params![topic, before.unwrap_or(i64::MAX), limit as i64],
                |r| {
                    Ok(Post {
                        id: r.get(0)?,
                        topic: r.get(1)?,
                        text: r.get(2)?,
                        author: r.get(3)?,
                        inserted_at: r.get(4)?,
                    })
                },
            )
            .map_err(failed("reading posts"))?;
        rows.collect::<Result<_, _>>()
            .map_err(failed("reading posts"))
    }

    /// Posts of `topic` (every topic for `None`).
    pub(crate) fn count(&self, topic: Option<&str>) -> Result<u64, StoreError> {
        let conn = self.reader.lock();
        let n: i64 = match topic {
            Some(t) => conn.query_row("SELECT COUNT(*) FROM posts WHERE topic = ?1", [t], |r| {
                r.get(0)
            }),
            None => conn.query_row("SELECT COUNT(*) FROM posts", [], |r| r.get(0)),
        }
        .map_err(failed("counting posts"))?;
        Ok(n as u64)
    }
}

/// The writer: takes whatever changes are waiting (up to [`GROUP`]), applies
/// them in one transaction, commits (one sync for all), then answers each.
fn write_loop(mut conn: Connection, pending: mpsc::Receiver<Write>) {
    while let Ok(first) = pending.recv() {
        let mut batch = vec![first];
        while batch.len() < GROUP {
            match pending.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        apply(&mut conn, batch);
    }
}

/// What one change did, before its transaction committed.
pub(crate) enum Done {
    Inserted(Post),
    Deleted(Option<String>),
    Reset(usize),
    ReadOnly,
}

fn apply(conn: &mut Connection, batch: Vec<Write>) {
    let outcome: Result<Vec<Result<Done, StoreError>>, StoreError> = (|| {
        let tx = conn
            .transaction()
            .map_err(failed("starting a transaction"))?;
        let results = batch.iter().map(|w| apply_one(&tx, w)).collect();
        tx.commit().map_err(failed("committing"))?;
        Ok(results)
    })();
    match outcome {
        Ok(results) => {
            for (write, result) in batch.into_iter().zip(results) {
                answer(write, result);
            }
        }
        // Nothing of the batch is durable: every change hears why.
        Err(e) => {
            tracing::error!(target: "owl::board", error = %e, "a batch of board changes failed");
            for write in batch {
                answer(write, Err(e.clone()));
            }
        }
    }
}

fn apply_one(tx: &rusqlite::Transaction<'_>, write: &Write) -> Result<Done, StoreError> {
    match write {
        Write::Insert {
            topic,
            text,
            author,
            ..
        } => {
            let at = now_ms();
            tx.prepare_cached(
                "INSERT INTO posts (topic, text, author, inserted_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![topic, text, author, at]))
            .map_err(failed("saving the post"))?;
            Ok(Done::Inserted(Post {
                id: tx.last_insert_rowid(),
                topic: topic.clone(),
                text: text.clone(),
                author: author.clone(),
                inserted_at: at,
            }))
        }
        Write::Delete { id, topic, .. } => {
            let topic: Option<String> = tx
                .query_row(
                    "DELETE FROM posts WHERE id = ?1 AND (?2 IS NULL OR topic = ?2) RETURNING topic",
                    params![id, topic],
                    |r| r.get(0),
                )
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })
                .map_err(failed("deleting the post"))?;
            Ok(Done::Deleted(topic))
        }
        Write::Reset { topic, .. } => tx
            .execute("DELETE FROM posts WHERE topic = ?1", [topic])
            .map(Done::Reset)
            .map_err(failed("resetting the topic")),
        Write::ReadOnly { read_only, .. } => tx
            .execute_batch(if *read_only {
                "PRAGMA query_only = ON"
            } else {
                "PRAGMA query_only = OFF"
            })
            .map(|()| Done::ReadOnly)
            .map_err(failed("switching read-only")),
    }
}

pub(crate) fn answer(write: Write, result: Result<Done, StoreError>) {
    match (write, result) {
        (Write::Insert { done, .. }, Ok(Done::Inserted(post))) => {
            let _ = done.send(Ok(post));
        }
        (Write::Insert { done, .. }, Err(e)) => {
            let _ = done.send(Err(e));
        }
        (Write::Delete { done, .. }, Ok(Done::Deleted(topic))) => {
            let _ = done.send(Ok(topic));
        }
        (Write::Delete { done, .. }, Err(e)) => {
            let _ = done.send(Err(e));
        }
        (Write::Reset { done, .. }, Ok(Done::Reset(n))) => {
            let _ = done.send(Ok(n));
        }
        (Write::Reset { done, .. }, Err(e)) => {
            let _ = done.send(Err(e));
        }
        (Write::ReadOnly { done, .. }, Ok(Done::ReadOnly)) => {
            let _ = done.send(Ok(()));
        }
        (Write::ReadOnly { done, .. }, Err(e)) => {
            let _ = done.send(Err(e));
        }
        _ => unreachable!("each change gets the result of its own kind"),
    }
}
