//! Persistence behind the async [`Store`] trait: its SQLite implementation (here, the
//! default) and its PostgreSQL one ([`pg`], `--database postgres://…`).
//!
//! Handlers and the hub only see the trait. Records whose shape is the seed's (Visitor,
//! Session, Cobrowsesession, Connection, Agent) are stored as their JSON text next to
//! the columns that queries need, so the seed objects round-trip byte for byte. What a
//! record becomes when the server restarts, a visitor is erased or a node's slots move
//! is decided once, in the plain functions below both backends call.
//!
//! Each backend has its own numbered migrations, which only ever add:
//! `schema_migrations` records which ran. This module names no other of the crate
//! (`scripts/check-modules.mjs`): the `Directory` half of each backend lives in
//! `directory`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use covisit::core::derive;
use covisit::core::model::{
    Agent, Cobrowsesession, CommunicationState, Connection, DisconnectType, JourneySession,
    Session, Visitor,
};
use covisit::core::Millis;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

mod pg;
mod recording;
use pg::PgError;
pub use pg::{is_postgres_url, redact_url, PgStore};
pub use recording::{RecordingChunk, RecordingInfo, RecordingStart};
// The cluster layer opens fenced stores; until it exists only the tests name `Fence`.
#[allow(unused_imports)]
pub use pg::Fence;

/// The slot of a visitor, one of 256: the first byte of SHA-256 of its `short_id` (a
/// session's id is drawn in its visitor's slot, so the same function finds its owner).
///
/// Stored in PostgreSQL's `visitors.slot` and `sessions.slot` and used by every node of
/// a cluster to find a visitor's owner, so it must NEVER change: another hash or
/// another width would put stored rows and running nodes in different slots.
pub fn slot_of(short_id: &str) -> u16 {
    u16::from(Sha256::digest(short_id.as_bytes())[0])
}

/// One entry of the audit log. Never holds typed text, page content, or a visitor's
/// email or IP (`ip` is the address of a person acting: an agent, an admin).
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(skip)]
    pub account_id: i64,
    pub at: String,
    /// `u_…`, `ea_…`, `system`, `visitor:<short_id>`, or `email:<address>` for a failed
    /// sign-in with no such user (the address the person typed, not a visitor's).
    pub actor: String,
    /// e.g. `auth.sign_in`, `session.authorized` (docs: README, "Audit log").
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    /// `ok`, or why not (`wrong_password`, `locked`, `disabled`, …).
    pub result: String,
}

/// How many slots visitors are spread over (a cluster's unit of ownership).
pub const SLOTS: u16 = 256;

/// An error from the store; its text never contains personal data.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    /// PostgreSQL's error (its text leaves out the row values PostgreSQL quotes).
    #[error("database error: {0}")]
    Pg(PgError),
    /// No connection came from the pool in time, or the pool is closed.
    #[error("database pool: {0}")]
    Pool(String),
    /// The database URL or a setting is wrong (the URL's password is never in it).
    #[error("database configuration: {0}")]
    Config(String),
    /// This node's generation is no longer the one in `cluster_nodes` (or its row is
    /// gone): another node took over its slots, so nothing of the batch was written.
    #[error("this node is fenced: its generation is not the current one in cluster_nodes")]
    Fenced,
    /// The write is about a visitor (or its session) whose slot this node no longer
    /// owns in `cluster_slots` (it was moved, by a hand-over or a failover): that write
    /// alone is refused.
    #[error("this node does not own the slot of the row it writes")]
    NotOwner,
    #[error("stored record is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("database task failed: {0}")]
    Task(String),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Pg(PgError(e))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => StoreError::Pool(other.to_string()),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A stored session with its status (`authorizing`, `active`, `ended`).
#[derive(Debug, Clone)]
pub struct StoredSession {
    pub session: Session,
    pub status: String,
}

/// One write of the hub's ordered queue. A batch of them is applied in one
/// transaction by [`Store::write_batch`] (group commit).
#[derive(Debug, Clone)]
pub enum Write {
    Visitor(i64, Box<Visitor>),
    Connection(String, Box<Connection>),
    Session(i64, Box<Session>, String),
    SessionAgent(String, Box<Agent>),
    Note(String, String, String),
    Communication(String, Box<Cobrowsesession>),
    /// A journey session (seed 003) of an account, upserted whole.
    JourneySession(i64, Box<JourneySession>),
    /// One tracked event, appended.
    JourneyEvent(Box<JourneyEventRow>),
    /// The hash of a visitor's secret (short_id, hash): after its `Visitor` write.
    VisitorSecret(String, String),
    /// An audit log entry, appended (its `id` is assigned by the store).
    Audit(Box<AuditEntry>),
    /// A cluster's lookup-code reservation (account, code, short_id) ends: the visitor
    /// left. Only PostgreSQL keeps reservations; SQLite has nothing to do.
    ReleaseLookupCode(i64, String, String),
    /// A recorded session's first records came: its recording's row (`recording`).
    RecordingStart(Box<RecordingStart>),
    /// Records appended to a recording (dropped when it was removed meanwhile).
    RecordingChunk(Box<RecordingChunk>),
    /// A recorded session ended (session id, when): `pending` until
    /// [`Store::finish_recording`] (its last chunk came before this).
    RecordingEnd(String, String),
}

/// A tracked event as stored: its ids, kind, name and time, and the event as the SDK
/// sent it (`data`, the `track` event JSON).
#[derive(Debug, Clone)]
pub struct JourneyEventRow {
    pub id: String,
    pub journey_session_id: String,
    pub account_id: i64,
    pub visitor_id: String,
    pub kind: &'static str,
    pub event_name: String,
    pub created_at: String,
    pub data: String,
}

