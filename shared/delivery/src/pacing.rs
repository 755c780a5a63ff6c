//! Pacing: a sender's per-second rate in message parts, shared by every
//! concurrent invocation through one counter per sender and second, with
//! the slots a counter update takes kept warm for the batch's next texts;
//! and the carrier's day that daily caps count in.

use chrono::{DateTime, Duration, Utc};
use optline_ports::Pace;

use crate::dispatch::{Deps, DispatchError, Warm};

impl Warm {
    /// Uses `parts` slots taken earlier in this wall-clock second, if that
    /// many are left.
    pub(crate) fn take_slots(&self, key: &str, parts: u32) -> bool {
        let second = Utc::now().timestamp();
        let Ok(mut slots) = self.slots.lock() else {
            return false;
        };
        match slots.get_mut(key) {
            Some((s, n)) if *s == second && *n >= parts => {
                *n -= parts;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn keep_slots(&self, key: &str, second: i64, count: u32) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.insert(key.to_owned(), (second, count));
        }
    }
}

/// Slots taken per call to the shared counter: a batch's worth, so that a
/// busy sender costs one counter update per batch rather than per text.
pub const SLOTS_PER_TAKE: u32 = 10;

/// The longest dispatch waits for a send slot before handing the message
/// back to SQS (the function times out after 30 s).
pub const PACE_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Waits for the text's slots in the sender's shared per-second rate: one
/// per message part (a two-part text takes two), since carriers meter a
/// number's throughput in parts. A text longer than one second's rate
/// takes the whole second.
pub(crate) async fn pace(
    deps: &Deps,
    sender: optline_config::SendingIdentity<'_>,
    parts: u32,
) -> Result<(), DispatchError> {
    // The rate belongs to the sending number (a pool's number, or the
    // Messaging Service or number programs may share); scheduled texts
    // leave the lane's reserve free.
    let key = sender.key;
    let rate = sender.scheduled_rate();
    let parts = parts.clamp(1, rate);
    if deps.warm.take_slots(key, parts) {
        return Ok(());
    }
    // The concurrent texts of this invocation wait here for the one taking
    // slots, then use what it kept.
    let _taking = deps.warm.taking.lock().await;
    if deps.warm.take_slots(key, parts) {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let want = SLOTS_PER_TAKE.max(parts).min(rate);
    loop {
        match deps.pacer.acquire(key, rate, want, parts).await? {
            Pace::Granted { second, slots } => {
                // This text's parts; the rest for the next ones this second.
                deps.warm
                    .keep_slots(key, second, slots.saturating_sub(parts));
                return Ok(());
            }
            Pace::Full { wait } if started.elapsed() + wait <= PACE_MAX_WAIT => {
                tokio::time::sleep(wait).await;
            }
            Pace::Full { .. } => return Err(DispatchError::Paced),
        }
    }
}

/// The carrier's day (`YYYY-MM-DD`, midnight to midnight Pacific: when
/// T-Mobile resets its daily caps) holding `now`, and when the next begins.
pub(crate) fn carrier_day(now: DateTime<Utc>) -> (String, DateTime<Utc>) {
    let local = now.with_timezone(&chrono_tz::America::Los_Angeles);
    let day = local.date_naive();
    let next = day
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|midnight| {
            midnight
                .and_local_timezone(chrono_tz::America::Los_Angeles)
                .earliest()
        })
        .map_or(now + Duration::days(1), |t| t.with_timezone(&Utc));
    (day.to_string(), next)
}
