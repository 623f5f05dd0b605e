//! `paygate-sandbox --data FILE`: the simulator's ledger kept in an SQLite file, so that a
//! restarted simulator still knows what was ordered, paid, closed and refunded, and which
//! notifications are still due, as a real provider does ([`Sandbox::with_data`]).
//!
//! - **Write-through.** Every change to the ledger (an order created, paid or closed, a refund
//!   accepted or completed, a notification queued, attempted or acknowledged) is committed to
//!   the file, `synchronous=FULL`, before the answer that reports it goes out, at the point
//!   where the in-memory ledger changes and under the same lock. A kill -9 therefore loses
//!   nothing that was answered. The memory stays the copy every request reads.
//! - **Fail-stop.** A write that fails stops the process (exit status [`EXIT_WRITE_FAILED`])
//!   rather than answer what the file does not hold: after a restart the simulator must never
//!   deny a payment it reported.
//! - **Loaded once**, at start: the orders of both providers, the notifications not yet
//!   acknowledged (their retry loops start again, the first attempt at once, then the rest of
//!   their schedule), and WeChat refunds still `PROCESSING` (they complete
//!   [`crate::wechat_refund::REFUND_SETTLE_SECS`] after the restart, divided by
//!   `time_divisor`).
//! - **Not kept**: faults, the records of requests and delivery attempts, bill download tokens
//!   (a bill is made from the ledger again when asked for), the certificate mode and rotated
//!   certificates (keys belong to the keys dir).
//! - **One simulator per file.** The file is marked as a sandbox ledger (`application_id`) and
//!   held with an exclusive lock while the simulator runs; a file of something else (the
//!   gateway's database, say) or one another simulator holds is refused at start.
//!
//! Each order is one row holding its ledger entry as JSON (the same types the memory holds):
//! the file is the simulator's own memory, not an interface.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, params};

use crate::alipay::AlipayOrder;
use crate::outbox::Payload;
use crate::wechat::Order;
use crate::{Sandbox, lock};

/// `application_id` of a sandbox ledger file: "pgsb".
const APPLICATION_ID: i32 = 0x7067_7362;
/// The layout this code writes and reads (`user_version`).
const LEDGER_VERSION: i32 = 1;
/// The exit status when a ledger write fails (EX_IOERR).
pub const EXIT_WRITE_FAILED: i32 = 74;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS wechat_order (
    out_trade_no TEXT PRIMARY KEY,
    entry        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alipay_order (
    out_trade_no TEXT PRIMARY KEY,
    entry        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notification (
    notification_seq INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id  TEXT NOT NULL UNIQUE,
    out_trade_no     TEXT NOT NULL,
    notify_url       TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    payload          TEXT NOT NULL
);
";

/// Why the ledger file could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerFileError {
    #[error("opening the sandbox ledger {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "{path} is not a paygate-sandbox ledger (it holds other tables); give --data a file of \
         its own"
    )]
    Foreign { path: PathBuf },
    #[error(
        "{path} is a ledger of layout {found}, newer than this paygate-sandbox reads \
         ({LEDGER_VERSION})"
    )]
    Newer { path: PathBuf, found: i32 },
    #[error("reading the sandbox ledger {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{table} row {key:?} of the sandbox ledger does not decode")]
    Decode {
        table: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} holds Alipay trades, but this sandbox has no Alipay half")]
    NoAlipayHalf { path: PathBuf },
    #[error("writing {table} row {key:?} to the sandbox ledger")]
    Write {
        table: &'static str,
        key: String,
        #[source]
        source: WriteError,
    },
}