impl Write {
    /// Writes with the same key replace each other (upserts of a whole record); notes
    /// and other appends have none.
    pub fn key(&self) -> Option<(u8, &str)> {
        match self {
            Write::Visitor(_, v) => Some((0, &v.short_id)),
            Write::Connection(_, c) => Some((1, &c.unique_connection_id)),
            Write::Session(_, s, _) => Some((2, &s.id)),
            Write::Communication(_, c) => Some((3, &c.id)),
            Write::JourneySession(_, j) => Some((4, &j.id)),
            Write::VisitorSecret(short_id, _) => Some((5, short_id)),
            Write::SessionAgent(..)
            | Write::Note(..)
            | Write::JourneyEvent(..)
            | Write::Audit(..)
            | Write::ReleaseLookupCode(..)
            | Write::RecordingStart(..)
            | Write::RecordingChunk(..)
            | Write::RecordingEnd(..) => None,
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies `writes` in order in one transaction and returns once it is committed
    /// (durable). The outer error means nothing was committed; the inner results say
    /// which single writes failed (the others are committed).
    async fn write_batch(&self, writes: Vec<Write>) -> StoreResult<Vec<StoreResult<()>>>;
    async fn get_visitor(&self, account_id: i64, short_id: &str) -> StoreResult<Option<Visitor>>;
    /// The hash of the visitor's secret: `None` for no such visitor, `Some(None)` for a
    /// visitor stored before visitors had secrets (it gets one at its next connect).
    async fn visitor_secret_hash(
        &self,
        account_id: i64,
        short_id: &str,
    ) -> StoreResult<Option<Option<String>>>;
    async fn list_visitors(&self, account_id: i64) -> StoreResult<Vec<Visitor>>;
    /// Deletes the visitor and its connections; nulls personal data in its sessions.
    /// Erases the visitor's personal data; its open journey sessions end now, or when
    /// they timed out (`journey_timeout_seconds` after their last event) if earlier.
    async fn erase_visitor(
        &self,
        now: Millis,
        account_id: i64,
        short_id: &str,
        journey_timeout_seconds: u64,
    ) -> StoreResult<bool>;
    async fn upsert_session(
        &self,
        account_id: i64,
        session: &Session,
        status: &str,
    ) -> StoreResult<()>;
    async fn get_session(&self, account_id: i64, id: &str) -> StoreResult<Option<StoredSession>>;
    async fn list_sessions(
        &self,
        account_id: i64,
        visitor_id: Option<&str>,
    ) -> StoreResult<Vec<StoredSession>>;
    async fn add_note(&self, session_id: &str, agent_id: &str, text: &str) -> StoreResult<()>;
    async fn list_communications(&self, session_id: &str) -> StoreResult<Vec<Cobrowsesession>>;
    /// After a restart nobody is connected: visitors go offline, live sessions end.
    async fn recover_after_restart(&self, now_iso: &str) -> StoreResult<()>;
    /// [`Store::recover_after_restart`] for the visitors whose [`slot_of`] is in `slots`
    /// only (a cluster node taking over a dead node's slots): they go offline, their
    /// live sessions end now, and those sessions' open communications are disconnected
    /// with `how` (`transport.failure` when their node failed). Returns how many live
    /// sessions it ended.
    async fn recover_slots(
        &self,
        now_iso: &str,
        slots: &[u16],
        how: DisconnectType,
    ) -> StoreResult<usize>;
    /// The visitor's most recent journey session.
    async fn latest_journey_session(
        &self,
        account_id: i64,
        visitor_id: &str,
    ) -> StoreResult<Option<JourneySession>>;
    async fn get_journey_session(
        &self,
        account_id: i64,
        id: &str,
    ) -> StoreResult<Option<JourneySession>>;
    /// Newest first, at most 1000.
    async fn list_journey_sessions(
        &self,
        account_id: i64,
        visitor_id: Option<&str>,
    ) -> StoreResult<Vec<JourneySession>>;
    /// Sessions started in `[from, to)` (ISO-8601 strings compare in time order),
    /// oldest first, at most `limit`.
    async fn sessions_started_between(
        &self,
        account_id: i64,
        from: &str,
        to: &str,
        limit: usize,
    ) -> StoreResult<Vec<StoredSession>>;
    /// The visitor a connection belongs to, if it was ever stored.
    async fn connection_visitor(&self, unique_connection_id: &str) -> StoreResult<Option<String>>;

    // ----- recordings (`store::recording`) ---------------------------------------------

    /// The recordings of these sessions of the account (the sessions that have one).
    async fn recordings(
        &self,
        account_id: i64,
        session_ids: &[String],
    ) -> StoreResult<Vec<RecordingInfo>>;
    /// A recording by its session's id, whatever its account (a signed link names only
    /// the session; the caller checks the account where a person asks).
    async fn recording(&self, session_id: &str) -> StoreResult<Option<RecordingInfo>>;
    /// Its records as stored so far (JSON lines, in order); empty when none are.
    async fn recording_lines(&self, session_id: &str) -> StoreResult<String>;
    /// Finalises a recording: `pending` → `ready`. False when it was not `pending`.
    async fn finish_recording(&self, session_id: &str) -> StoreResult<bool>;
    /// The background sweep: `pending` recordings (a node stopped before it finalised
    /// them) become `ready`, and `ready` ones that ended before `cutoff_iso` become
    /// `expired`, their records deleted. Returns (finalised, expired).
    async fn sweep_recordings(&self, cutoff_iso: &str) -> StoreResult<(usize, usize)>;
    /// An admin deletes a recording: `removed`, its records deleted. False when the
    /// account has none for that session.
    async fn remove_recording(&self, account_id: i64, session_id: &str) -> StoreResult<bool>;
    /// The server's key for signed links (32 random bytes, made on first use and then
    /// the same for every node that shares the database).
    async fn signing_key(&self) -> StoreResult<Vec<u8>>;
}

/// The migrations, in order. Never edit one that shipped; append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    CREATE TABLE accounts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE TABLE keys (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        public_key TEXT NOT NULL UNIQUE,
        secret_hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE TABLE visitors (
        short_id TEXT PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        data TEXT NOT NULL,
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE INDEX visitors_account ON visitors(account_id);
    CREATE TABLE connections (
        unique_connection_id TEXT PRIMARY KEY,
        short_id TEXT NOT NULL,
        data TEXT NOT NULL,
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE INDEX connections_visitor ON connections(short_id);
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        visitor_id TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX sessions_account_visitor ON sessions(account_id, visitor_id);
    CREATE TABLE session_agents (
        session_id TEXT NOT NULL REFERENCES sessions(id),
        agent_id TEXT NOT NULL,
        data TEXT NOT NULL,
        joined_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (session_id, agent_id)
    );
    CREATE TABLE notes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE INDEX notes_session ON notes(session_id);
    CREATE TABLE communications (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        role TEXT NOT NULL,
        data TEXT NOT NULL,
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE INDEX communications_session ON communications(session_id);
    "#,
    // 2: journey tracking (seed 003) and the analytics export's interval queries.
    r#"
    CREATE TABLE journey_sessions (
        id TEXT PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        visitor_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_event_at TEXT NOT NULL,
        ended_at TEXT,
        data TEXT NOT NULL
    );
    CREATE INDEX journey_sessions_visitor ON journey_sessions(account_id, visitor_id, created_at);
    CREATE TABLE journey_events (
        id TEXT PRIMARY KEY,
        journey_session_id TEXT NOT NULL REFERENCES journey_sessions(id),
        account_id INTEGER NOT NULL,
        visitor_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        event_name TEXT NOT NULL,
        created_at TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX journey_events_session ON journey_events(journey_session_id, created_at);
    CREATE INDEX journey_events_visitor ON journey_events(account_id, visitor_id);
    CREATE INDEX sessions_account_started ON sessions(account_id, started_at);
    "#,
    // 3: the trust model. Visitors prove who they are with a secret (its hash; NULL for
    // visitors from before, who get one at their next connect). Public keys are bound to
    // page origins (NULL: a key from before, any origin). Accounts have users with roles
    // and sign-in sessions, one-time links, and an append-only audit log.
    r#"
    ALTER TABLE visitors ADD COLUMN secret_hash TEXT;
    ALTER TABLE keys ADD COLUMN name TEXT;
    ALTER TABLE keys ADD COLUMN origins TEXT;
    ALTER TABLE keys ADD COLUMN allow_loopback INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE keys ADD COLUMN revoked_at TEXT;
    ALTER TABLE accounts ADD COLUMN site_url TEXT;
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        email TEXT NOT NULL UNIQUE,
        username TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        nickname TEXT NOT NULL,
        role TEXT NOT NULL,
        password_hash TEXT,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE INDEX users_account ON users(account_id);
    CREATE TABLE user_sessions (
        token_hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id),
        csrf_token TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL
    );
    CREATE INDEX user_sessions_user ON user_sessions(user_id);
    CREATE TABLE one_time_tokens (
        token_hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id),
        kind TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT
    );
    CREATE INDEX one_time_tokens_user ON one_time_tokens(user_id, kind);
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id INTEGER NOT NULL,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        ip TEXT,
        result TEXT NOT NULL
    );
    CREATE INDEX audit_log_account ON audit_log(account_id, id);
    CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    "#,
    // 4: session recordings (issue 18): a row per recording, one per chunk (whose data
    // is a file next to the database: `store::recording`), the account's setting (NULL:
    // the server's `--record-sessions`), and the server's secrets (the signing key).
    r#"
    CREATE TABLE recordings (
        session_id TEXT PRIMARY KEY,
        account_id INTEGER NOT NULL,
        visitor_id TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        chunks INTEGER NOT NULL DEFAULT 0,
        stored_bytes INTEGER NOT NULL DEFAULT 0,
        raw_bytes INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX recordings_account_visitor ON recordings(account_id, visitor_id);
    CREATE INDEX recordings_status ON recordings(status, ended_at);
    CREATE TABLE recording_chunks (
        session_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        stored_bytes INTEGER NOT NULL,
        raw_bytes INTEGER NOT NULL,
        PRIMARY KEY (session_id, seq)
    );
    CREATE TABLE server_secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    ALTER TABLE accounts ADD COLUMN record_sessions INTEGER;
    "#,
];

/// SQLite in WAL mode. One connection behind a mutex, used from tokio's blocking pool.
/// Recordings' chunks are files in `recordings` (`store::recording`).
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<rusqlite::Connection>>,
    recordings: Arc<PathBuf>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database and runs pending migrations.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Task(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = rusqlite::Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Durability contract: a write is acknowledged to a client only after the
        // transaction holding it committed (see `write_batch` and the hub's queue).
        // In WAL mode with synchronous=NORMAL a commit has been written to the WAL
        // file (in the OS page cache) when COMMIT returns, so it survives a crash of
        // this process (kill -9, panic, OOM kill): the kill -9 tests in
        // tests/robustness.rs check exactly that. Only an OS crash or power loss can
        // lose the last commits before the next WAL checkpoint's fsync; FULL would
        // fsync every commit to cover that too, at a cost per commit.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Every write's statement stays prepared (`apply`): parsing the SQL of each of
        // the ~2,000 writes a second of 200 navigating sessions was ~1.5 % of the server.
        conn.set_prepared_statement_cache_capacity(32);
        migrate(&conn)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            recordings: Arc::new(recording::sqlite_dir(path)),
        })
    }

