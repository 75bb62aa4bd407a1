//! Keyed rate limiters kept in process memory: the generic cell rate algorithm of the
//! `governor` crate, one state per key in a sharded concurrent map (no global lock on
//! the request path). Each replica counts on its own (documented in docs/decisions.md).
//! Keys not seen for a while are dropped by [`Limiter::housekeep`], which the server
//! calls on a timer, so a flood of distinct keys cannot grow the map without bound.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::RateLimiter;

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// A budget of `limit` requests per minute per key, refilled continuously.
pub struct Limiter {
    limit: u32,
    inner: Keyed,
    clock: DefaultClock,
}

/// The state of one key's budget after a request was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    /// Requests left right now (0 when refused).
    pub remaining: u32,
    /// Seconds until the budget is whole again (when refused: until the next request
    /// may pass).
    pub reset_secs: u64,
    pub allowed: bool,
}

fn whole_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Limiter {
    pub fn per_minute(limit: u32) -> Self {
        let limit = limit.max(1);
        let quota = governor::Quota::per_minute(NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN));
        let clock = DefaultClock::default();
        Limiter {
            limit,
            inner: RateLimiter::dashmap_with_clock(quota, clock.clone())
                .with_middleware::<StateInformationMiddleware>(),
            clock,
        }
    }

    /// Counts one request for `key` and tells what is left of its budget.
    pub fn take(&self, key: &str) -> Quota {
        match self.inner.check_key(&key.to_owned()) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                let used = u64::from(self.limit.saturating_sub(remaining));
                Quota {
                    limit: self.limit,
                    remaining,
                    // One request's worth of budget comes back every 60/limit seconds.
                    reset_secs: (used * 60).div_ceil(u64::from(self.limit)),
                    allowed: true,
                }
            }
            Err(not_until) => Quota {
                limit: self.limit,
                remaining: 0,
                reset_secs: whole_secs(not_until.wait_time_from(self.clock.now())).max(1),
                allowed: false,
            },
        }
    }

    /// Forgets keys whose budget is whole again; they would start afresh anyway.
    pub fn housekeep(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }

    /// How many keys are tracked (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.inner.len()
    }
}

/// Keyed budgets whose size differs per key group (a capture source's own
/// `rate_limit_per_minute`): one [`Limiter`] per distinct size.
#[derive(Default)]
pub struct Budgets {
    by_limit: std::sync::Mutex<std::collections::HashMap<u32, std::sync::Arc<Limiter>>>,
}

impl Budgets {
    /// Counts one request for `key` against a budget of `limit` per minute.
    pub fn take(&self, limit: u32, key: &str) -> Quota {
        let limit = limit.max(1);
        let limiter = match self.by_limit.lock() {
            Ok(mut map) => map
                .entry(limit)
                .or_insert_with(|| std::sync::Arc::new(Limiter::per_minute(limit)))
                .clone(),
            Err(_) => return Limiter::per_minute(limit).take(key),
        };
        limiter.take(key)
    }

    pub fn housekeep(&self) {
        if let Ok(map) = self.by_limit.lock() {
            map.values().for_each(|l| l.housekeep());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_and_refuses_past_the_limit() {
        let l = Limiter::per_minute(2);
        let first = l.take("user:a");
        assert_eq!((first.limit, first.remaining, first.allowed), (2, 1, true));
        assert!(first.reset_secs > 0 && first.reset_secs <= 60);
        assert_eq!(l.take("user:a").remaining, 0);
        let third = l.take("user:a");
        assert!(!third.allowed);
        assert_eq!(third.remaining, 0);
        assert!(third.reset_secs >= 1 && third.reset_secs <= 30, "{third:?}");
        assert!(l.take("user:b").allowed, "keys are counted apart");
        assert_eq!(l.tracked_keys(), 2);
    }

    #[test]
    fn housekeeping_keeps_keys_still_limited() {
        let l = Limiter::per_minute(1);
        assert!(l.take("ip:1").allowed);
        l.housekeep();
        assert!(
            !l.take("ip:1").allowed,
            "a spent budget survives housekeeping"
        );
    }
}