/// What failed in a write: encoding the entry or the SQLite statement.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("encoding the entry")]
    Encode(#[source] serde_json::Error),
    #[error("the statement")]
    Sql(#[source] rusqlite::Error),
}

/// The open ledger file: one connection, used under its lock.
pub(crate) struct LedgerFile {
    path: PathBuf,
    connection: Mutex<Connection>,
}

/// What a file held when it was opened.
struct Loaded {
    wechat: Vec<(String, Order)>,
    alipay: Vec<(String, AlipayOrder)>,
    notifications: Vec<KeptNotification>,
}

struct KeptNotification {
    id: String,
    out_trade_no: String,
    notify_url: String,
    attempts: u32,
    payload: Payload,
}

impl LedgerFile {
    /// Opens (creating when missing) and locks the file, and reads what it holds.
    fn open(path: &Path) -> Result<(LedgerFile, Loaded), LedgerFileError> {
        let open_error = |source| LedgerFileError::Open {
            path: path.to_owned(),
            source,
        };
        let connection = Connection::open(path).map_err(open_error)?;
        // A file another simulator holds is refused at once, not after a wait.
        connection
            .busy_timeout(std::time::Duration::ZERO)
            .map_err(open_error)?;
        // Exclusive: the first write takes the lock and keeps it until the process ends (the
        // OS drops it on a kill), so a second simulator on the same file fails at start
        // instead of keeping a ledger of its own in it. WAL under an exclusive lock needs no
        // shared-memory file.
        connection
            .pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(open_error)?;
        // Read before anything is written, so that a file of something else is left as it was.
        let application_id: i32 = connection
            .pragma_query_value(None, "application_id", |row| row.get(0))
            .map_err(open_error)?;
        let version: i32 = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(open_error)?;
        let tables: i64 = connection
            .query_row("SELECT COUNT(*) FROM sqlite_schema", [], |row| row.get(0))
            .map_err(open_error)?;
        if application_id != APPLICATION_ID && (application_id != 0 || tables > 0) {
            return Err(LedgerFileError::Foreign {
                path: path.to_owned(),
            });
        }
        if version > LEDGER_VERSION {
            return Err(LedgerFileError::Newer {
                path: path.to_owned(),
                found: version,
            });
        }
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(open_error)?;
        // Durable at commit: an answer goes out only after its change is on disk.
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(open_error)?;
        // A write (even on a file that is already set up) takes the exclusive lock now.
        connection
            .execute_batch(&format!(
                "BEGIN IMMEDIATE;
                 {SCHEMA}
                 PRAGMA application_id = {APPLICATION_ID};
                 PRAGMA user_version = {LEDGER_VERSION};
                 COMMIT;"
            ))
            .map_err(open_error)?;
        let file = LedgerFile {
            path: path.to_owned(),
            connection: Mutex::new(connection),
        };
        let loaded = file.load()?;
        Ok((file, loaded))
    }

    fn load(&self) -> Result<Loaded, LedgerFileError> {
        let connection = lock(&self.connection);
        let read_error = |source| LedgerFileError::Read {
            path: self.path.clone(),
            source,
        };
        let rows = |sql: &str| -> Result<Vec<(String, String)>, LedgerFileError> {
            let mut statement = connection.prepare(sql).map_err(read_error)?;
            let rows = statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(read_error)?;
            rows.collect::<Result<_, _>>().map_err(read_error)
        };
        let wechat = decode_all(
            "wechat_order",
            rows("SELECT out_trade_no, entry FROM wechat_order")?,
        )?;
        let alipay = decode_all(
            "alipay_order",
            rows("SELECT out_trade_no, entry FROM alipay_order")?,
        )?;

        let mut statement = connection
            .prepare(
                "SELECT notification_id, out_trade_no, notify_url, attempts, payload
                 FROM notification ORDER BY notification_seq",
            )
            .map_err(read_error)?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, u32>(3)?,
                    row.get::<_, String>(4)?,
                ))
            })
            .map_err(read_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_error)?;
        let notifications = rows
            .into_iter()
            .map(|(id, out_trade_no, notify_url, attempts, payload)| {
                let payload =
                    serde_json::from_str(&payload).map_err(|source| LedgerFileError::Decode {
                        table: "notification",
                        key: id.clone(),
                        source,
                    })?;
                Ok(KeptNotification {
                    id,
                    out_trade_no,
                    notify_url,
                    attempts,
                    payload,
                })
            })
            .collect::<Result<_, LedgerFileError>>()?;
        Ok(Loaded {
            wechat,
            alipay,
            notifications,
        })
    }

    /// Inserts or replaces the entry of one order.
    fn put_order(
        &self,
        table: &'static str,
        out_trade_no: &str,
        entry: &impl serde::Serialize,
    ) -> Result<(), LedgerFileError> {
        let write = |source| LedgerFileError::Write {
            table,
            key: out_trade_no.to_owned(),
            source,
        };
        let entry = serde_json::to_string(entry).map_err(|e| write(WriteError::Encode(e)))?;
        // The table name is one of two constants, never input.
        let sql = format!(
            "INSERT INTO {table} (out_trade_no, entry) VALUES (?1, ?2)
             ON CONFLICT (out_trade_no) DO UPDATE SET entry = excluded.entry"
        );
        lock(&self.connection)
            .execute(&sql, params![out_trade_no, entry])
            .map_err(|e| write(WriteError::Sql(e)))?;
        Ok(())
    }

    fn put_notification(
        &self,
        id: &str,
        out_trade_no: &str,
        notify_url: &str,
        payload: &Payload,
    ) -> Result<(), LedgerFileError> {
        let write = |source| LedgerFileError::Write {
            table: "notification",
            key: id.to_owned(),
            source,
        };
        let payload = serde_json::to_string(payload).map_err(|e| write(WriteError::Encode(e)))?;
        lock(&self.connection)
            .execute(
                "INSERT INTO notification
                     (notification_id, out_trade_no, notify_url, attempts, payload)
                 VALUES (?1, ?2, ?3, 0, ?4)",
                params![id, out_trade_no, notify_url, payload],
            )
            .map_err(|e| write(WriteError::Sql(e)))?;
        Ok(())
    }

    /// Records how many attempts a notification has had. Nothing for one already
    /// acknowledged (a resend and the retry loop may overlap).
    fn set_attempts(&self, id: &str, attempts: u32) -> Result<(), LedgerFileError> {
        lock(&self.connection)
            .execute(
                "UPDATE notification SET attempts = ?2 WHERE notification_id = ?1",
                params![id, attempts],
            )
            .map_err(|e| LedgerFileError::Write {
                table: "notification",
                key: id.to_owned(),
                source: WriteError::Sql(e),
            })?;
        Ok(())
    }

    fn delete_notification(&self, id: &str) -> Result<(), LedgerFileError> {
        lock(&self.connection)
            .execute(
                "DELETE FROM notification WHERE notification_id = ?1",
                params![id],
            )
            .map_err(|e| LedgerFileError::Write {
                table: "notification",
                key: id.to_owned(),
                source: WriteError::Sql(e),
            })?;
        Ok(())
    }

    /// Whether a notification is still kept (for tests of this module).
    #[cfg(test)]
    fn has_notification(&self, id: &str) -> bool {
        use rusqlite::OptionalExtension as _;
        lock(&self.connection)
            .query_row(
                "SELECT 1 FROM notification WHERE notification_id = ?1",
                params![id],
                |_| Ok(()),
            )
            .optional()
            .ok()
            .flatten()
            .is_some()
    }
}