    pub(crate) async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A poisoned lock means a panic mid-call; the connection itself is still
            // consistent (SQLite rolls back), so keep using it.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

impl SqliteStore {
    async fn write_one(&self, write: Write) -> StoreResult<()> {
        self.write_batch(vec![write]).await?.pop().unwrap_or(Ok(()))
    }
}

/// One write inside the batch's transaction (`root`: where recordings' files go).
fn apply(c: &rusqlite::Connection, root: &Path, write: &Write) -> StoreResult<()> {
    match write {
        Write::Visitor(account_id, visitor) => {
            c.prepare_cached(
                "INSERT INTO visitors (short_id, account_id, data) VALUES (?1, ?2, ?3)
                 ON CONFLICT(short_id) DO UPDATE SET data = excluded.data,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE visitors.account_id = excluded.account_id",
            )?
            .execute(params![
                visitor.short_id,
                account_id,
                serde_json::to_string(visitor)?
            ])?;
        }
        Write::Connection(short_id, connection) => {
            c.prepare_cached(
                "INSERT INTO connections (unique_connection_id, short_id, data) VALUES (?1, ?2, ?3)
                 ON CONFLICT(unique_connection_id) DO UPDATE SET data = excluded.data,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            )?
            .execute(params![
                connection.unique_connection_id,
                short_id,
                serde_json::to_string(connection)?
            ])?;
        }
        Write::Session(account_id, session, status) => {
            c.prepare_cached("INSERT INTO sessions (id, account_id, visitor_id, status, started_at, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(id) DO UPDATE SET status = excluded.status, data = excluded.data
                 WHERE sessions.account_id = excluded.account_id")?.execute(
                params![session.id, account_id, session.visitor_id, status, session.started_at, serde_json::to_string(session)?],
            )?;
        }
        Write::SessionAgent(session_id, agent) => {
            c.prepare_cached(
                "INSERT INTO session_agents (session_id, agent_id, data) VALUES (?1, ?2, ?3)
                 ON CONFLICT(session_id, agent_id) DO UPDATE SET data = excluded.data",
            )?
            .execute(params![session_id, agent.id, serde_json::to_string(agent)?])?;
        }
        Write::Note(session_id, agent_id, text) => {
            c.prepare_cached("INSERT INTO notes (session_id, agent_id, text) VALUES (?1, ?2, ?3)")?
                .execute(params![session_id, agent_id, text])?;
        }
        Write::Communication(session_id, communication) => {
            let role = communication_role(communication)?;
            c.prepare_cached(
                "INSERT INTO communications (id, session_id, role, data) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET data = excluded.data,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            )?
            .execute(params![
                communication.id,
                session_id,
                role,
                serde_json::to_string(communication)?
            ])?;
        }
        Write::JourneySession(account_id, j) => {
            c.prepare_cached("INSERT INTO journey_sessions (id, account_id, visitor_id, created_at, last_event_at, ended_at, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(id) DO UPDATE SET last_event_at = excluded.last_event_at,
                 ended_at = excluded.ended_at, data = excluded.data
                 WHERE journey_sessions.account_id = excluded.account_id")?.execute(
                params![
                    j.id,
                    account_id,
                    j.customer_id.as_deref().unwrap_or_default(),
                    j.created_date,
                    j.last_event.created_date,
                    j.ended_date,
                    serde_json::to_string(j)?
                ],
            )?;
        }
        Write::VisitorSecret(short_id, hash) => {
            c.prepare_cached("UPDATE visitors SET secret_hash = ?1 WHERE short_id = ?2")?
                .execute(params![hash, short_id])?;
        }
        // A single node keeps its lookup codes in memory.
        Write::ReleaseLookupCode(..) => {}
        Write::RecordingStart(r) => {
            c.prepare_cached(
                "INSERT INTO recordings (session_id, account_id, visitor_id, status, started_at)
                 VALUES (?1, ?2, ?3, 'recording', ?4) ON CONFLICT(session_id) DO NOTHING",
            )?
            .execute(params![
                r.session_id,
                r.account_id,
                r.visitor_id,
                r.started_at
            ])?;
        }
        Write::RecordingChunk(chunk) => {
            let open: Option<i64> = c
                .query_row(
                    &format!(
                        "SELECT 1 FROM recordings WHERE session_id = ?1 AND status IN {}",
                        recording::OPEN
                    ),
                    params![chunk.session_id],
                    |r| r.get(0),
                )
                .optional()?;
            if open.is_none() {
                return Ok(()); // removed (or never started): its records are not kept
            }
            let data = recording::gzip(&chunk.lines)?;
            // The file first: a row never names a chunk that is not on disk (a file
            // whose row did not commit is overwritten or deleted with the recording).
            recording::write_chunk_file(root, &chunk.session_id, chunk.seq, &data)?;
            let (stored, raw) = (data.len() as i64, chunk.lines.len() as i64);
            c.prepare_cached("INSERT INTO recording_chunks (session_id, seq, stored_bytes, raw_bytes) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(session_id, seq) DO UPDATE SET stored_bytes = excluded.stored_bytes, raw_bytes = excluded.raw_bytes")?.execute(
                params![chunk.session_id, chunk.seq, stored, raw],
            )?;
            c.prepare_cached("UPDATE recordings SET chunks = (SELECT COUNT(*) FROM recording_chunks WHERE session_id = ?1),
                 stored_bytes = (SELECT COALESCE(SUM(stored_bytes), 0) FROM recording_chunks WHERE session_id = ?1),
                 raw_bytes = (SELECT COALESCE(SUM(raw_bytes), 0) FROM recording_chunks WHERE session_id = ?1)
                 WHERE session_id = ?1")?.execute(
                params![chunk.session_id],
            )?;
        }
        Write::RecordingEnd(session_id, ended_at) => {
            c.prepare_cached("UPDATE recordings SET status = 'pending', ended_at = ?2 WHERE session_id = ?1 AND status = 'recording'")?.execute(
                params![session_id, ended_at],
            )?;
        }
        Write::Audit(a) => {
            c.prepare_cached(
                "INSERT INTO audit_log (account_id, at, actor, action, target, ip, result)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                a.account_id,
                a.at,
                a.actor,
                a.action,
                a.target,
                a.ip,
                a.result
            ])?;
        }
        Write::JourneyEvent(e) => {
            c.prepare_cached("INSERT INTO journey_events (id, journey_session_id, account_id, visitor_id, kind, event_name, created_at, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?.execute(
                params![
                    e.id,
                    e.journey_session_id,
                    e.account_id,
                    e.visitor_id,
                    e.kind,
                    e.event_name,
                    e.created_at,
                    e.data
                ],
            )?;
        }
    }
    Ok(())
}

fn parse_journeys(rows: Vec<String>) -> StoreResult<Vec<JourneySession>> {
    rows.iter().map(|d| Ok(serde_json::from_str(d)?)).collect()
}

fn migrate(conn: &rusqlite::Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
    )?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version > current {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES (?1)",
                params![version],
            )?;
            tx.commit()?;
        }
    }
    Ok(())
}

