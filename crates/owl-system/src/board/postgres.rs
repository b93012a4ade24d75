//! Posts in PostgreSQL (`--database-url postgres://…`), shared by every
//! node that uses the same database: a pool of connections for reads and
//! writes, and one listening connection per node.
//!
//! Each change commits together with a `NOTIFY` on [`CHANNEL`] (PostgreSQL
//! delivers notifications at commit, and only for committed transactions);
//! every node's listener hears it — the writer's own included — and tells
//! the topic's pages on that node. So a post made on one node appears live
//! on the pages of all of them, and never before it is committed. With the
//! server's default `synchronous_commit = on`, committed means durable.
//!
//! The notification carries ids only (a payload is limited to 8000 bytes);
//! the listener reads the post itself.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Transaction,
};
use owl_runtime::Node;
use serde_json::{Value, json};
use tokio_postgres::{AsyncMessage, NoTls};

use super::store::{
    MIGRATIONS, NewPost, PostStore, READ_ONLY, Reply, StoreError, check_version, now_ms,
    refused_read_only,
};
use super::{BoardEvent, Post, group};

/// The channel every change is announced on.
pub(crate) const CHANNEL: &str = "owl_board";
/// Connections in the pool.
const POOL_SIZE: usize = 8;
/// How long to wait before listening again after the connection dropped.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);

fn failed(what: &str) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
    // The server's own message ("relation … does not exist") says more than
    // the driver's summary ("db error").
    move |e| match e.as_db_error() {
        Some(db) => StoreError(format!("{what}: {} ({})", db.message(), db.code().code())),
        None => StoreError(format!("{what}: {e}")),
    }
}

/// The database as the board uses it.
pub(crate) struct PgStore {
    pool: Pool,
    config: tokio_postgres::Config,
    /// Where it is, without the password, for messages.
    shown: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("at", &self.shown).finish()
    }
}

/// `host:port/dbname` of a connection string, never its password.
pub(crate) fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}

impl PgStore {
    /// Connects (pool of [`POOL_SIZE`]) and migrates. Errors name the
    /// server and what failed.
    pub(crate) async fn open(url: &str) -> Result<PgStore, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError(format!("--database-url is not a PostgreSQL URL: {e}")))?;
        let shown = describe(&config);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError(format!("PostgreSQL pool for {shown}: {e}")))?;
        let store = PgStore {
            pool,
            config,
            shown,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError(format!("cannot reach PostgreSQL at {}: {e}", self.shown)))
    }

    /// Runs the migrations this database has not had, one node at a time
    /// (an advisory lock: three nodes may start together).
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(failed("migrating"))?;
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(7270616); \
             CREATE TABLE IF NOT EXISTS owl_schema (version INT NOT NULL); \
             INSERT INTO owl_schema SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM owl_schema);",
        )
        .await
        .map_err(failed("migrating"))?;
        let version: i32 = tx
            .query_one("SELECT version FROM owl_schema", &[])
            .await
            .map_err(failed("reading the schema version"))?
            .get(0);
        let version = version as usize;
        check_version(version)?;
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.batch_execute(migration.postgres)
                .await
                .map_err(failed("migrating"))?;
            tx.execute("UPDATE owl_schema SET version = $1", &[&((i + 1) as i32)])
                .await
                .map_err(failed("migrating"))?;
        }
        tx.commit().await.map_err(failed("migrating"))
    }

    /// A transaction on a pooled connection.
    async fn begin<'c>(
        &self,
        client: &'c mut deadpool_postgres::Object,
    ) -> Result<Transaction<'c>, StoreError> {
        client
            .transaction()
            .await
            .map_err(failed("starting a transaction"))
    }

    async fn post(&self, id: i64) -> Result<Option<Post>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT id, topic, text, author, inserted_at FROM posts WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(failed("reading a post"))?;
        Ok(row.as_ref().map(row_to_post))
    }

    /// Listens on [`CHANNEL`] and tells this node's pages of every change,
    /// reconnecting after a lost connection. Runs until dropped.
    async fn listen(&self, node: Node) {
        loop {
            match self.listen_once(&node).await {
                Ok(()) => tracing::warn!(target: "owl::board", at = %self.shown,
                    "the PostgreSQL listening connection closed; listening again"),
                Err(e) => tracing::warn!(target: "owl::board", error = %e,
                    "listening for board changes failed; trying again"),
            }
            tokio::time::sleep(RELISTEN_AFTER).await;
        }
    }

    async fn listen_once(&self, node: &Node) -> Result<(), StoreError> {
        let (client, mut connection) =
            self.config.connect(NoTls).await.map_err(|e| {
                StoreError(format!("cannot reach PostgreSQL at {}: {e}", self.shown))
            })?;
        // The connection yields the notifications; the client sends LISTEN.
        let (tx, mut notes) = tokio::sync::mpsc::unbounded_channel();
        let pump = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        if tx.send(n.payload().to_string()).is_err() {
                            break;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(target: "owl::board", error = %e, "PostgreSQL connection error");
                        break;
                    }
                    None => break,
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(failed("LISTEN"))?;
        tracing::info!(target: "owl::board", at = %self.shown, "listening for board changes");
        while let Some(payload) = notes.recv().await {
            self.announce(node, &payload).await;
        }
        pump.abort();
        Ok(())
    }

    async fn announce(&self, node: &Node, payload: &str) {
        let Ok(event) = serde_json::from_str::<Value>(payload) else {
            tracing::warn!(target: "owl::board", payload, "unreadable board notification");
            return;
        };
        match event["kind"].as_str() {
            Some("posted") => {
                let Some(id) = event["id"].as_i64() else {
                    return;
                };
                match self.post(id).await {
                    Ok(Some(post)) => {
                        node.broadcast(&group(&post.topic), BoardEvent::Posted(post));
                    }
                    // Deleted again before we read it: its deletion follows.
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(target: "owl::board", error = %e, "reading a notified post")
                    }
                }
            }
            Some("deleted") => {
                if let (Some(id), Some(topic)) = (event["id"].as_i64(), event["topic"].as_str()) {
                    node.broadcast(
                        &group(topic),
                        BoardEvent::Deleted {
                            topic: topic.to_string(),
                            id,
                        },
                    );
                }
            }
            Some("reset") => {
                if let Some(topic) = event["topic"].as_str() {
                    node.broadcast(
                        &group(topic),
                        BoardEvent::Reset {
                            topic: topic.to_string(),
                        },
                    );
                }
            }
            _ => tracing::warn!(target: "owl::board", payload, "unknown board notification"),
        }
    }
}