fn decode_all<T: serde::de::DeserializeOwned>(
    table: &'static str,
    rows: Vec<(String, String)>,
) -> Result<Vec<(String, T)>, LedgerFileError> {
    rows.into_iter()
        .map(|(key, entry)| match serde_json::from_str(&entry) {
            Ok(value) => Ok((key, value)),
            Err(source) => Err(LedgerFileError::Decode { table, key, source }),
        })
        .collect()
}

/// A ledger write failed: the change is in memory but not in the file. Answering it would
/// report what a restart forgets, so the process stops here, before the answer.
fn fail_stop(error: LedgerFileError) -> ! {
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    tracing::error!(error = %chain, "sandbox: the ledger file could not be written; stopping");
    eprintln!("paygate-sandbox: {chain}; stopping so that nothing unkept is answered");
    std::process::exit(EXIT_WRITE_FAILED)
}

impl Sandbox {
    /// Keeps the ledger in the SQLite file `path` from now on (see the module docs), after
    /// loading what it already holds: orders, refunds and the notifications still due, whose
    /// deliveries start again. The file is created when missing.
    ///
    /// Call once, after [`Sandbox::with_alipay`] and before serving, inside a Tokio runtime.
    /// Fails on a file that is not a sandbox ledger, one another simulator has open, one that
    /// does not decode, or one holding Alipay trades when there is no Alipay half.
    pub fn with_data(self, path: &Path) -> anyhow::Result<Sandbox> {
        anyhow::ensure!(
            self.inner.data.get().is_none(),
            "the sandbox already keeps its ledger in a file"
        );
        let (file, loaded) = LedgerFile::open(path)?;
        if !loaded.alipay.is_empty() && self.inner.alipay.get().is_none() {
            return Err(LedgerFileError::NoAlipayHalf {
                path: path.to_owned(),
            }
            .into());
        }
        {
            let mut orders = lock(&self.inner.wechat.orders);
            orders.extend(loaded.wechat);
        }
        if let Some(sim) = self.inner.alipay.get() {
            lock(&sim.orders).extend(loaded.alipay);
        }
        if self.inner.data.set(file).is_err() {
            anyhow::bail!("the sandbox already keeps its ledger in a file");
        }
        self.resume_wechat_refunds();
        for kept in loaded.notifications {
            let schedule = match kept.payload {
                Payload::Wechat { .. } => &crate::delivery::RETRY_SCHEDULE_SECS[..],
                Payload::Alipay { .. } => &crate::alipay::RETRY_SCHEDULE_SECS[..],
            };
            // Delays already waited are not waited again: attempt now, then the rest.
            let done = usize::try_from(kept.attempts).unwrap_or(usize::MAX);
            let rest = &schedule[done.min(schedule.len())..];
            self.start_notification(
                kept.id,
                kept.out_trade_no,
                kept.notify_url,
                kept.payload,
                kept.attempts,
                rest,
            );
        }
        Ok(self)
    }

