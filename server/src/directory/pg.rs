//! [`Directory`] on PostgreSQL: the same queries as SQLite's, on [`PgStore`]'s read
//! pool (these tables belong to no visitor's slot, so they skip the store's ordered
//! writer and its fence). Its tables are created by migration 1 of `store/pg.rs`.

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{
    AuditEntry, AuditQuery, AuthSession, CreateUserError, Directory, KeyRecord, SetupGuard,
    TokenKind, UserRecord, KEY_COLUMNS, USER_COLUMNS,
};
use crate::auth::Role;
use crate::store::{PgStore, StoreError, StoreResult};

fn user_from_row(r: &Row) -> StoreResult<UserRecord> {
    let role: String = r.try_get(6)?;
    Ok(UserRecord {
        id: r.try_get(0)?,
        account_id: r.try_get(1)?,
        email: r.try_get(2)?,
        username: r.try_get(3)?,
        name: r.try_get(4)?,
        nickname: r.try_get(5)?,
        role: Role::parse(&role).unwrap_or(Role::Agent),
        password_hash: r.try_get(7)?,
        disabled: r.try_get(8)?,
        created_at: r.try_get(9)?,
    })
}

fn key_from_row(r: &Row) -> StoreResult<KeyRecord> {
    let origins: Option<String> = r.try_get(3)?;
    Ok(KeyRecord {
        account_id: r.try_get(0)?,
        public_key: r.try_get(1)?,
        name: r.try_get(2)?,
        origins: origins.and_then(|o| serde_json::from_str(&o).ok()),
        allow_loopback: r.try_get(4)?,
        created_at: r.try_get(5)?,
        revoked_at: r.try_get(6)?,
    })
}

