//! The console's people and their sessions (`console_user`, `console_session`; DESIGN.md §7
//! console). Secrets are never stored as they were shown: a password as its argon2id string,
//! the set-password token and the session cookie as their SHA-256.

use super::db::Db;
use super::sql::{Columns, opt_millis_of, parsed};
use crate::domain::{ConsoleUserName, Scope};

/// A console user as stored.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub name: ConsoleUserName,
    pub scopes: Vec<Scope>,
    /// The argon2id PHC string; `None` until the user sets one.
    pub password_hash: Option<String>,
    pub setup_token_sha256: Option<String>,
    pub setup_expires_at: Option<i64>,
    pub totp_required: bool,
    /// Base32; `None` until enrolled.
    pub totp_secret: Option<String>,
    /// Base32: offered at enrolment, not yet confirmed with a code.
    pub totp_pending: Option<String>,
    pub totp_last_step: Option<i64>,
    pub failed_sign_ins: i64,
    pub locked_until: Option<i64>,
    pub disabled_at: Option<i64>,
}

const USER_COLUMNS: &str = "name, scopes, password_hash, setup_token_sha256, setup_expires_at, \
     totp_required, totp_secret, totp_pending, totp_last_step, failed_sign_ins, locked_until, \
     disabled_at";

/// The stored form of a set of scopes.
pub fn scopes_text(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(",")
}

fn scopes_of(text: &str) -> Option<Vec<Scope>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').map(Scope::parse).collect()
}

fn user_from_row(r: &impl Columns) -> Result<UserRow, sqlx::Error> {
    let name: String = r.column("name")?;
    let scopes: String = r.column("scopes")?;
    Ok(UserRow {
        name: parsed("name", &name, ConsoleUserName::parse)?,
        scopes: parsed("scopes", &scopes, scopes_of)?,
        password_hash: r.column("password_hash")?,
        setup_token_sha256: r.column("setup_token_sha256")?,
        setup_expires_at: opt_millis_of("setup_expires_at", r.column("setup_expires_at")?)?,
        totp_required: r.column::<i64>("totp_required")? != 0,
        totp_secret: r.column("totp_secret")?,
        totp_pending: r.column("totp_pending")?,
        totp_last_step: r.column("totp_last_step")?,
        failed_sign_ins: r.column("failed_sign_ins")?,
        locked_until: opt_millis_of("locked_until", r.column("locked_until")?)?,
        disabled_at: opt_millis_of("disabled_at", r.column("disabled_at")?)?,
    })
}

/// A new user, who has no password yet: only the one-time link's token (hashed) sets one.
pub struct NewUser<'a> {
    pub name: &'a ConsoleUserName,
    pub scopes: &'a [Scope],
    pub totp_required: bool,
    pub setup_token_sha256: &'a str,
    pub setup_expires_at: i64,
    pub now: i64,
}

/// Creates the user; `false` when the name is taken (nothing changed).
pub async fn insert_user(db: &Db, u: &NewUser<'_>) -> Result<bool, sqlx::Error> {
    let done = db
        .write_all(vec![(
            "INSERT INTO console_user (name, scopes, setup_token_sha256, setup_expires_at,
                 totp_required, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (name) DO NOTHING",
            vec![
                u.name.as_str().into(),
                scopes_text(u.scopes).into(),
                u.setup_token_sha256.into(),
                u.setup_expires_at.into(),
                i64::from(u.totp_required).into(),
                u.now.into(),
            ],
        )])
        .await?;
    Ok(done == [1])
}

/// A new one-time set-password link for an existing user (a forgotten password): the old
/// password stops working at once and every session ends.
pub async fn reset_setup(
    db: &Db,
    name: &ConsoleUserName,
    token_sha256: &str,
    expires_at: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = db
        .write_all(vec![
            (
                "UPDATE console_user SET password_hash = NULL, setup_token_sha256 = $2,
                     setup_expires_at = $3, failed_sign_ins = 0, locked_until = NULL,
                     updated_at = $4
                 WHERE name = $1 AND disabled_at IS NULL",
                vec![
                    name.as_str().into(),
                    token_sha256.into(),
                    expires_at.into(),
                    now.into(),
                ],
            ),
            (
                "DELETE FROM console_session WHERE name = $1",
                vec![name.as_str().into()],
            ),
        ])
        .await?;
    Ok(done[0] == 1)
}

pub async fn user(db: &Db, name: &ConsoleUserName) -> Result<Option<UserRow>, sqlx::Error> {
    db.lookup_optional(
        &format!("SELECT {USER_COLUMNS} FROM console_user WHERE name = $1"),
        &[name.as_str().into()],
        |r| user_from_row(r),
    )
    .await
}

