//! Session recordings as the store keeps them (issue 18): a row per recorded session in
//! `recordings` (its `video_status` once the session is over, its size), and the
//! records themselves in gzipped chunks, appended in order by the hub's writer.
//!
//! Where the chunks live:
//! - SQLite: files next to the database, `<database>-recordings/<session_id>/<seq>.gz`
//!   (named like SQLite's own `-wal`, so two databases in one folder never share
//!   them). Recordings are large, written once and deleted whole; in the database they
//!   would bloat the file and its WAL, and a deleted recording's pages would stay in the
//!   file until a `VACUUM`. On disk, deleting a recording frees its space at once, and
//!   the database (and its backups) stay small. The row says which chunks exist: a file
//!   without its row (a crash between the two) is never read, and is deleted with the
//!   recording.
//! - PostgreSQL: rows of `recording_chunks` (`bytea`), so that every node of a cluster
//!   reads any recording; only the visitor's owner node writes them, through its fenced
//!   writer.
//!
//! A record is one line of JSON: `[t, "m", tab, records]` (a mirror frame as the agents
//! received it; `t` is the server's clock, ms since the epoch), `[t, "e", action,
//! actor, result]` (an event of the session's audit trail: authorize, control,
//! redirect, join, end) or `[t, "n", agent, text]` (an agent's note). Nothing else of
//! the session is in it.

use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use super::{StoreError, StoreResult};

/// A recording's state (`recordings`), without its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingInfo {
    pub session_id: String,
    pub account_id: i64,
    pub visitor_id: String,
    /// The Session's `video_status` from the store: `recording`, `pending` (the
    /// session is over, the last chunk is being finalised), `ready`, `expired`,
    /// `removed`.
    pub status: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// How many chunks, and their stored (gzipped) and raw sizes in bytes.
    pub chunks: i64,
    pub stored_bytes: i64,
    pub raw_bytes: i64,
}

/// The first write of a recording: its row, in the state `recording`.
#[derive(Debug, Clone)]
pub struct RecordingStart {
    pub account_id: i64,
    pub session_id: String,
    pub visitor_id: String,
    pub started_at: String,
}

/// Records appended to a recording: JSON lines, each ending with `\n`. Stored only
/// while the recording is `recording` or `pending` (one that was removed meanwhile
/// stays removed).
#[derive(Debug, Clone)]
pub struct RecordingChunk {
    pub session_id: String,
    pub seq: i64,
    pub lines: String,
}

pub fn gzip(text: &str) -> StoreResult<Vec<u8>> {
    let mut e = GzEncoder::new(Vec::with_capacity(text.len() / 8), Compression::default());
    e.write_all(text.as_bytes())
        .map_err(|e| StoreError::Task(format!("gzip: {e}")))?;
    e.finish()
        .map_err(|e| StoreError::Task(format!("gzip: {e}")))
}

pub fn gunzip(bytes: &[u8]) -> StoreResult<String> {
    let mut out = String::new();
    GzDecoder::new(bytes)
        .read_to_string(&mut out)
        .map_err(|e| StoreError::Task(format!("a recording chunk does not decompress: {e}")))?;
    Ok(out)
}

/// Where a SQLite database keeps its recordings.
pub fn sqlite_dir(database: &Path) -> PathBuf {
    let mut name = database
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "covisit.db".into());
    name.push("-recordings");
    database.with_file_name(name)
}

/// The folder of one recording. Session ids are checked ids (`A-Z a-z 0-9 _ -`, at most
/// 64 bytes: `covisit::core::ids`), so one is a plain file name; anything else is refused.
pub fn session_dir(root: &Path, session_id: &str) -> StoreResult<PathBuf> {
    if !covisit::core::ids::valid_id(session_id) {
        return Err(StoreError::Task("not a session id".into()));
    }
    Ok(root.join(session_id))
}

pub fn chunk_path(root: &Path, session_id: &str, seq: i64) -> StoreResult<PathBuf> {
    Ok(session_dir(root, session_id)?.join(format!("{seq:08}.gz")))
}

/// Writes a chunk's file (replacing a leftover of the same number).
pub fn write_chunk_file(root: &Path, session_id: &str, seq: i64, data: &[u8]) -> StoreResult<()> {
    let path = chunk_path(root, session_id, seq)?;
    let io = |e: std::io::Error| StoreError::Task(format!("recording file: {e}"));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(&path, data).map_err(io)
}

/// Deletes a recording's files (nothing to do when there are none).
pub fn delete_files(root: &Path, session_id: &str) -> StoreResult<()> {
    match std::fs::remove_dir_all(session_dir(root, session_id)?) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::Task(format!("recording files: {e}"))),
    }
}

/// Statuses in which chunks may still be added.
pub const OPEN: &str = "('recording', 'pending')";