/// Announces `event` to every node's listener when `tx` commits.
async fn notify(tx: &Transaction<'_>, event: Value) -> Result<(), StoreError> {
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &event.to_string()])
        .await
        .map(drop)
        .map_err(failed("announcing the change"))
}

async fn commit(tx: Transaction<'_>) -> Result<(), StoreError> {
    tx.commit().await.map_err(failed("committing"))
}

async fn read_only(client: &impl GenericClient) -> Result<bool, StoreError> {
    let row = client
        .query_one(READ_ONLY, &[])
        .await
        .map_err(failed("reading the board's settings"))?;
    Ok(row.get::<_, i32>(0) != 0)
}

// Each change runs in its own transaction and commits with its
// notification, so every node hears of it exactly when it is durable.
impl PostStore for PgStore {
    fn insert(&self, post: NewPost) -> Reply<'_, Post> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = self.begin(&mut client).await?;
            if read_only(&tx).await? {
                return Err(refused_read_only());
            }
            let at = now_ms();
            let id: i64 = tx
                .query_one(
                    "INSERT INTO posts (topic, text, author, inserted_at) \
                     VALUES ($1, $2, $3, $4) RETURNING id",
                    &[&post.topic, &post.text, &post.author, &at],
                )
                .await
                .map_err(failed("saving the post"))?
                .get(0);
            notify(&tx, json!({"kind": "posted", "id": id})).await?;
            commit(tx).await?;
            Ok(Post {
                id,
                topic: post.topic,
                text: post.text,
                author: post.author,
                inserted_at: at,
            })
        })
    }

    fn delete(&self, id: i64, topic: Option<String>) -> Reply<'_, Option<String>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = self.begin(&mut client).await?;
            let topic: Option<String> = tx
                .query_opt(
                    "DELETE FROM posts WHERE id = $1 AND ($2::text IS NULL OR topic = $2) \
                     RETURNING topic",
                    &[&id, &topic],
                )
                .await
                .map_err(failed("deleting the post"))?
                .map(|row| row.get(0));
            if let Some(topic) = &topic {
                notify(&tx, json!({"kind": "deleted", "id": id, "topic": topic})).await?;
            }
            commit(tx).await?;
            Ok(topic)
        })
    }

    fn reset(&self, topic: String) -> Reply<'_, usize> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = self.begin(&mut client).await?;
            let removed = tx
                .execute("DELETE FROM posts WHERE topic = $1", &[&topic])
                .await
                .map_err(failed("resetting the topic"))?;
            notify(&tx, json!({"kind": "reset", "topic": topic})).await?;
            commit(tx).await?;
            Ok(removed as usize)
        })
    }

    fn set_read_only(&self, on: bool) -> Reply<'_, ()> {
        Box::pin(async move {
            self.client()
                .await?
                .execute(
                    "UPDATE board_settings SET read_only = $1",
                    &[&i32::from(on)],
                )
                .await
                .map(drop)
                .map_err(failed("switching read-only"))
        })
    }

    fn read_only(&self) -> Reply<'_, bool> {
        Box::pin(async move { read_only(&self.client().await?).await })
    }

    fn list(&self, topic: String, before: Option<i64>, limit: usize) -> Reply<'_, Vec<Post>> {
        Box::pin(async move {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT id, topic, text, author, inserted_at FROM posts \
                     WHERE topic = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                    &[&topic, &before.unwrap_or(i64::MAX), &(limit as i64)],
                )
                .await
                .map_err(failed("reading posts"))?;
            Ok(rows.iter().map(row_to_post).collect())
        })
    }

    fn count(&self, topic: String) -> Reply<'_, u64> {
        Box::pin(async move {
            let row = self
                .client()
                .await?
                .query_one("SELECT COUNT(*) FROM posts WHERE topic = $1", &[&topic])
                .await
                .map_err(failed("counting posts"))?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    fn follow(&self, node: Node) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.listen(node))
    }
}

fn row_to_post(row: &tokio_postgres::Row) -> Post {
    Post {
        id: row.get(0),
        topic: row.get(1),
        text: row.get(2),
        author: row.get(3),
        inserted_at: row.get(4),
    }
}