/// The user whose unexpired set-password token this is.
pub async fn user_by_setup_token(
    db: &Db,
    token_sha256: &str,
    now: i64,
) -> Result<Option<UserRow>, sqlx::Error> {
    db.lookup_optional(
        &format!(
            "SELECT {USER_COLUMNS} FROM console_user
             WHERE setup_token_sha256 = $1 AND setup_expires_at > $2 AND disabled_at IS NULL"
        ),
        &[token_sha256.into(), now.into()],
        |r| user_from_row(r),
    )
    .await
}

pub async fn all_users(db: &Db) -> Result<Vec<UserRow>, sqlx::Error> {
    db.lookup_all(
        &format!("SELECT {USER_COLUMNS} FROM console_user ORDER BY name"),
        &[],
        |r| user_from_row(r),
    )
    .await
}

/// Sets the password of the token's user and spends the token: `false` when the token was
/// spent, expired or replaced meanwhile (nothing changed).
pub async fn set_password(
    db: &Db,
    token_sha256: &str,
    password_hash: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = db
        .write_all(vec![(
            "UPDATE console_user SET password_hash = $2, setup_token_sha256 = NULL,
                 setup_expires_at = NULL, updated_at = $3
             WHERE setup_token_sha256 = $1 AND setup_expires_at > $3 AND disabled_at IS NULL",
            vec![token_sha256.into(), password_hash.into(), now.into()],
        )])
        .await?;
    Ok(done == [1])
}

/// One more failed sign-in in a row; the `lock_after`th locks the user until `until`.
pub async fn record_failure(
    db: &Db,
    name: &ConsoleUserName,
    lock_after: i64,
    until: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    db.write_all(vec![(
        "UPDATE console_user SET failed_sign_ins = failed_sign_ins + 1,
             locked_until = CASE WHEN failed_sign_ins + 1 >= $2 THEN $3 ELSE locked_until END,
             updated_at = $4
         WHERE name = $1",
        vec![
            name.as_str().into(),
            lock_after.into(),
            until.into(),
            now.into(),
        ],
    )])
    .await?;
    Ok(())
}

/// A sign-in that succeeded: the count of failures starts again.
pub async fn record_success(db: &Db, name: &ConsoleUserName, now: i64) -> Result<(), sqlx::Error> {
    db.write_all(vec![(
        "UPDATE console_user SET failed_sign_ins = 0, locked_until = NULL, updated_at = $2
         WHERE name = $1 AND (failed_sign_ins <> 0 OR locked_until IS NOT NULL)",
        vec![name.as_str().into(), now.into()],
    )])
    .await?;
    Ok(())
}

/// Offers `secret` (base32) for enrolment; it replaces an earlier offer.
pub async fn offer_totp(
    db: &Db,
    name: &ConsoleUserName,
    secret: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    db.write_all(vec![(
        "UPDATE console_user SET totp_pending = $2, updated_at = $3
         WHERE name = $1 AND totp_secret IS NULL",
        vec![name.as_str().into(), secret.into(), now.into()],
    )])
    .await?;
    Ok(())
}

/// The offered secret becomes the user's, `step` its first used code: `false` when there was
/// no offer or the user enrolled meanwhile.
pub async fn confirm_totp(
    db: &Db,
    name: &ConsoleUserName,
    secret: &str,
    step: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = db
        .write_all(vec![(
            "UPDATE console_user SET totp_secret = totp_pending, totp_pending = NULL,
                 totp_last_step = $3, updated_at = $4
             WHERE name = $1 AND totp_secret IS NULL AND totp_pending = $2",
            vec![name.as_str().into(), secret.into(), step.into(), now.into()],
        )])
        .await?;
    Ok(done == [1])
}

/// Spends the code of `step`: `false` when that step or a later one was used already (a code
/// works once, even when two requests race with it).
pub async fn use_totp_step(
    db: &Db,
    name: &ConsoleUserName,
    step: i64,
) -> Result<bool, sqlx::Error> {
    let done = db
        .write_all(vec![(
            "UPDATE console_user SET totp_last_step = $2
             WHERE name = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
            vec![name.as_str().into(), step.into()],
        )])
        .await?;
    Ok(done == [1])
}

