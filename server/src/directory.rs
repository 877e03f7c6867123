//! Who may do what, persisted: accounts, their keys (with allowed origins), their users
//! (agents, supervisors, admins), sign-in sessions, one-time links (invites, password
//! resets, personal-link confirmations) and the append-only audit log. The [`Directory`]
//! trait is the seam: [`SqliteStore`] implements it here, on the same database as the
//! rest (migration 3 of `store.rs`), and `PgStore` in [`pg`] (migration 1 of
//! `store/pg.rs`).
//!
//! Secrets are never stored: session tokens and one-time links as SHA-256 hashes,
//! passwords as argon2id PHC strings. Times are passed in (ISO-8601), not read here.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::auth::Role;
use crate::store::{SqliteStore, StoreError, StoreResult};

mod pg;

/// A public/secret key pair of an account, without the secret.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRecord {
    #[serde(skip)]
    pub account_id: i64,
    pub public_key: String,
    pub name: Option<String>,
    /// Allowed page origins (`https://shop.example`, `https://*.shop.example`). `None`:
    /// a key from before origins existed, which accepts any origin (logged at start-up).
    pub origins: Option<Vec<String>>,
    /// `--dev` demo keys: any loopback origin is allowed too.
    pub allow_loopback: bool,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// A person who signs in to the console.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// `u_…`: the seed Agent's id for console users.
    pub id: String,
    pub account_id: i64,
    /// Lowercase; unique across the server (sign-in is by email).
    pub email: String,
    /// Unique across the server: the personal link is `/call/{username}`.
    pub username: String,
    pub name: String,
    pub nickname: String,
    pub role: Role,
    /// argon2id PHC string; `None` until the invite was accepted.
    pub password_hash: Option<String>,
    pub disabled: bool,
    pub created_at: String,
}

/// A signed-in console (the cookie holds the token; only its hash is stored).
#[derive(Debug, Clone)]
pub struct AuthSession {
    pub token_hash: String,
    pub user_id: String,
    pub csrf_token: String,
    pub created_at: String,
    pub last_seen_at: String,
}

/// What a one-time link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Set the first password of an invited user.
    Invite,
    /// Set a new password (issued by an admin).
    Reset,
    /// A visitor confirmed an agent's personal link; the SDK redeems it once.
    Call,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Invite => "invite",
            TokenKind::Reset => "reset",
            TokenKind::Call => "call",
        }
    }
}

pub use crate::store::AuditEntry;

