//! The console's people (DESIGN.md §7 console): created with a one-time set-password link,
//! passwords hashed with argon2id, a TOTP second factor for whoever holds `finance` or
//! `privacy`, failed sign-ins counted and locked out, disabled at once. Sessions are
//! server-side: the cookie holds 32 random bytes, the database their SHA-256.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::clock::{Clock, to_millis};
use crate::domain::totp::TotpSecret;
use crate::domain::{ConsoleUserName, Scope};
use crate::store::Db;
use crate::store::console::{self as store, NewUser, SessionRow, Stage, UserRow};

/// How long a set-password link works.
pub const SETUP_LINK_VALID: Duration = Duration::hours(72);
/// Failed sign-ins in a row that lock the user …
pub const LOCK_AFTER_FAILURES: i64 = 10;
/// … for this long.
pub const LOCKED_FOR: Duration = Duration::minutes(15);
pub const PASSWORD_MIN_CHARS: usize = 12;
pub const PASSWORD_MAX_CHARS: usize = 256;

/// What the use cases of this module touch.
pub struct Deps<'a> {
    pub db: &'a Db,
    pub clock: &'a dyn Clock,
}

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("a console user named {0} exists already")]
    Exists(ConsoleUserName),
    #[error("no console user named {0}")]
    Unknown(ConsoleUserName),
    #[error("a console user needs at least one scope")]
    NoScopes,
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

/// Who must enrol a second factor: whoever can move money or personal data.
pub fn totp_required(scopes: &[Scope]) -> bool {
    scopes.contains(&Scope::Finance) || scopes.contains(&Scope::Privacy)
}

/// A secret shown once (a link's token, a session cookie): 32 random bytes, base64url.
pub struct OneTime(pub String);

impl OneTime {
    pub fn generate() -> OneTime {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        OneTime(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// What the database keeps of it.
    pub fn sha256(&self) -> String {
        sha256_hex(&self.0)
    }
}

impl std::fmt::Debug for OneTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneTime([redacted])")
    }
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Whether a new user must enrol a TOTP: by their scopes, except in sandbox mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    ByScopes,
    /// `serve --sandbox`'s demo user: no provider account, no real money.
    NotInSandbox,
}

/// Creates a user with no password and answers the token of their set-password link.
pub async fn create(
    deps: &Deps<'_>,
    name: &ConsoleUserName,
    scopes: &[Scope],
    second_factor: SecondFactor,
) -> Result<OneTime, UsersError> {
    if scopes.is_empty() {
        return Err(UsersError::NoScopes);
    }
    let token = OneTime::generate();
    let now = deps.clock.now();
    let created = store::insert_user(
        deps.db,
        &NewUser {
            name,
            scopes,
            totp_required: second_factor == SecondFactor::ByScopes && totp_required(scopes),
            setup_token_sha256: &token.sha256(),
            setup_expires_at: to_millis(now + SETUP_LINK_VALID),
            now: to_millis(now),
        },
    )
    .await?;
    if !created {
        return Err(UsersError::Exists(name.clone()));
    }
    tracing::info!(console_user = %name, "console user created");
    Ok(token)
}

/// A new set-password link for an existing user; their password and sessions end now.
pub async fn reset(deps: &Deps<'_>, name: &ConsoleUserName) -> Result<OneTime, UsersError> {
    let token = OneTime::generate();
    let now = deps.clock.now();
    let done = store::reset_setup(
        deps.db,
        name,
        &token.sha256(),
        to_millis(now + SETUP_LINK_VALID),
        to_millis(now),
    )
    .await?;
    if !done {
        return Err(UsersError::Unknown(name.clone()));
    }
    tracing::info!(console_user = %name, "console user's password reset");
    Ok(token)
}