/// Disables the user and ends every session of theirs, in one transaction: `false` when
/// there is no such user (or it was disabled already).
pub async fn disable(db: &Db, name: &ConsoleUserName, now: i64) -> Result<bool, sqlx::Error> {
    let done = db
        .write_all(vec![
            (
                "UPDATE console_user SET disabled_at = $2, updated_at = $2
                 WHERE name = $1 AND disabled_at IS NULL",
                vec![name.as_str().into(), now.into()],
            ),
            (
                "DELETE FROM console_session WHERE name = $1",
                vec![name.as_str().into()],
            ),
        ])
        .await?;
    Ok(done[0] == 1)
}

/// How far a session got at sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The password was right; the TOTP code is due.
    Password,
    /// The password was right; a TOTP must be enrolled before anything else.
    Enrol,
    /// Signed in.
    Full,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Password => "password",
            Stage::Enrol => "enrol",
            Stage::Full => "full",
        }
    }

    fn parse(text: &str) -> Option<Stage> {
        match text {
            "password" => Some(Stage::Password),
            "enrol" => Some(Stage::Enrol),
            "full" => Some(Stage::Full),
            _ => None,
        }
    }
}

/// A live session and its user (who is not disabled).
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub stage: Stage,
    pub last_seen_at: i64,
    pub user: UserRow,
}

/// Starts a session (the cookie's SHA-256) at `stage`.
pub async fn insert_session(
    db: &Db,
    session_sha256: &str,
    name: &ConsoleUserName,
    stage: Stage,
    now: i64,
) -> Result<(), sqlx::Error> {
    db.write_all(vec![(
        "INSERT INTO console_session (session_sha256, name, stage, created_at, last_seen_at)
         VALUES ($1, $2, $3, $4, $4)",
        vec![
            session_sha256.into(),
            name.as_str().into(),
            stage.as_str().into(),
            now.into(),
        ],
    )])
    .await?;
    Ok(())
}

/// Replaces a session by a new one (a new id at every step of signing in), in one transaction:
/// `false` when the old one had ended meanwhile.
pub async fn replace_session(
    db: &Db,
    old_sha256: &str,
    new_sha256: &str,
    name: &ConsoleUserName,
    stage: Stage,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = db
        .write_all(vec![
            (
                "DELETE FROM console_session WHERE session_sha256 = $1 AND name = $2",
                vec![old_sha256.into(), name.as_str().into()],
            ),
            (
                "INSERT INTO console_session (session_sha256, name, stage, created_at, last_seen_at)
                 SELECT $1, name, $2, $3, $3 FROM console_user
                 WHERE name = $4 AND disabled_at IS NULL",
                vec![
                    new_sha256.into(),
                    stage.as_str().into(),
                    now.into(),
                    name.as_str().into(),
                ],
            ),
        ])
        .await?;
    Ok(done == [1, 1])
}

/// The session of this cookie, if it is live: seen within `idle_ms` and its user enabled.
pub async fn session(
    db: &Db,
    session_sha256: &str,
    now: i64,
    idle_ms: i64,
) -> Result<Option<SessionRow>, sqlx::Error> {
    let columns: String = USER_COLUMNS
        .split(", ")
        .map(|c| format!("u.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    db.lookup_optional(
        &format!(
            "SELECT s.stage, s.last_seen_at, {columns}
             FROM console_session s JOIN console_user u ON u.name = s.name
             WHERE s.session_sha256 = $1 AND s.last_seen_at > $2 AND u.disabled_at IS NULL"
        ),
        &[session_sha256.into(), (now - idle_ms).into()],
        |r| {
            let stage: String = r.column("stage")?;
            Ok(SessionRow {
                stage: parsed("stage", &stage, Stage::parse)?,
                last_seen_at: r.column("last_seen_at")?,
                user: user_from_row(r)?,
            })
        },
    )
    .await
}

/// The session was used now (its idle expiry starts again).
pub async fn touch(db: &Db, session_sha256: &str, now: i64) -> Result<(), sqlx::Error> {
    db.write_all(vec![(
        "UPDATE console_session SET last_seen_at = $2 WHERE session_sha256 = $1",
        vec![session_sha256.into(), now.into()],
    )])
    .await?;
    Ok(())
}

pub async fn end_session(db: &Db, session_sha256: &str) -> Result<(), sqlx::Error> {
    db.write_all(vec![(
        "DELETE FROM console_session WHERE session_sha256 = $1",
        vec![session_sha256.into()],
    )])
    .await?;
    Ok(())
}

/// Forgets sessions idle since before `cutoff` (they no longer open anything either way).
pub async fn end_idle_sessions(db: &Db, cutoff: i64) -> Result<u64, sqlx::Error> {
    let done = db
        .write_all(vec![(
            "DELETE FROM console_session WHERE last_seen_at <= $1",
            vec![cutoff.into()],
        )])
        .await?;
    Ok(done[0])
}