    /// Writes a WeChat order as it is now (called under the ledger lock, after the change).
    pub(crate) fn keep_wechat_order(&self, order: &Order) {
        if let Some(file) = self.inner.data.get()
            && let Err(error) = file.put_order("wechat_order", &order.params.out_trade_no, order)
        {
            fail_stop(error);
        }
    }

    /// Writes an Alipay trade as it is now (called under the ledger lock, after the change).
    pub(crate) fn keep_alipay_order(&self, out_trade_no: &str, order: &AlipayOrder) {
        if let Some(file) = self.inner.data.get()
            && let Err(error) = file.put_order("alipay_order", out_trade_no, order)
        {
            fail_stop(error);
        }
    }

    /// Writes a notification just queued.
    pub(crate) fn keep_notification(
        &self,
        id: &str,
        out_trade_no: &str,
        notify_url: &str,
        payload: &Payload,
    ) {
        if let Some(file) = self.inner.data.get()
            && let Err(error) = file.put_notification(id, out_trade_no, notify_url, payload)
        {
            fail_stop(error);
        }
    }

    /// Writes how many attempts a notification has had.
    pub(crate) fn keep_notification_attempts(&self, id: &str, attempts: u32) {
        if let Some(file) = self.inner.data.get()
            && let Err(error) = file.set_attempts(id, attempts)
        {
            fail_stop(error);
        }
    }

    /// Drops an acknowledged notification from the file.
    pub(crate) fn forget_notification(&self, id: &str) {
        if let Some(file) = self.inner.data.get()
            && let Err(error) = file.delete_notification(id)
        {
            fail_stop(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        (dir, path)
    }

    #[test]
    fn a_new_file_is_marked_as_a_sandbox_ledger_and_opens_again_empty() {
        let (_dir, path) = temp_path("ledger.db");
        let (file, loaded) = LedgerFile::open(&path).unwrap();
        assert!(loaded.wechat.is_empty() && loaded.alipay.is_empty());
        drop(file);
        let connection = Connection::open(&path).unwrap();
        let id: i32 = connection
            .pragma_query_value(None, "application_id", |row| row.get(0))
            .unwrap();
        assert_eq!(id, APPLICATION_ID);
        drop(connection);
        let (_file, loaded) = LedgerFile::open(&path).unwrap();
        assert!(loaded.notifications.is_empty());
    }

    #[test]
    fn a_file_of_something_else_is_refused_and_left_alone() {
        let (_dir, path) = temp_path("paygate.db");
        let connection = Connection::open(&path).unwrap();
        connection
            .execute_batch("CREATE TABLE payment_order (order_no TEXT PRIMARY KEY);")
            .unwrap();
        drop(connection);
        let before = std::fs::read(&path).unwrap();
        let error = LedgerFile::open(&path).err().unwrap();
        assert!(matches!(error, LedgerFileError::Foreign { .. }), "{error}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "a file that is not ours is left byte for byte"
        );
    }

    #[test]
    fn a_file_another_simulator_holds_is_refused() {
        let (_dir, path) = temp_path("ledger.db");
        let (_first, _) = LedgerFile::open(&path).unwrap();
        let error = LedgerFile::open(&path).err().unwrap();
        assert!(matches!(error, LedgerFileError::Open { .. }), "{error}");
    }

    #[test]
    fn a_row_that_does_not_decode_is_an_error_naming_it() {
        let (_dir, path) = temp_path("ledger.db");
        drop(LedgerFile::open(&path).unwrap());
        let connection = Connection::open(&path).unwrap();
        connection
            .execute(
                "INSERT INTO wechat_order (out_trade_no, entry) VALUES ('NO1234', '{}')",
                [],
            )
            .unwrap();
        drop(connection);
        let error = LedgerFile::open(&path).err().unwrap();
        let text = error.to_string();
        assert!(
            text.contains("wechat_order") && text.contains("NO1234"),
            "{text}"
        );
    }

    #[test]
    fn notifications_are_kept_until_acknowledged() {
        let (_dir, path) = temp_path("ledger.db");
        let (file, _) = LedgerFile::open(&path).unwrap();
        let payload = Payload::Wechat {
            transaction: serde_json::json!({"out_trade_no": "NO1234"}),
        };
        file.put_notification("n-1", "NO1234", "http://127.0.0.1:1/notify", &payload)
            .unwrap();
        file.set_attempts("n-1", 3).unwrap();
        drop(file);
        let (file, loaded) = LedgerFile::open(&path).unwrap();
        let [kept] = &loaded.notifications[..] else {
            panic!("one notification kept");
        };
        assert_eq!(
            (kept.id.as_str(), kept.attempts, kept.out_trade_no.as_str()),
            ("n-1", 3, "NO1234")
        );
        file.delete_notification("n-1").unwrap();
        file.set_attempts("n-1", 4).unwrap();
        assert!(!file.has_notification("n-1"));
    }
}
