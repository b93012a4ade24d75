//! Posts in SQLite in the data directory (WAL, `synchronous=FULL`), written
//! by one thread that commits many changes with one sync (group commit),
//! read by another.
//!
//! A change is answered only once the transaction that holds it has
//! committed — and with `synchronous=FULL` a committed transaction survives
//! a crash of the node and a power loss.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use owl_runtime::Node;
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, Transaction, params};
use tokio::sync::oneshot;

use super::Post;
use super::store::{
    MIGRATIONS, NewPost, PostStore, READ_ONLY, Reply, StoreError, check_version, now_ms,
    refused_read_only,
};

/// Changes waiting for one transaction at most.
const GROUP: usize = 512;

fn failed(what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError(format!("{what}: {e}"))
}

/// A change for the writer thread: it does its work inside the batch's
/// transaction and keeps its own typed result, then hears whether the
/// transaction committed and answers its caller with one or the other.
trait Change: Send {
    fn run(&mut self, tx: &Transaction<'_>);
    fn answer(self: Box<Self>, committed: Result<(), StoreError>);
}

struct Pending<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    done: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Change for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, tx: &Transaction<'_>) {
        if let Some(work) = self.work.take() {
            self.result = Some(work(tx));
        }
    }

    fn answer(self: Box<Self>, committed: Result<(), StoreError>) {
        let Pending { result, done, .. } = *self;
        let result = committed.and_then(|()| {
            result.unwrap_or_else(|| Err(StoreError("the change was not made".into())))
        });
        let _ = done.send(result);
    }
}

/// The database: a writer thread and a read connection.
pub(crate) struct SqliteStore {
    path: PathBuf,
    changes: mpsc::SyncSender<Box<dyn Change>>,
    reader: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
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

/// Runs the migrations the file has not had; `PRAGMA user_version` counts
/// them.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(failed("reading the schema version"))?;
    check_version(version)?;
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction().map_err(failed("migrating"))?;
        tx.execute_batch(migration.sqlite)
            .map_err(failed("migrating"))?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
            .map_err(failed("migrating"))?;
        tx.commit().map_err(failed("migrating"))?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating and migrating) the database at `path`, and starts
    /// its writer thread. Errors say what is wrong with the file. Blocks:
    /// call it off the schedulers.
    pub(crate) fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let mut writer = open(path, OpenFlags::default())?;
        migrate(&mut writer)?;
        keep_private(path);
        let reader = open(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let (changes, pending) = mpsc::sync_channel::<Box<dyn Change>>(GROUP * 8);
        std::thread::Builder::new()
            .name("owl-board-writer".into())
            .spawn(move || write_loop(writer, pending))
            .map_err(|e| StoreError(format!("cannot start the database writer: {e}")))?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            changes,
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    /// Queues `work` for the writer; its result once its transaction has
    /// committed.
    fn change<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Reply<'_, T> {
        let (done, answer) = oneshot::channel();
        let change = Box::new(Pending {
            work: Some(work),
            result: None,
            done,
        });
        let queued = self
            .changes
            .try_send(change)
            .map_err(|_| StoreError("the database writer is overloaded or stopped".into()));
        Box::pin(async move {
            queued?;
            answer
                .await
                .map_err(|_| StoreError("the database writer stopped".into()))?
        })
    }

    /// Runs `read` on the read connection, off the schedulers.
    fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Reply<'_, T> {
        let reader = self.reader.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || read(&reader.lock()))
                .await
                .map_err(|e| StoreError(format!("reading the database: {e}")))?
        })
    }
}

fn read_only(conn: &Connection) -> Result<bool, StoreError> {
    conn.query_row(READ_ONLY, [], |r| r.get::<_, i64>(0))
        .map(|on| on != 0)
        .map_err(failed("reading the board's settings"))
}

impl PostStore for SqliteStore {
    fn insert(&self, post: NewPost) -> Reply<'_, Post> {
        self.change(move |tx| {
            if read_only(tx)? {
                return Err(refused_read_only());
            }
            let at = now_ms();
            tx.prepare_cached(
                "INSERT INTO posts (topic, text, author, inserted_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![post.topic, post.text, post.author, at]))
            .map_err(failed("saving the post"))?;
            Ok(Post {
                id: tx.last_insert_rowid(),
                topic: post.topic,
                text: post.text,
                author: post.author,
                inserted_at: at,
            })
        })
    }

    fn delete(&self, id: i64, topic: Option<String>) -> Reply<'_, Option<String>> {
        self.change(move |tx| {
            tx.query_row(
                "DELETE FROM posts WHERE id = ?1 AND (?2 IS NULL OR topic = ?2) RETURNING topic",
                params![id, topic],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(failed("deleting the post"))
        })
    }