/// Which entries `list_audit` returns (all given conditions hold).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub since: Option<String>,
    pub until: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Only entries older than this id (the previous page's last id).
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// A user with this email or username exists already.
#[derive(Debug)]
pub enum CreateUserError {
    EmailTaken,
    UsernameTaken,
    Store(StoreError),
}

/// Held while a node sets the installation up (`setup::dev_account`): dropping it lets
/// the next node in.
pub struct SetupGuard(#[allow(dead_code)] Option<Box<dyn Send + Sync>>); // held, never read

#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// Waits until no other process sets the installation up, and holds that until the
    /// guard is dropped: nodes of a cluster starting together (`scripts/cluster`)
    /// then create the demo account once, the others find it. SQLite has one server
    /// process: nothing to wait for.
    async fn setup_guard(&self) -> StoreResult<SetupGuard> {
        Ok(SetupGuard(None))
    }
    async fn create_account(&self, name: &str) -> StoreResult<i64>;
    async fn account_by_name(&self, name: &str) -> StoreResult<Option<i64>>;
    async fn accounts(&self) -> StoreResult<Vec<(i64, String)>>;
    async fn account_name(&self, account_id: i64) -> StoreResult<Option<String>>;
    /// Where personal links send visitors (the account's site).
    async fn site_url(&self, account_id: i64) -> StoreResult<Option<String>>;
    async fn set_site_url(&self, account_id: i64, url: Option<&str>) -> StoreResult<()>;
    /// Whether the account records sessions: `None` when it never chose (the server's
    /// `--record-sessions` decides).
    async fn record_sessions(&self, account_id: i64) -> StoreResult<Option<bool>>;
    async fn set_record_sessions(&self, account_id: i64, on: Option<bool>) -> StoreResult<()>;

    #[allow(clippy::too_many_arguments)] // one row's columns
    async fn create_key(
        &self,
        account_id: i64,
        name: Option<&str>,
        public_key: &str,
        secret_hash: &str,
        origins: Option<&[String]>,
        allow_loopback: bool,
        now: &str,
    ) -> StoreResult<()>;
    /// A key by its public half, revoked or not.
    async fn key(&self, public_key: &str) -> StoreResult<Option<KeyRecord>>;
    async fn keys(&self, account_id: i64) -> StoreResult<Vec<KeyRecord>>;
    /// The account and public key of an unrevoked secret key.
    async fn account_by_secret(&self, secret_hash: &str) -> StoreResult<Option<(i64, String)>>;
    async fn set_key_origins(
        &self,
        account_id: i64,
        public_key: &str,
        origins: &[String],
    ) -> StoreResult<bool>;
    async fn revoke_key(&self, account_id: i64, public_key: &str, now: &str) -> StoreResult<bool>;
    /// `--dev`: the demo keys also take any loopback origin.
    async fn set_key_allow_loopback(&self, public_key: &str, allow: bool) -> StoreResult<()>;

    async fn create_user(&self, user: &UserRecord) -> Result<(), CreateUserError>;
    async fn user(&self, id: &str) -> StoreResult<Option<UserRecord>>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>>;
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    async fn users(&self, account_id: i64) -> StoreResult<Vec<UserRecord>>;
    async fn set_user_role(&self, id: &str, role: Role) -> StoreResult<()>;
    async fn set_user_disabled(&self, id: &str, disabled: bool) -> StoreResult<()>;
    async fn set_user_password(&self, id: &str, password_hash: &str) -> StoreResult<()>;

    async fn create_auth_session(&self, session: &AuthSession) -> StoreResult<()>;
    async fn auth_session(&self, token_hash: &str) -> StoreResult<Option<AuthSession>>;
    async fn touch_auth_session(&self, token_hash: &str, now: &str) -> StoreResult<()>;
    async fn delete_auth_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Signs the user out everywhere (disabled, password changed).
    async fn delete_user_sessions(&self, user_id: &str) -> StoreResult<()>;

    async fn create_token(
        &self,
        token_hash: &str,
        user_id: &str,
        kind: TokenKind,
        expires_at: &str,
    ) -> StoreResult<()>;
    /// Uses a one-time link: the user it is for, when it exists, is of `kind`, has not
    /// expired (`now` < expiry) and was not used (it is marked used atomically).
    async fn take_token(
        &self,
        token_hash: &str,
        kind: TokenKind,
        now: &str,
    ) -> StoreResult<Option<String>>;
    /// The user a one-time link is for, when it is usable now, without using it.
    async fn peek_token(
        &self,
        token_hash: &str,
        kind: TokenKind,
        now: &str,
    ) -> StoreResult<Option<String>>;
    /// Marks every unused link of `kind` for the user as used (a new invite or reset
    /// replaces the old one).
    async fn void_tokens(&self, user_id: &str, kind: TokenKind, now: &str) -> StoreResult<()>;

    async fn audit(&self, account_id: i64, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>>;
}

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    let role: String = r.get(6)?;
    Ok(UserRecord {
        id: r.get(0)?,
        account_id: r.get(1)?,
        email: r.get(2)?,
        username: r.get(3)?,
        name: r.get(4)?,
        nickname: r.get(5)?,
        role: Role::parse(&role).unwrap_or(Role::Agent),
        password_hash: r.get(7)?,
        disabled: r.get::<_, i64>(8)? != 0,
        created_at: r.get(9)?,
    })
}

const USER_COLUMNS: &str =
    "id, account_id, email, username, name, nickname, role, password_hash, disabled, created_at";

fn key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRecord> {
    let origins: Option<String> = r.get(3)?;
    Ok(KeyRecord {
        account_id: r.get(0)?,
        public_key: r.get(1)?,
        name: r.get(2)?,
        origins: origins.and_then(|o| serde_json::from_str(&o).ok()),
        allow_loopback: r.get::<_, i64>(4)? != 0,
        created_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

const KEY_COLUMNS: &str =
    "account_id, public_key, name, origins, allow_loopback, created_at, revoked_at";

fn is_unique_violation(e: &rusqlite::Error, column: &str) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, Some(m))
        if f.code == rusqlite::ErrorCode::ConstraintViolation && m.contains(column))
}

#[async_trait]
impl Directory for SqliteStore {
    async fn create_account(&self, name: &str) -> StoreResult<i64> {
        let name = name.to_string();
        self.run(move |c| {
            c.execute("INSERT INTO accounts (name) VALUES (?1)", params![name])?;
            Ok(c.last_insert_rowid())
        })
        .await
    }

    async fn account_by_name(&self, name: &str) -> StoreResult<Option<i64>> {
        let name = name.to_string();
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT id FROM accounts WHERE name = ?1 ORDER BY id LIMIT 1",
                params![name],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn accounts(&self) -> StoreResult<Vec<(i64, String)>> {
        self.run(|c| {
            let mut stmt = c.prepare("SELECT id, name FROM accounts ORDER BY id")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn account_name(&self, account_id: i64) -> StoreResult<Option<String>> {
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT name FROM accounts WHERE id = ?1",
                params![account_id],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn site_url(&self, account_id: i64) -> StoreResult<Option<String>> {
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT site_url FROM accounts WHERE id = ?1",
                params![account_id],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
        })
        .await
    }

    async fn set_site_url(&self, account_id: i64, url: Option<&str>) -> StoreResult<()> {
        let url = url.map(str::to_string);
        self.run(move |c| {
            c.execute(
                "UPDATE accounts SET site_url = ?1 WHERE id = ?2",
                params![url, account_id],
            )?;
            Ok(())
        })
        .await
    }

    async fn record_sessions(&self, account_id: i64) -> StoreResult<Option<bool>> {
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT record_sessions FROM accounts WHERE id = ?1",
                params![account_id],
                |r| r.get::<_, Option<bool>>(0),
            )
            .optional()?
            .flatten())
        })
        .await
    }

    async fn set_record_sessions(&self, account_id: i64, on: Option<bool>) -> StoreResult<()> {
        self.run(move |c| {
            c.execute(
                "UPDATE accounts SET record_sessions = ?1 WHERE id = ?2",
                params![on, account_id],
            )?;
            Ok(())
        })
        .await
    }

    async fn create_key(
        &self,
        account_id: i64,
        name: Option<&str>,
        public_key: &str,
        secret_hash: &str,
        origins: Option<&[String]>,
        allow_loopback: bool,
        now: &str,
    ) -> StoreResult<()> {
        let name = name.map(str::to_string);
        let (pk, sh, now) = (
            public_key.to_string(),
            secret_hash.to_string(),
            now.to_string(),
        );
        let origins = origins.map(serde_json::to_string).transpose()?;
        self.run(move |c| {
            c.execute(
                "INSERT INTO keys (account_id, public_key, secret_hash, name, origins, allow_loopback, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![account_id, pk, sh, name, origins, allow_loopback as i64, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn key(&self, public_key: &str) -> StoreResult<Option<KeyRecord>> {
        let pk = public_key.to_string();
        self.run(move |c| {
            Ok(c.query_row(
                &format!("SELECT {KEY_COLUMNS} FROM keys WHERE public_key = ?1"),
                params![pk],
                key_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn keys(&self, account_id: i64) -> StoreResult<Vec<KeyRecord>> {
        self.run(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM keys WHERE account_id = ?1 ORDER BY id"
            ))?;
            let rows = stmt
                .query_map(params![account_id], key_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn account_by_secret(&self, secret_hash: &str) -> StoreResult<Option<(i64, String)>> {
        let sh = secret_hash.to_string();
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT account_id, public_key FROM keys WHERE secret_hash = ?1 AND revoked_at IS NULL",
                params![sh],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })
        .await
    }

    async fn set_key_origins(
        &self,
        account_id: i64,
        public_key: &str,
        origins: &[String],
    ) -> StoreResult<bool> {
        let pk = public_key.to_string();
        let origins = serde_json::to_string(origins)?;
        self.run(move |c| {
            Ok(c.execute(
                "UPDATE keys SET origins = ?1 WHERE public_key = ?2 AND account_id = ?3",
                params![origins, pk, account_id],
            )? > 0)
        })
        .await
    }

    async fn revoke_key(&self, account_id: i64, public_key: &str, now: &str) -> StoreResult<bool> {
        let (pk, now) = (public_key.to_string(), now.to_string());
        self.run(move |c| {
            Ok(c.execute(
                "UPDATE keys SET revoked_at = ?1 WHERE public_key = ?2 AND account_id = ?3 AND revoked_at IS NULL",
                params![now, pk, account_id],
            )? > 0)
        })
        .await
    }

    async fn set_key_allow_loopback(&self, public_key: &str, allow: bool) -> StoreResult<()> {
        let pk = public_key.to_string();
        self.run(move |c| {
            c.execute(
                "UPDATE keys SET allow_loopback = ?1 WHERE public_key = ?2",
                params![allow as i64, pk],
            )?;
            Ok(())
        })
        .await
    }

    async fn create_user(&self, user: &UserRecord) -> Result<(), CreateUserError> {
        let u = user.clone();
        let result = self
            .run(move |c| {
                c.execute(
                    &format!("INSERT INTO users ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
                    params![u.id, u.account_id, u.email, u.username, u.name, u.nickname,
                        u.role.as_str(), u.password_hash, u.disabled as i64, u.created_at],
                )?;
                Ok(())
            })
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(StoreError::Db(e)) if is_unique_violation(&e, "users.email") => {
                Err(CreateUserError::EmailTaken)
            }
            Err(StoreError::Db(e)) if is_unique_violation(&e, "users.username") => {
                Err(CreateUserError::UsernameTaken)
            }
            Err(e) => Err(CreateUserError::Store(e)),
        }
    }

    async fn user(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        let id = id.to_string();
        self.run(move |c| {
            Ok(c.query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
                params![id],
                user_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        let email = email.to_lowercase();
        self.run(move |c| {
            Ok(c.query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?1"),
                params![email],
                user_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let username = username.to_lowercase();
        self.run(move |c| {
            Ok(c.query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"),
                params![username],
                user_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn users(&self, account_id: i64) -> StoreResult<Vec<UserRecord>> {
        self.run(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE account_id = ?1 ORDER BY created_at, id"
            ))?;
            let rows = stmt
                .query_map(params![account_id], user_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn set_user_role(&self, id: &str, role: Role) -> StoreResult<()> {
        let id = id.to_string();
        self.run(move |c| {
            c.execute(
                "UPDATE users SET role = ?1 WHERE id = ?2",
                params![role.as_str(), id],
            )?;
            Ok(())
        })
        .await
    }

    async fn set_user_disabled(&self, id: &str, disabled: bool) -> StoreResult<()> {
        let id = id.to_string();
        self.run(move |c| {
            c.execute(
                "UPDATE users SET disabled = ?1 WHERE id = ?2",
                params![disabled as i64, id],
            )?;
            Ok(())
        })
        .await
    }

    async fn set_user_password(&self, id: &str, password_hash: &str) -> StoreResult<()> {
        let (id, hash) = (id.to_string(), password_hash.to_string());
        self.run(move |c| {
            c.execute(
                "UPDATE users SET password_hash = ?1 WHERE id = ?2",
                params![hash, id],
            )?;
            Ok(())
        })
        .await
    }

    async fn create_auth_session(&self, s: &AuthSession) -> StoreResult<()> {
        let s = s.clone();
        self.run(move |c| {
            c.execute(
                "INSERT INTO user_sessions (token_hash, user_id, csrf_token, created_at, last_seen_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![s.token_hash, s.user_id, s.csrf_token, s.created_at, s.last_seen_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn auth_session(&self, token_hash: &str) -> StoreResult<Option<AuthSession>> {
        let h = token_hash.to_string();
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT token_hash, user_id, csrf_token, created_at, last_seen_at FROM user_sessions WHERE token_hash = ?1",
                params![h],
                |r| Ok(AuthSession {
                    token_hash: r.get(0)?,
                    user_id: r.get(1)?,
                    csrf_token: r.get(2)?,
                    created_at: r.get(3)?,
                    last_seen_at: r.get(4)?,
                }),
            )
            .optional()?)
        })
        .await
    }

    async fn touch_auth_session(&self, token_hash: &str, now: &str) -> StoreResult<()> {
        let (h, now) = (token_hash.to_string(), now.to_string());
        self.run(move |c| {
            c.execute(
                "UPDATE user_sessions SET last_seen_at = ?1 WHERE token_hash = ?2",
                params![now, h],
            )?;
            Ok(())
        })
        .await
    }

    async fn delete_auth_session(&self, token_hash: &str) -> StoreResult<()> {
        let h = token_hash.to_string();
        self.run(move |c| {
            c.execute(
                "DELETE FROM user_sessions WHERE token_hash = ?1",
                params![h],
            )?;
            Ok(())
        })
        .await
    }

    async fn delete_user_sessions(&self, user_id: &str) -> StoreResult<()> {
        let id = user_id.to_string();
        self.run(move |c| {
            c.execute("DELETE FROM user_sessions WHERE user_id = ?1", params![id])?;
            Ok(())
        })
        .await
    }

    async fn create_token(
        &self,
        token_hash: &str,
        user_id: &str,
        kind: TokenKind,
        expires_at: &str,
    ) -> StoreResult<()> {
        let (h, u, e) = (
            token_hash.to_string(),
            user_id.to_string(),
            expires_at.to_string(),
        );
        self.run(move |c| {
            c.execute(
                "INSERT INTO one_time_tokens (token_hash, user_id, kind, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![h, u, kind.as_str(), e],
            )?;
            Ok(())
        })
        .await
    }

    async fn take_token(
        &self,
        token_hash: &str,
        kind: TokenKind,
        now: &str,
    ) -> StoreResult<Option<String>> {
        let (h, now) = (token_hash.to_string(), now.to_string());
        self.run(move |c| {
            let tx = c.transaction()?;
            let user: Option<String> = tx
                .query_row(
                    "SELECT user_id FROM one_time_tokens WHERE token_hash = ?1 AND kind = ?2
                     AND used_at IS NULL AND expires_at > ?3",
                    params![h, kind.as_str(), now],
                    |r| r.get(0),
                )
                .optional()?;
            if user.is_some() {
                tx.execute(
                    "UPDATE one_time_tokens SET used_at = ?1 WHERE token_hash = ?2",
                    params![now, h],
                )?;
            }
            tx.commit()?;
            Ok(user)
        })
        .await
    }

    async fn peek_token(
        &self,
        token_hash: &str,
        kind: TokenKind,
        now: &str,
    ) -> StoreResult<Option<String>> {
        let (h, now) = (token_hash.to_string(), now.to_string());
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT user_id FROM one_time_tokens WHERE token_hash = ?1 AND kind = ?2
                 AND used_at IS NULL AND expires_at > ?3",
                params![h, kind.as_str(), now],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn void_tokens(&self, user_id: &str, kind: TokenKind, now: &str) -> StoreResult<()> {
        let (u, now) = (user_id.to_string(), now.to_string());
        self.run(move |c| {
            c.execute(
                "UPDATE one_time_tokens SET used_at = ?1 WHERE user_id = ?2 AND kind = ?3 AND used_at IS NULL",
                params![now, u, kind.as_str()],
            )?;
            Ok(())
        })
        .await
    }

    async fn audit(&self, account_id: i64, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let q = q.clone();
        self.run(move |c| {
            let mut stmt = c.prepare(
                "SELECT id, account_id, at, actor, action, target, ip, result FROM audit_log
                 WHERE account_id = ?1
                   AND (?2 IS NULL OR at >= ?2) AND (?3 IS NULL OR at < ?3)
                   AND (?4 IS NULL OR actor = ?4) AND (?5 IS NULL OR action = ?5)
                   AND (?6 IS NULL OR id < ?6)
                 ORDER BY id DESC LIMIT ?7",
            )?;
            let rows = stmt
                .query_map(
                    params![
                        account_id,
                        q.since,
                        q.until,
                        q.actor,
                        q.action,
                        q.before_id,
                        q.limit as i64
                    ],
                    |r| {
                        Ok(AuditEntry {
                            id: r.get(0)?,
                            account_id: r.get(1)?,
                            at: r.get(2)?,
                            actor: r.get(3)?,
                            action: r.get(4)?,
                            target: r.get(5)?,
                            ip: r.get(6)?,
                            result: r.get(7)?,
                        })
                    },
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
}