/// The first column of the row, when there is one.
fn first<T: for<'a> tokio_postgres::types::FromSql<'a>>(
    row: Option<Row>,
) -> StoreResult<Option<T>> {
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// The advisory lock `setup_guard` holds (any number no other lock of covisit uses).
const SETUP_LOCK: i64 = 0x636f_7669_7365_7475; // "covisetu"

#[async_trait]
impl Directory for PgStore {
    async fn setup_guard(&self) -> StoreResult<SetupGuard> {
        let pooled = self
            .pool()
            .get()
            .await
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        // Taken out of the pool: the lock is the connection's, released when the
        // connection closes (the guard dropped), never handed to another caller.
        let client = deadpool_postgres::Object::take(pooled);
        client
            .execute("SELECT pg_advisory_lock($1)", &[&SETUP_LOCK])
            .await?;
        Ok(SetupGuard(Some(Box::new(client))))
    }

    async fn create_account(&self, name: &str) -> StoreResult<i64> {
        let row = self
            .query(
                "INSERT INTO accounts (name) VALUES ($1) RETURNING id",
                &[&name],
            )
            .await?;
        first(row.into_iter().next())?
            .ok_or_else(|| StoreError::Task("INSERT … RETURNING returned no row".into()))
    }

    async fn account_by_name(&self, name: &str) -> StoreResult<Option<i64>> {
        first(
            self.query_opt(
                "SELECT id FROM accounts WHERE name = $1 ORDER BY id LIMIT 1",
                &[&name],
            )
            .await?,
        )
    }

    async fn accounts(&self) -> StoreResult<Vec<(i64, String)>> {
        self.query("SELECT id, name FROM accounts ORDER BY id", &[])
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    async fn account_name(&self, account_id: i64) -> StoreResult<Option<String>> {
        first(
            self.query_opt("SELECT name FROM accounts WHERE id = $1", &[&account_id])
                .await?,
        )
    }

    async fn site_url(&self, account_id: i64) -> StoreResult<Option<String>> {
        Ok(first::<Option<String>>(
            self.query_opt(
                "SELECT site_url FROM accounts WHERE id = $1",
                &[&account_id],
            )
            .await?,
        )?
        .flatten())
    }

    async fn set_site_url(&self, account_id: i64, url: Option<&str>) -> StoreResult<()> {
        self.execute(
            "UPDATE accounts SET site_url = $1 WHERE id = $2",
            &[&url, &account_id],
        )
        .await?;
        Ok(())
    }

    async fn record_sessions(&self, account_id: i64) -> StoreResult<Option<bool>> {
        Ok(first::<Option<bool>>(
            self.query_opt(
                "SELECT record_sessions FROM accounts WHERE id = $1",
                &[&account_id],
            )
            .await?,
        )?
        .flatten())
    }

    async fn set_record_sessions(&self, account_id: i64, on: Option<bool>) -> StoreResult<()> {
        self.execute(
            "UPDATE accounts SET record_sessions = $1 WHERE id = $2",
            &[&on, &account_id],
        )
        .await?;
        Ok(())
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
        let origins = origins.map(serde_json::to_string).transpose()?;
        self.execute(
            "INSERT INTO keys (account_id, public_key, secret_hash, name, origins, allow_loopback, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&account_id, &public_key, &secret_hash, &name, &origins, &allow_loopback, &now],
        )
        .await?;
        Ok(())
    }

    async fn key(&self, public_key: &str) -> StoreResult<Option<KeyRecord>> {
        self.query_opt(
            &format!("SELECT {KEY_COLUMNS} FROM keys WHERE public_key = $1"),
            &[&public_key],
        )
        .await?
        .as_ref()
        .map(key_from_row)
        .transpose()
    }

    async fn keys(&self, account_id: i64) -> StoreResult<Vec<KeyRecord>> {
        self.query(
            &format!("SELECT {KEY_COLUMNS} FROM keys WHERE account_id = $1 ORDER BY id"),
            &[&account_id],
        )
        .await?
        .iter()
        .map(key_from_row)
        .collect()
    }

    async fn account_by_secret(&self, secret_hash: &str) -> StoreResult<Option<(i64, String)>> {
        Ok(self
            .query_opt(
                "SELECT account_id, public_key FROM keys WHERE secret_hash = $1 AND revoked_at IS NULL",
                &[&secret_hash],
            )
            .await?
            .map(|r| (r.get(0), r.get(1))))
    }

    async fn set_key_origins(
        &self,
        account_id: i64,
        public_key: &str,
        origins: &[String],
    ) -> StoreResult<bool> {
        let origins = serde_json::to_string(origins)?;
        Ok(self
            .execute(
                "UPDATE keys SET origins = $1 WHERE public_key = $2 AND account_id = $3",
                &[&origins, &public_key, &account_id],
            )
            .await?
            > 0)
    }

    async fn revoke_key(&self, account_id: i64, public_key: &str, now: &str) -> StoreResult<bool> {
        Ok(self
            .execute(
                "UPDATE keys SET revoked_at = $1
                 WHERE public_key = $2 AND account_id = $3 AND revoked_at IS NULL",
                &[&now, &public_key, &account_id],
            )
            .await?
            > 0)
    }

    async fn set_key_allow_loopback(&self, public_key: &str, allow: bool) -> StoreResult<()> {
        self.execute(
            "UPDATE keys SET allow_loopback = $1 WHERE public_key = $2",
            &[&allow, &public_key],
        )
        .await?;
        Ok(())
    }

    async fn create_user(&self, u: &UserRecord) -> Result<(), CreateUserError> {
        let result = self
            .execute(
                &format!(
                    "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                ),
                &[
                    &u.id,
                    &u.account_id,
                    &u.email,
                    &u.username,
                    &u.name,
                    &u.nickname,
                    &u.role.as_str(),
                    &u.password_hash,
                    &u.disabled,
                    &u.created_at,
                ],
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(StoreError::Pg(e)) if e.unique_violation() == Some("users_email_unique") => {
                Err(CreateUserError::EmailTaken)
            }
            Err(StoreError::Pg(e)) if e.unique_violation() == Some("users_username_unique") => {
                Err(CreateUserError::UsernameTaken)
            }
            Err(e) => Err(CreateUserError::Store(e)),
        }
    }

    async fn user(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        self.query_opt(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        let email = email.to_lowercase();
        self.query_opt(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1"),
            &[&email],
        )
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let username = username.to_lowercase();
        self.query_opt(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1"),
            &[&username],
        )
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    async fn users(&self, account_id: i64) -> StoreResult<Vec<UserRecord>> {
        // Ids compared byte-wise, as SQLite does.
        self.query(
            &format!(
                "SELECT {USER_COLUMNS} FROM users WHERE account_id = $1
                 ORDER BY created_at, id COLLATE \"C\""
            ),
            &[&account_id],
        )
        .await?
        .iter()
        .map(user_from_row)
        .collect()
    }

    async fn set_user_role(&self, id: &str, role: Role) -> StoreResult<()> {
        self.execute(
            "UPDATE users SET role = $1 WHERE id = $2",
            &[&role.as_str(), &id],
        )
        .await?;
        Ok(())
    }

    async fn set_user_disabled(&self, id: &str, disabled: bool) -> StoreResult<()> {
        self.execute(
            "UPDATE users SET disabled = $1 WHERE id = $2",
            &[&disabled, &id],
        )
        .await?;
        Ok(())
    }

    async fn set_user_password(&self, id: &str, password_hash: &str) -> StoreResult<()> {
        self.execute(
            "UPDATE users SET password_hash = $1 WHERE id = $2",
            &[&password_hash, &id],
        )
        .await?;
        Ok(())
    }

    async fn create_auth_session(&self, s: &AuthSession) -> StoreResult<()> {
        self.execute(
            "INSERT INTO user_sessions (token_hash, user_id, csrf_token, created_at, last_seen_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &s.token_hash,
                &s.user_id,
                &s.csrf_token,
                &s.created_at,
                &s.last_seen_at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn auth_session(&self, token_hash: &str) -> StoreResult<Option<AuthSession>> {
        self.query_opt(
            "SELECT token_hash, user_id, csrf_token, created_at, last_seen_at
             FROM user_sessions WHERE token_hash = $1",
            &[&token_hash],
        )
        .await?
        .map(|r| {
            Ok(AuthSession {
                token_hash: r.try_get(0)?,
                user_id: r.try_get(1)?,
                csrf_token: r.try_get(2)?,
                created_at: r.try_get(3)?,
                last_seen_at: r.try_get(4)?,
            })
        })
        .transpose()
    }

    async fn touch_auth_session(&self, token_hash: &str, now: &str) -> StoreResult<()> {
        self.execute(
            "UPDATE user_sessions SET last_seen_at = $1 WHERE token_hash = $2",
            &[&now, &token_hash],
        )
        .await?;
        Ok(())
    }

    async fn delete_auth_session(&self, token_hash: &str) -> StoreResult<()> {
        self.execute(
            "DELETE FROM user_sessions WHERE token_hash = $1",
            &[&token_hash],
        )
        .await?;
        Ok(())
    }

    async fn delete_user_sessions(&self, user_id: &str) -> StoreResult<()> {
        self.execute("DELETE FROM user_sessions WHERE user_id = $1", &[&user_id])
            .await?;
        Ok(())
    }

    async fn create_token(
        &self,
        token_hash: &str,
        user_id: &str,
        kind: TokenKind,
        expires_at: &str,
    ) -> StoreResult<()> {
        self.execute(
            "INSERT INTO one_time_tokens (token_hash, user_id, kind, expires_at) VALUES ($1, $2, $3, $4)",
            &[&token_hash, &user_id, &kind.as_str(), &expires_at],
        )
        .await?;
        Ok(())
    }

    async fn take_token(
        &self,
        token_hash: &str,
        kind: TokenKind,
        now: &str,
    ) -> StoreResult<Option<String>> {
        // One statement: of two concurrent takes, the second finds it used (the row
        // lock makes it re-check `used_at IS NULL` after the first committed).
        first(
            self.query_opt(
                "UPDATE one_time_tokens SET used_at = $3
                 WHERE token_hash = $1 AND kind = $2 AND used_at IS NULL AND expires_at > $3
                 RETURNING user_id",
                &[&token_hash, &kind.as_str(), &now],
            )
            .await?,
        )
    }

    async fn peek_token(
        &self,
        token_hash: &str,
        kind: TokenKind,
        now: &str,
    ) -> StoreResult<Option<String>> {
        first(
            self.query_opt(
                "SELECT user_id FROM one_time_tokens
                 WHERE token_hash = $1 AND kind = $2 AND used_at IS NULL AND expires_at > $3",
                &[&token_hash, &kind.as_str(), &now],
            )
            .await?,
        )
    }

    async fn void_tokens(&self, user_id: &str, kind: TokenKind, now: &str) -> StoreResult<()> {
        self.execute(
            "UPDATE one_time_tokens SET used_at = $1
             WHERE user_id = $2 AND kind = $3 AND used_at IS NULL",
            &[&now, &user_id, &kind.as_str()],
        )
        .await?;
        Ok(())
    }

    async fn audit(&self, account_id: i64, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        self.query(
            "SELECT id, account_id, at, actor, action, target, ip, result FROM audit_log
             WHERE account_id = $1
               AND ($2::TEXT IS NULL OR at >= $2) AND ($3::TEXT IS NULL OR at < $3)
               AND ($4::TEXT IS NULL OR actor = $4) AND ($5::TEXT IS NULL OR action = $5)
               AND ($6::BIGINT IS NULL OR id < $6)
             ORDER BY id DESC LIMIT $7",
            &[
                &account_id,
                &q.since,
                &q.until,
                &q.actor,
                &q.action,
                &q.before_id,
                &limit,
            ],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(AuditEntry {
                id: r.try_get(0)?,
                account_id: r.try_get(1)?,
                at: r.try_get(2)?,
                actor: r.try_get(3)?,
                action: r.try_get(4)?,
                target: r.try_get(5)?,
                ip: r.try_get(6)?,
                result: r.try_get(7)?,
            })
        })
        .collect()
    }
}