fn parse_sessions(rows: Vec<(String, String)>) -> StoreResult<Vec<StoredSession>> {
    rows.into_iter()
        .map(|(data, status)| {
            Ok(StoredSession {
                session: serde_json::from_str(&data)?,
                status,
            })
        })
        .collect()
}

/// What erasing a visitor leaves of a journey session: it ends (now, unless it had
/// ended or timed out before: `timeout` seconds after its last event), and loses the
/// IP, GeoIP, user agent, pages, referrer, campaign, search terms and attributes.
/// Counts, dates and ids stay.
pub fn erase_journey(j: &mut JourneySession, now: Millis, timeout: u64) {
    if j.ended_date.is_none() {
        let last = covisit::core::journey::tracker::last_activity(j);
        j.ended_date = Some(now.min(last.plus_seconds(timeout)).max(last).to_iso8601());
    }
    j.ip_address = None;
    j.ip_organization = None;
    j.geolocation = None;
    j.user_agent_string = None;
    j.last_page = None;
    j.referrer = None;
    j.mkt_campaign = None;
    j.search_terms.clear();
    j.attributes.clear();
    j.attribute_lists.clear();
}

#[async_trait]
impl Store for SqliteStore {
    async fn write_batch(&self, writes: Vec<Write>) -> StoreResult<Vec<StoreResult<()>>> {
        let root = self.recordings.clone();
        self.run(move |c| {
            let tx = c.transaction()?;
            // A failing statement is rolled back alone (SQLite's default ABORT); the
            // rest of the batch still commits.
            let results = writes.iter().map(|w| apply(&tx, &root, w)).collect();
            tx.commit()?;
            Ok(results)
        })
        .await
    }

