//! A fixed-window attempt counter kept in process memory. With several replicas each
//! counts on its own, so the effective limit is per replica (documented in docs/).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct AttemptLimiter {
    per_window: u32,
    window: Duration,
    slots: Mutex<HashMap<String, (Instant, u32)>>,
}

impl AttemptLimiter {
    pub fn new(per_window: u32, window: Duration) -> Self {
        AttemptLimiter {
            per_window: per_window.max(1),
            window,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt for every key; `Err(seconds)` when any key is over its limit.
    pub fn hit(&self, keys: &[&str]) -> Result<(), u64> {
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.len() > 50_000 {
            let window = self.window;
            slots.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let mut wait = 0;
        for key in keys {
            let slot = slots.entry((*key).to_owned()).or_insert((now, 0));
            if now.duration_since(slot.0) >= self.window {
                *slot = (now, 0);
            }
            slot.1 += 1;
            if slot.1 > self.per_window {
                let left = self.window.saturating_sub(now.duration_since(slot.0));
                wait = wait.max(left.as_secs().max(1));
            }
        }
        if wait > 0 {
            Err(wait)
        } else {
            Ok(())
        }
    }
}

/// The state of one key's window after a request was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    /// Requests left in the window (0 when refused).
    pub remaining: u32,
    /// Seconds until the window starts again.
    pub reset_secs: u64,
    pub allowed: bool,
}

impl AttemptLimiter {
    /// Counts one request for `key` and tells what is left of its window.
    pub fn take(&self, key: &str) -> Quota {
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.len() > 50_000 {
            let window = self.window;
            slots.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let slot = slots.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(slot.0) >= self.window {
            *slot = (now, 0);
        }
        slot.1 = slot.1.saturating_add(1);
        let left = self.window.saturating_sub(now.duration_since(slot.0));
        Quota {
            limit: self.per_window,
            remaining: self.per_window.saturating_sub(slot.1),
            reset_secs: left.as_secs() + u64::from(left.subsec_nanos() > 0),
            allowed: slot.1 <= self.per_window,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_the_limit_per_key() {
        let l = AttemptLimiter::new(2, Duration::from_secs(60));
        assert!(l.hit(&["ip:1", "email:a"]).is_ok());
        assert!(l.hit(&["ip:1", "email:a"]).is_ok());
        assert!(l.hit(&["ip:2", "email:a"]).is_err());
        assert!(l.hit(&["ip:2", "email:b"]).is_ok());
    }

    #[test]
    fn take_counts_down_and_refuses_past_the_limit() {
        let l = AttemptLimiter::new(2, Duration::from_secs(60));
        let first = l.take("user:a");
        assert_eq!((first.limit, first.remaining, first.allowed), (2, 1, true));
        assert!(first.reset_secs > 0 && first.reset_secs <= 60);
        assert_eq!(l.take("user:a").remaining, 0);
        let third = l.take("user:a");
        assert!(!third.allowed);
        assert_eq!(third.remaining, 0);
        assert!(l.take("user:b").allowed, "keys are counted apart");
    }
}