/// Disables the user: no sign-in from now on, and every open session refused at its next
/// request (they are deleted in the same transaction).
pub async fn disable(deps: &Deps<'_>, name: &ConsoleUserName) -> Result<(), UsersError> {
    if !store::disable(deps.db, name, to_millis(deps.clock.now())).await? {
        return Err(UsersError::Unknown(name.clone()));
    }
    tracing::info!(console_user = %name, "console user disabled");
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the link is unknown, used or expired")]
    LinkInvalid,
    #[error("a password has {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters")]
    Length,
    #[error("the password must not be the user's name")]
    IsName,
    #[error("hashing the password")]
    Hash(#[source] argon2::password_hash::Error),
    #[error("the hashing thread stopped")]
    Worker(#[source] tokio::task::JoinError),
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

/// The user a set-password link is for, if it still works.
pub async fn setup_link_user(deps: &Deps<'_>, token: &str) -> Result<Option<UserRow>, sqlx::Error> {
    store::user_by_setup_token(deps.db, &sha256_hex(token), to_millis(deps.clock.now())).await
}

/// Sets the password through a set-password link (which is spent by it).
pub async fn set_password(
    deps: &Deps<'_>,
    token: &str,
    password: &str,
) -> Result<ConsoleUserName, PasswordError> {
    let user = setup_link_user(deps, token)
        .await?
        .ok_or(PasswordError::LinkInvalid)?;
    let chars = password.chars().count();
    if !(PASSWORD_MIN_CHARS..=PASSWORD_MAX_CHARS).contains(&chars) {
        return Err(PasswordError::Length);
    }
    if password.eq_ignore_ascii_case(user.name.as_str()) {
        return Err(PasswordError::IsName);
    }
    let hash = hash_password(password.to_owned()).await?;
    let now = to_millis(deps.clock.now());
    if !store::set_password(deps.db, &sha256_hex(token), &hash, now).await? {
        return Err(PasswordError::LinkInvalid);
    }
    tracing::info!(console_user = %user.name, "console user's password set");
    Ok(user.name)
}

/// argon2id with the crate's defaults (RFC 9106's second recommended option: m = 19 MiB,
/// t = 2, p = 1), off the async threads: it takes tens of milliseconds on purpose.
async fn hash_password(password: String) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || {
        let salt = salt()?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(PasswordError::Worker)?
    .map_err(PasswordError::Hash)
}

/// Whether `password` is the one of `hash` (constant time inside argon2). A stored hash
/// that does not parse matches nothing.
async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// A hash of nothing anyone knows, verified when the name is unknown or has no password, so
/// that an unknown name takes as long to refuse as a wrong password.
static DECOY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    salt()
        .and_then(|salt| {
            Argon2::default()
                .hash_password(OneTime::generate().0.as_bytes(), &salt)
                .map(|h| h.to_string())
        })
        // Not a hash: it parses as none and so matches no password.
        .unwrap_or_default()
});

/// 16 random bytes (RFC 9106 §3.1's recommended salt length), as a PHC salt.
fn salt() -> Result<SaltString, argon2::password_hash::Error> {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    SaltString::encode_b64(&bytes)
}

/// One more failed sign-in of `name` (a wrong password or code); the tenth in a row locks it.
async fn failed(
    deps: &Deps<'_>,
    name: &ConsoleUserName,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    let until = to_millis(now + LOCKED_FOR);
    store::record_failure(deps.db, name, LOCK_AFTER_FAILURES, until, to_millis(now)).await
}

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Unknown name, no password yet, disabled or a wrong password: one answer for all, so the
    /// form says nothing about which names exist.
    #[error("the name or the password is wrong")]
    Refused,
    #[error("too many failed sign-ins; try again later")]
    Locked,
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

/// A session just started, and its cookie's value (shown once, to the browser).
pub struct Started {
    pub cookie: OneTime,
    pub stage: Stage,
    pub name: ConsoleUserName,
}

/// Checks a name and password and starts a session at the stage the user's second factor
/// asks for (a new session id every time).
pub async fn sign_in(deps: &Deps<'_>, name: &str, password: &str) -> Result<Started, SignInError> {
    let now = deps.clock.now();
    let user = match ConsoleUserName::parse(name) {
        Some(name) => store::user(deps.db, &name).await?,
        None => None,
    };
    let usable = user.filter(|u| u.disabled_at.is_none());
    let hash = usable
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| DECOY.clone());
    let right = verify_password(password.to_owned(), hash).await;
    let Some(user) = usable else {
        return Err(SignInError::Refused);
    };
    if user.locked_until.is_some_and(|t| t > to_millis(now)) {
        return Err(SignInError::Locked);
    }
    if !right || user.password_hash.is_none() {
        failed(deps, &user.name, now).await?;
        tracing::info!(console_user = %user.name, "console sign-in refused");
        return Err(SignInError::Refused);
    }
    store::record_success(deps.db, &user.name, to_millis(now)).await?;
    let stage = match (user.totp_required, user.totp_secret.is_some()) {
        (false, _) => Stage::Full,
        (true, true) => Stage::Password,
        (true, false) => Stage::Enrol,
    };
    let cookie = OneTime::generate();
    store::insert_session(deps.db, &cookie.sha256(), &user.name, stage, to_millis(now)).await?;
    Ok(Started {
        cookie,
        stage,
        name: user.name,
    })
}

