//! What every console handler shares: the gateway's state and the console's own (the sign-in
//! throttle, whether cookies are `Secure`, the sessions' idle limit). A leaf, so the pages and
//! the facade can all use it.

use std::sync::Arc;

use crate::state::AppState;

use super::throttle::Throttle;

/// The most a console form may send.
pub(super) const FORM_BYTES: usize = 16 * 1024;

/// What console handlers share: the gateway's state and the console's own.
#[derive(Clone)]
pub struct Console {
    pub(super) app: AppState,
    pub(super) throttle: Arc<Throttle>,
    /// Cookies get `Secure` when the public URL is https.
    pub(super) secure: bool,
    pub(super) idle: chrono::Duration,
    /// The overview's sums of the days before today, kept a minute (`overview::past_days`).
    pub(super) past_days: Arc<std::sync::Mutex<Option<PastDays>>>,
}

impl Console {
    pub(super) fn users(&self) -> crate::console_users::Deps<'_> {
        crate::console_users::Deps {
            db: &self.app.db,
            clock: self.app.clock.as_ref(),
        }
    }
}

/// The past days' sums as last read, for the Beijing day `today`.
pub struct PastDays {
    pub(super) today: i64,
    pub(super) read_at: std::time::Instant,
    pub(super) paid: Vec<crate::store::overview::DayTotal>,
    pub(super) refunded: Vec<crate::store::overview::DayTotal>,
}