    fn reset(&self, topic: String) -> Reply<'_, usize> {
        self.change(move |tx| {
            tx.execute("DELETE FROM posts WHERE topic = ?1", [topic])
                .map_err(failed("resetting the topic"))
        })
    }

    fn set_read_only(&self, on: bool) -> Reply<'_, ()> {
        self.change(move |tx| {
            tx.execute("UPDATE board_settings SET read_only = ?1", [i64::from(on)])
                .map(drop)
                .map_err(failed("switching read-only"))
        })
    }

    fn read_only(&self) -> Reply<'_, bool> {
        self.read(read_only)
    }

    fn list(&self, topic: String, before: Option<i64>, limit: usize) -> Reply<'_, Vec<Post>> {
        self.read(move |conn| {
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
        })
    }

    fn count(&self, topic: String) -> Reply<'_, u64> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM posts WHERE topic = ?1",
                [topic],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(failed("counting posts"))
        })
    }

    fn follow(&self, _node: Node) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        // Only this node writes the file, and it tells its own pages.
        Box::pin(std::future::pending())
    }
}

/// The writer: takes whatever changes are waiting (up to [`GROUP`]), does
/// them in one transaction, commits (one sync for all), then answers each.
fn write_loop(mut conn: Connection, pending: mpsc::Receiver<Box<dyn Change>>) {
    while let Ok(first) = pending.recv() {
        let mut batch = vec![first];
        while batch.len() < GROUP {
            match pending.try_recv() {
                Ok(change) => batch.push(change),
                Err(_) => break,
            }
        }
        apply(&mut conn, batch);
    }
}

fn apply(conn: &mut Connection, mut batch: Vec<Box<dyn Change>>) {
    let committed = conn
        .transaction()
        .map_err(failed("starting a transaction"))
        .and_then(|tx| {
            for change in &mut batch {
                change.run(&tx);
            }
            tx.commit().map_err(failed("committing"))
        });
    if let Err(e) = &committed {
        // Nothing of the batch is durable: every change hears why.
        tracing::error!(target: "owl::board", error = %e, "a batch of board changes failed");
    }
    for change in batch {
        change.answer(committed.clone());
    }
}

/// Memory SQLite holds now, every connection of this OS process together,
/// in bytes.
pub(crate) fn memory_in_use() -> u64 {
    // SAFETY: `sqlite3_memory_used` takes no arguments and only reads
    // SQLite's own counter (under its memory mutex); SQLite documents it as
    // callable from any thread at any time, even before initialization.
    let used = unsafe { rusqlite::ffi::sqlite3_memory_used() };
    used.max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("owl-sqlite-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("owl.db")
    }

    fn post(topic: &str, text: &str) -> NewPost {
        NewPost {
            topic: topic.into(),
            text: text.into(),
            author: "Ana".into(),
        }
    }

    #[tokio::test]
    async fn each_change_answers_with_its_own_kind_of_result() {
        let path = temp_db("typed");
        let store = SqliteStore::open(&path).unwrap();
        let a = store.insert(post("t", "one")).await.unwrap();
        let b = store.insert(post("t", "two")).await.unwrap();
        assert!(b.id > a.id);
        assert_eq!(store.count("t".into()).await.unwrap(), 2);
        // A delete within another topic finds nothing; within its own, the topic.
        assert_eq!(store.delete(a.id, Some("u".into())).await.unwrap(), None);
        assert_eq!(store.delete(a.id, None).await.unwrap(), Some("t".into()));
        assert_eq!(store.reset("t".into()).await.unwrap(), 1);
        assert!(store.list("t".into(), None, 10).await.unwrap().is_empty());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[tokio::test]
    async fn read_only_refuses_posts_survives_a_reopen_and_still_lets_moderators_delete() {
        let path = temp_db("read-only");
        let store = SqliteStore::open(&path).unwrap();
        let kept = store.insert(post("t", "before")).await.unwrap();
        store.set_read_only(true).await.unwrap();
        let refused = store.insert(post("t", "during")).await.unwrap_err();
        assert!(refused.0.contains("read-only"), "{refused}");
        drop(store);

        let store = SqliteStore::open(&path).unwrap();
        assert!(store.read_only().await.unwrap(), "a setting of the file");
        assert!(store.insert(post("t", "after restart")).await.is_err());
        assert_eq!(store.delete(kept.id, None).await.unwrap(), Some("t".into()));
        store.set_read_only(false).await.unwrap();
        store.insert(post("t", "again")).await.unwrap();
        let texts: Vec<String> = store
            .list("t".into(), None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.text)
            .collect();
        assert_eq!(texts, ["again"]);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[tokio::test]
    async fn a_file_of_an_older_schema_is_migrated_and_a_newer_one_refused() {
        let path = temp_db("migrate");
        {
            // What a first-version owl left behind: posts, no settings.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0].sqlite).unwrap();
            conn.execute_batch(
                "INSERT INTO posts (topic, text, author, inserted_at) VALUES ('t', 'old', 'Ana', 1);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert!(!store.read_only().await.unwrap());
        assert_eq!(store.count("t".into()).await.unwrap(), 1);
        drop(store);

        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        let refused = SqliteStore::open(&path).unwrap_err();
        assert!(refused.0.contains("newer than this owl knows"), "{refused}");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