/// The live session of a cookie: seen within `idle` and its user enabled. Marks it used (at
/// most once a minute, so reading pages is not a write each).
pub async fn session(
    deps: &Deps<'_>,
    cookie: &str,
    idle: Duration,
) -> Result<Option<SessionRow>, sqlx::Error> {
    let now = to_millis(deps.clock.now());
    let hash = sha256_hex(cookie);
    let found = store::session(deps.db, &hash, now, idle.num_milliseconds()).await?;
    if let Some(s) = &found
        && now - s.last_seen_at >= 60_000
    {
        store::touch(deps.db, &hash, now).await?;
    }
    Ok(found)
}

/// Deletes the sessions idle longer than `idle` (they open nothing already; this keeps the
/// table to the live ones). Answers how many went.
pub async fn forget_idle(deps: &Deps<'_>, idle: Duration) -> Result<u64, sqlx::Error> {
    store::end_idle_sessions(deps.db, to_millis(deps.clock.now() - idle)).await
}

pub async fn sign_out(deps: &Deps<'_>, cookie: &str) -> Result<(), sqlx::Error> {
    store::end_session(deps.db, &sha256_hex(cookie)).await
}

#[derive(Debug, thiserror::Error)]
pub enum SecondFactorError {
    #[error("the code is wrong or was used already")]
    Refused,
    #[error("the session ended meanwhile")]
    SessionEnded,
    #[error("the stored TOTP secret does not decode")]
    Corrupt,
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

/// The TOTP code of a `password` session: right and unused → the session is replaced by a
/// `full` one (a new id), whose cookie is answered. A wrong code counts as a failed sign-in.
pub async fn second_factor(
    deps: &Deps<'_>,
    cookie: &str,
    session: &SessionRow,
    code: &str,
) -> Result<OneTime, SecondFactorError> {
    let user = &session.user;
    let secret = user
        .totp_secret
        .as_deref()
        .map(|s| TotpSecret::from_base32(s).ok_or(SecondFactorError::Corrupt))
        .transpose()?
        .ok_or(SecondFactorError::Refused)?;
    let now = deps.clock.now();
    let step = secret.matching_step(code.trim(), now.timestamp());
    let spent = match step {
        Some(step) => store::use_totp_step(deps.db, &user.name, step).await?,
        None => false,
    };
    if !spent {
        failed(deps, &user.name, now).await?;
        return Err(SecondFactorError::Refused);
    }
    promote(deps, cookie, &user.name).await
}

/// The secret offered to a user enrolling (a new one each time the page is shown).
pub async fn offer_enrolment(deps: &Deps<'_>, user: &UserRow) -> Result<TotpSecret, sqlx::Error> {
    let secret = TotpSecret::generate();
    store::offer_totp(
        deps.db,
        &user.name,
        &secret.to_base32(),
        to_millis(deps.clock.now()),
    )
    .await?;
    Ok(secret)
}

/// Confirms the offered secret with a code from the app: it becomes the user's, and the
/// `enrol` session becomes `full` (a new id).
pub async fn confirm_enrolment(
    deps: &Deps<'_>,
    cookie: &str,
    session: &SessionRow,
    code: &str,
) -> Result<OneTime, SecondFactorError> {
    let user = &session.user;
    let offered = user
        .totp_pending
        .as_deref()
        .ok_or(SecondFactorError::Refused)?;
    let secret = TotpSecret::from_base32(offered).ok_or(SecondFactorError::Corrupt)?;
    let now = deps.clock.now();
    let step = secret
        .matching_step(code.trim(), now.timestamp())
        .ok_or(SecondFactorError::Refused)?;
    if !store::confirm_totp(deps.db, &user.name, offered, step, to_millis(now)).await? {
        return Err(SecondFactorError::Refused);
    }
    tracing::info!(console_user = %user.name, "console user enrolled a second factor");
    promote(deps, cookie, &user.name).await
}

async fn promote(
    deps: &Deps<'_>,
    cookie: &str,
    name: &ConsoleUserName,
) -> Result<OneTime, SecondFactorError> {
    let fresh = OneTime::generate();
    let now = to_millis(deps.clock.now());
    store::record_success(deps.db, name, now).await?;
    if !store::replace_session(
        deps.db,
        &sha256_hex(cookie),
        &fresh.sha256(),
        name,
        Stage::Full,
        now,
    )
    .await?
    {
        return Err(SecondFactorError::SessionEnded);
    }
    Ok(fresh)
}