    async fn get_visitor(&self, account_id: i64, short_id: &str) -> StoreResult<Option<Visitor>> {
        let short_id = short_id.to_string();
        self.run(move |c| {
            let data: Option<String> = c
                .query_row(
                    "SELECT data FROM visitors WHERE short_id = ?1 AND account_id = ?2",
                    params![short_id, account_id],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(data.map(|d| serde_json::from_str(&d)).transpose()?)
        })
        .await
    }

    async fn visitor_secret_hash(
        &self,
        account_id: i64,
        short_id: &str,
    ) -> StoreResult<Option<Option<String>>> {
        let short_id = short_id.to_string();
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT secret_hash FROM visitors WHERE short_id = ?1 AND account_id = ?2",
                params![short_id, account_id],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn list_visitors(&self, account_id: i64) -> StoreResult<Vec<Visitor>> {
        self.run(move |c| {
            let mut stmt = c.prepare("SELECT data FROM visitors WHERE account_id = ?1 ORDER BY updated_at DESC LIMIT 1000")?;
            let rows = stmt.query_map(params![account_id], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
            rows.iter().map(|d| Ok(serde_json::from_str(d)?)).collect()
        })
        .await
    }

    async fn erase_visitor(
        &self,
        now: Millis,
        account_id: i64,
        short_id: &str,
        journey_timeout_seconds: u64,
    ) -> StoreResult<bool> {
        let short_id = short_id.to_string();
        let root = self.recordings.clone();
        self.run(move |c| {
            let tx = c.transaction()?;
            let deleted = tx.execute(
                "DELETE FROM visitors WHERE short_id = ?1 AND account_id = ?2",
                params![short_id, account_id],
            )?;
            // Recordings show the person's page: they go, their rows say `removed`.
            let recorded: Vec<String> = {
                let mut stmt = tx.prepare(
                    "SELECT session_id FROM recordings WHERE account_id = ?1 AND visitor_id = ?2",
                )?;
                let rows = stmt
                    .query_map(params![account_id, short_id], |r| r.get(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                rows
            };
            for id in &recorded {
                remove_recording_rows(&tx, id)?;
            }
            tx.execute(
                "DELETE FROM connections WHERE short_id = ?1",
                params![short_id],
            )?;
            let rows: Vec<(String, String)> = {
                let mut stmt = tx.prepare(
                    "SELECT id, data FROM sessions WHERE account_id = ?1 AND visitor_id = ?2",
                )?;
                let rows = stmt
                    .query_map(params![account_id, short_id], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                rows
            };
            // Journey tracking: the events go (their attributes and URLs are the page's
            // data about this person); the sessions end and keep only counts and dates.
            tx.execute(
                "DELETE FROM journey_events WHERE account_id = ?1 AND visitor_id = ?2",
                params![account_id, short_id],
            )?;
            let journeys: Vec<(String, String)> = {
                let mut stmt = tx.prepare(
                    "SELECT id, data FROM journey_sessions WHERE account_id = ?1 AND visitor_id = ?2",
                )?;
                let rows = stmt
                    .query_map(params![account_id, short_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                rows
            };
            let had_journeys = !journeys.is_empty();
            for (id, data) in journeys {
                let mut j: JourneySession = serde_json::from_str(&data)?;
                erase_journey(&mut j, now, journey_timeout_seconds);
                tx.execute(
                    "UPDATE journey_sessions SET ended_at = ?1, data = ?2 WHERE id = ?3",
                    params![j.ended_date, serde_json::to_string(&j)?, id],
                )?;
            }
            let had_sessions = !rows.is_empty() || had_journeys;
            for (id, data) in rows {
                let mut session: Session = serde_json::from_str(&data)?;
                erase_session(&mut session);
                tx.execute(
                    "UPDATE sessions SET data = ?1 WHERE id = ?2",
                    params![serde_json::to_string(&session)?, id],
                )?;
            }
            tx.commit()?;
            // After the commit: the rows no longer name the files.
            for id in &recorded {
                recording::delete_files(&root, id)?;
            }
            Ok(deleted > 0 || had_sessions)
        })
        .await
    }

    async fn upsert_session(
        &self,
        account_id: i64,
        session: &Session,
        status: &str,
    ) -> StoreResult<()> {
        self.write_one(Write::Session(
            account_id,
            Box::new(session.clone()),
            status.to_string(),
        ))
        .await
    }

    async fn get_session(&self, account_id: i64, id: &str) -> StoreResult<Option<StoredSession>> {
        let id = id.to_string();
        self.run(move |c| {
            let row: Option<(String, String)> = c
                .query_row(
                    "SELECT data, status FROM sessions WHERE id = ?1 AND account_id = ?2",
                    params![id, account_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            Ok(parse_sessions(row.into_iter().collect())?.pop())
        })
        .await
    }

    async fn list_sessions(
        &self,
        account_id: i64,
        visitor_id: Option<&str>,
    ) -> StoreResult<Vec<StoredSession>> {
        let visitor_id = visitor_id.map(str::to_string);
        self.run(move |c| {
            let mut stmt = c.prepare(
                "SELECT data, status FROM sessions WHERE account_id = ?1 AND (?2 IS NULL OR visitor_id = ?2)
                 ORDER BY started_at DESC LIMIT 1000",
            )?;
            let rows = stmt
                .query_map(params![account_id, visitor_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            parse_sessions(rows)
        })
        .await
    }

    async fn add_note(&self, session_id: &str, agent_id: &str, text: &str) -> StoreResult<()> {
        self.write_one(Write::Note(
            session_id.to_string(),
            agent_id.to_string(),
            text.to_string(),
        ))
        .await
    }

    async fn list_communications(&self, session_id: &str) -> StoreResult<Vec<Cobrowsesession>> {
        let sid = session_id.to_string();
        self.run(move |c| {
            // The sharer first, then viewers in the order they joined.
            let mut stmt = c.prepare(
                "SELECT data FROM communications WHERE session_id = ?1 ORDER BY role = 'viewer', rowid",
            )?;
            let rows = stmt.query_map(params![sid], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
            rows.iter().map(|d| Ok(serde_json::from_str(d)?)).collect()
        })
        .await
    }

    async fn latest_journey_session(
        &self,
        account_id: i64,
        visitor_id: &str,
    ) -> StoreResult<Option<JourneySession>> {
        let visitor_id = visitor_id.to_string();
        self.run(move |c| {
            let data: Option<String> = c
                .query_row(
                    "SELECT data FROM journey_sessions WHERE account_id = ?1 AND visitor_id = ?2
                     ORDER BY created_at DESC, rowid DESC LIMIT 1",
                    params![account_id, visitor_id],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(data.map(|d| serde_json::from_str(&d)).transpose()?)
        })
        .await
    }

    async fn get_journey_session(
        &self,
        account_id: i64,
        id: &str,
    ) -> StoreResult<Option<JourneySession>> {
        let id = id.to_string();
        self.run(move |c| {
            let data: Option<String> = c
                .query_row(
                    "SELECT data FROM journey_sessions WHERE id = ?1 AND account_id = ?2",
                    params![id, account_id],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(data.map(|d| serde_json::from_str(&d)).transpose()?)
        })
        .await
    }

    async fn list_journey_sessions(
        &self,
        account_id: i64,
        visitor_id: Option<&str>,
    ) -> StoreResult<Vec<JourneySession>> {
        let visitor_id = visitor_id.map(str::to_string);
        self.run(move |c| {
            let mut stmt = c.prepare(
                "SELECT data FROM journey_sessions WHERE account_id = ?1 AND (?2 IS NULL OR visitor_id = ?2)
                 ORDER BY created_at DESC, rowid DESC LIMIT 1000",
            )?;
            let rows = stmt
                .query_map(params![account_id, visitor_id], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            parse_journeys(rows)
        })
        .await
    }

    async fn sessions_started_between(
        &self,
        account_id: i64,
        from: &str,
        to: &str,
        limit: usize,
    ) -> StoreResult<Vec<StoredSession>> {
        let (from, to) = (from.to_string(), to.to_string());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |c| {
            let mut stmt = c.prepare(
                "SELECT data, status FROM sessions WHERE account_id = ?1 AND started_at >= ?2 AND started_at < ?3
                 ORDER BY started_at, rowid LIMIT ?4",
            )?;
            let rows = stmt
                .query_map(params![account_id, from, to, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            parse_sessions(rows)
        })
        .await
    }

    async fn connection_visitor(&self, unique_connection_id: &str) -> StoreResult<Option<String>> {
        let id = unique_connection_id.to_string();
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT short_id FROM connections WHERE unique_connection_id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn recordings(
        &self,
        account_id: i64,
        session_ids: &[String],
    ) -> StoreResult<Vec<RecordingInfo>> {
        let ids = session_ids.to_vec();
        self.run(move |c| {
            let mut stmt = c.prepare(&format!(
                "{RECORDING_COLUMNS} WHERE account_id = ?1 AND session_id = ?2"
            ))?;
            let mut out = Vec::new();
            for id in &ids {
                if let Some(r) = stmt
                    .query_row(params![account_id, id], recording_row)
                    .optional()?
                {
                    out.push(r);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn recording(&self, session_id: &str) -> StoreResult<Option<RecordingInfo>> {
        let id = session_id.to_string();
        self.run(move |c| {
            Ok(c.query_row(
                &format!("{RECORDING_COLUMNS} WHERE session_id = ?1"),
                params![id],
                recording_row,
            )
            .optional()?)
        })
        .await
    }

    async fn recording_lines(&self, session_id: &str) -> StoreResult<String> {
        let id = session_id.to_string();
        let root = self.recordings.clone();
        let seqs: Vec<i64> = {
            let id = id.clone();
            self.run(move |c| {
                let mut stmt = c.prepare(
                    "SELECT seq FROM recording_chunks WHERE session_id = ?1 ORDER BY seq",
                )?;
                let rows = stmt
                    .query_map(params![id], |r| r.get(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?
        };
        // Files are read outside the database's lock.
        tokio::task::spawn_blocking(move || {
            let mut out = String::new();
            for seq in seqs {
                let path = recording::chunk_path(&root, &id, seq)?;
                let data = std::fs::read(&path)
                    .map_err(|e| StoreError::Task(format!("recording file: {e}")))?;
                out.push_str(&recording::gunzip(&data)?);
            }
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    async fn finish_recording(&self, session_id: &str) -> StoreResult<bool> {
        let id = session_id.to_string();
        self.run(move |c| {
            Ok(c.execute(
                "UPDATE recordings SET status = 'ready' WHERE session_id = ?1 AND status = 'pending'",
                params![id],
            )? > 0)
        })
        .await
    }

    async fn sweep_recordings(&self, cutoff_iso: &str) -> StoreResult<(usize, usize)> {
        let cutoff = cutoff_iso.to_string();
        let root = self.recordings.clone();
        self.run(move |c| {
            let tx = c.transaction()?;
            let finished = tx.execute(
                "UPDATE recordings SET status = 'ready' WHERE status = 'pending'",
                [],
            )?;
            let due: Vec<String> = {
                let mut stmt = tx.prepare(
                    "SELECT session_id FROM recordings WHERE status = 'ready'
                     AND COALESCE(ended_at, started_at) <= ?1",
                )?;
                let rows = stmt
                    .query_map(params![cutoff], |r| r.get(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                rows
            };
            for id in &due {
                tx.execute(
                    "UPDATE recordings SET status = 'expired' WHERE session_id = ?1",
                    params![id],
                )?;
                tx.execute(
                    "DELETE FROM recording_chunks WHERE session_id = ?1",
                    params![id],
                )?;
            }
            tx.commit()?;
            for id in &due {
                recording::delete_files(&root, id)?;
            }
            Ok((finished, due.len()))
        })
        .await
    }

    async fn remove_recording(&self, account_id: i64, session_id: &str) -> StoreResult<bool> {
        let id = session_id.to_string();
        let root = self.recordings.clone();
        self.run(move |c| {
            let tx = c.transaction()?;
            let known: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM recordings WHERE session_id = ?1 AND account_id = ?2",
                    params![id, account_id],
                    |r| r.get(0),
                )
                .optional()?;
            if known.is_none() {
                return Ok(false);
            }
            remove_recording_rows(&tx, &id)?;
            tx.commit()?;
            recording::delete_files(&root, &id)?;
            Ok(true)
        })
        .await
    }

    async fn signing_key(&self) -> StoreResult<Vec<u8>> {
        let fresh = new_signing_key();
        self.run(move |c| {
            c.execute(
                "INSERT INTO server_secrets (name, value) VALUES ('signing_key', ?1) ON CONFLICT(name) DO NOTHING",
                params![fresh],
            )?;
            let key: String = c.query_row(
                "SELECT value FROM server_secrets WHERE name = 'signing_key'",
                [],
                |r| r.get(0),
            )?;
            hex::decode(key).map_err(|e| StoreError::Task(format!("signing key: {e}")))
        })
        .await
    }

    async fn recover_after_restart(&self, now_iso: &str) -> StoreResult<()> {
        let now_iso = now_iso.to_string();
        self.run(move |c| recover(c, &now_iso, None, DisconnectType::System).map(drop))
            .await
    }

    async fn recover_slots(
        &self,
        now_iso: &str,
        slots: &[u16],
        how: DisconnectType,
    ) -> StoreResult<usize> {
        let now_iso = now_iso.to_string();
        let slots = slots.to_vec();
        self.run(move |c| recover(c, &now_iso, Some(&slots), how))
            .await
    }
}

/// Recovery in one transaction: every visitor that may be online (or, with `slots`,
/// those in the slots) goes offline, and their live sessions end. SQLite has no slot
/// column: the slots are computed here. Returns the number of sessions ended.
fn recover(
    c: &mut rusqlite::Connection,
    now_iso: &str,
    slots: Option<&[u16]>,
    how: DisconnectType,
) -> StoreResult<usize> {
    let in_scope = |short_id: &str| slots.is_none_or(|s| s.contains(&slot_of(short_id)));
    let tx = c.transaction()?;
    let visitors: Vec<(String, String)> = {
        let mut stmt = tx.prepare(&format!(
            "SELECT short_id, data FROM visitors WHERE {MAYBE_ONLINE}"
        ))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows
    };
    for (id, data) in visitors.into_iter().filter(|(id, _)| in_scope(id)) {
        let mut v: Visitor = serde_json::from_str(&data)?;
        set_offline(&mut v);
        tx.execute(
            "UPDATE visitors SET data = ?1 WHERE short_id = ?2",
            params![serde_json::to_string(&v)?, id],
        )?;
    }
    let sessions: Vec<(String, String, String)> = {
        let mut stmt =
            tx.prepare("SELECT id, visitor_id, data FROM sessions WHERE status != 'ended'")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows
    };
    let mut ended = 0;
    for (id, _, data) in sessions
        .into_iter()
        .filter(|(_, visitor, _)| in_scope(visitor))
    {
        let mut s: Session = serde_json::from_str(&data)?;
        let end = end_live_session(&mut s, now_iso);
        tx.execute(
            "UPDATE sessions SET status = 'ended', data = ?1 WHERE id = ?2",
            params![serde_json::to_string(&s)?, id],
        )?;
        ended += 1;
        let comms: Vec<(String, String)> = {
            let mut stmt =
                tx.prepare("SELECT id, data FROM communications WHERE session_id = ?1")?;
            let rows = stmt
                .query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            rows
        };
        for (cid, data) in comms {
            let mut c: Cobrowsesession = serde_json::from_str(&data)?;
            if close_by_server(&mut c, &end, how) {
                tx.execute(
                    "UPDATE communications SET data = ?1 WHERE id = ?2",
                    params![serde_json::to_string(&c)?, cid],
                )?;
            }
        }
    }
    // Recordings of sessions that are over now: `pending` (the sweep finalises them).
    tx.execute(
        "UPDATE recordings SET status = 'pending', ended_at = COALESCE(ended_at, ?1)
         WHERE status = 'recording' AND session_id IN (SELECT id FROM sessions WHERE status = 'ended')",
        params![now_iso],
    )?;
    tx.commit()?;
    Ok(ended)
}

/// The columns of [`RecordingInfo`], as `recording_row` reads them.
const RECORDING_COLUMNS: &str = "SELECT session_id, account_id, visitor_id, status, started_at, ended_at, chunks, stored_bytes, raw_bytes FROM recordings";

fn recording_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordingInfo> {
    Ok(RecordingInfo {
        session_id: r.get(0)?,
        account_id: r.get(1)?,
        visitor_id: r.get(2)?,
        status: r.get(3)?,
        started_at: r.get(4)?,
        ended_at: r.get(5)?,
        chunks: r.get(6)?,
        stored_bytes: r.get(7)?,
        raw_bytes: r.get(8)?,
    })
}

/// A recording becomes `removed`: its chunks' rows go (the caller deletes the files
/// after the commit).
fn remove_recording_rows(tx: &rusqlite::Transaction<'_>, session_id: &str) -> StoreResult<()> {
    tx.execute(
        "UPDATE recordings SET status = 'removed', chunks = 0, stored_bytes = 0, raw_bytes = 0 WHERE session_id = ?1",
        params![session_id],
    )?;
    tx.execute(
        "DELETE FROM recording_chunks WHERE session_id = ?1",
        params![session_id],
    )?;
    Ok(())
}

/// 32 random bytes as hex: a signing key, should the store have none yet.
pub fn new_signing_key() -> String {
    use rand::RngCore;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    hex::encode(key)
}

/// Which visitors recovery reads (a cheap filter on the JSON; the JSON then decides).
const MAYBE_ONLINE: &str =
    r#"(data LIKE '%"is_online":true%' OR data LIKE '%"is_in_session":true%')"#;

/// A visitor nobody is connected to any more.
fn set_offline(v: &mut Visitor) {
    v.is_online = false;
    v.is_in_session = false;
    v.is_waiting_for_call = false;
}

/// Ends a session that was live when its server stopped: at `now_iso` unless it had an
/// end already, with its length up to then. Returns the end.
fn end_live_session(s: &mut Session, now_iso: &str) -> String {
    let end = s
        .ended_at
        .get_or_insert_with(|| now_iso.to_string())
        .clone();
    if let (Some(from), Some(to)) = (
        Millis::parse_iso8601(&s.started_at),
        Millis::parse_iso8601(&end),
    ) {
        s.length_seconds = to.seconds_since(from);
        s.formatted_length = derive::formatted_length(s.length_seconds);
    }
    end
}

/// A communication of a session that ended at `end` without its people: the server
/// closed it and its open segments then, `how` (`system` after a restart,
/// `transport.failure` after a node failed). False when it was closed already (nothing
/// to write).
fn close_by_server(c: &mut Cobrowsesession, end: &str, how: DisconnectType) -> bool {
    if c.state == CommunicationState::Disconnected {
        return false;
    }
    for seg in c.segments.iter_mut().filter(|seg| seg.end_time.is_none()) {
        seg.end_time = Some(end.to_string());
        seg.how_ended = Some("disconnect".to_string());
        seg.disconnect_type = Some(how);
    }
    c.state = CommunicationState::Disconnected;
    c.disconnect_type = Some(how);
    c.disconnected_time = Some(end.to_string());
    c.provider_event_time = end.to_string();
    c.controlling.clear();
    true
}

/// What erasing a visitor leaves of its sessions: no IP, email, unique id, nor the
/// `visitor_…` metadata.
fn erase_session(session: &mut Session) {
    session.visitor_ip_address = None;
    session.visitor_email = None;
    session.visitor_unique_id = None;
    session.metadata.retain(|k, _| !k.starts_with("visitor_"));
}

/// The `role` column of a communication: `sharer` or `viewer`.
fn communication_role(c: &Cobrowsesession) -> StoreResult<String> {
    Ok(serde_json::to_value(c.cobrowse_role)?
        .as_str()
        .unwrap_or("viewer")
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Directory;

    #[test]
    fn slot_of_is_the_first_byte_of_sha256() {
        // SHA-256("") = e3b0…, SHA-256("abc") = ba78…: fixed forever (stored slots).
        assert_eq!(slot_of(""), 0xe3);
        assert_eq!(slot_of("abc"), 0xba);
        let slots: std::collections::BTreeSet<u16> =
            (0..4096).map(|i| slot_of(&format!("v_{i}"))).collect();
        assert_eq!(slots.len(), 256, "every one of the 256 slots is used");
        assert!(slots.iter().all(|s| *s < 256));
    }

    #[tokio::test]
    async fn migrations_run_once_and_reopening_keeps_data() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nested/covisit.db");
        let store = SqliteStore::open(&path).expect("opens");
        let id = Directory::create_account(&store, "a")
            .await
            .expect("account");
        store
            .create_key(
                id,
                None,
                "pk_1",
                "h1",
                Some(&[]),
                false,
                "2026-01-01T00:00:00.000Z",
            )
            .await
            .expect("key");
        drop(store);
        let store = SqliteStore::open(&path).expect("reopens");
        assert_eq!(
            store
                .key("pk_1")
                .await
                .expect("query")
                .map(|k| k.account_id),
            Some(id)
        );
        assert_eq!(
            store.account_by_secret("h1").await.expect("query"),
            Some((id, "pk_1".to_string()))
        );
        assert_eq!(store.account_by_secret("pk_1").await.expect("query"), None);
        assert!(store
            .revoke_key(id, "pk_1", "2026-01-02T00:00:00.000Z")
            .await
            .expect("revoke"));
        assert_eq!(store.account_by_secret("h1").await.expect("query"), None);
        let conn = store.conn.lock().expect("not poisoned");
        let versions: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .expect("count");
        assert_eq!(versions, MIGRATIONS.len() as i64);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(mode, "wal");
    }
}
