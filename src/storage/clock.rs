//! The time the service writes (`created_at`, stage entries, closing times, expiries).
//! By default it is the system clock. A [`Clock`] set to a fixed time lets a test create
//! a deal "ten days ago" and then move it "today" through the API, instead of editing
//! stored timestamps behind the service's back.
//!
//! A request runs inside [`scope`] with the application's clock; [`super::run`] carries
//! it onto the blocking thread that does the database work, where [`now`] reads it.
//! Anything outside a request (start-up, demo data, timers) uses the system clock.

use std::cell::RefCell;
use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::{Duration, NaiveDateTime};

/// The system clock, or a set time that moves only when told (and by one microsecond
/// per reading, so that two writes never share a timestamp).
#[derive(Debug, Clone, Default)]
pub struct Clock(Arc<Mutex<Option<NaiveDateTime>>>);

impl Clock {
    /// From now on this clock reads `at` (then later times as it is read or advanced).
    pub fn set(&self, at: NaiveDateTime) {
        if let Ok(mut t) = self.0.lock() {
            *t = Some(at);
        }
    }

    /// Moves a set clock forward; sets it to the system time plus `by` otherwise.
    pub fn advance(&self, by: Duration) {
        if let Ok(mut t) = self.0.lock() {
            *t = Some(t.unwrap_or_else(system_now) + by);
        }
    }

    /// The current time in microseconds (what both databases store).
    pub fn now(&self) -> NaiveDateTime {
        match self.0.lock() {
            Ok(mut t) => match t.as_mut() {
                Some(at) => {
                    let now = *at;
                    *at += Duration::microseconds(1);
                    now
                }
                None => system_now(),
            },
            Err(_) => system_now(),
        }
    }
}

fn system_now() -> NaiveDateTime {
    let t = chrono::Utc::now().naive_utc();
    t - Duration::nanoseconds(i64::from(t.and_utc().timestamp_subsec_nanos() % 1000))
}

tokio::task_local! {
    static REQUEST_CLOCK: Clock;
}

thread_local! {
    static THREAD_CLOCK: RefCell<Option<Clock>> = const { RefCell::new(None) };
}

/// Runs a request's future with `clock` as its time.
pub async fn scope<F: Future>(clock: Clock, fut: F) -> F::Output {
    REQUEST_CLOCK.scope(clock, fut).await
}

/// The clock of the request being served, if any.
pub(super) fn current() -> Option<Clock> {
    REQUEST_CLOCK.try_with(Clock::clone).ok()
}

/// Runs `f` (on a blocking thread) with the request's clock.
pub(super) fn enter<T>(clock: Option<Clock>, f: impl FnOnce() -> T) -> T {
    let previous = THREAD_CLOCK.with(|c| c.replace(clock));
    let out = f();
    THREAD_CLOCK.with(|c| c.replace(previous));
    out
}

/// The time to write now: the request's clock, else the system's.
pub fn now() -> NaiveDateTime {
    THREAD_CLOCK
        .with(|c| c.borrow().as_ref().map(Clock::now))
        .or_else(|| current().map(|c| c.now()))
        .unwrap_or_else(system_now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_clock_moves_only_when_read_or_advanced() {
        let clock = Clock::default();
        let at = chrono::NaiveDate::from_ymd_opt(2025, 1, 10)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap();
        clock.set(at);
        assert_eq!(clock.now(), at);
        assert_eq!(clock.now(), at + Duration::microseconds(1));
        clock.advance(Duration::days(10));
        assert_eq!(
            clock.now(),
            at + Duration::days(10) + Duration::microseconds(2)
        );
        assert_eq!(
            enter(Some(clock.clone()), now),
            at + Duration::days(10) + Duration::microseconds(3)
        );
        assert!(
            now() > at + Duration::days(300),
            "outside, the system clock"
        );
    }
}
