//! Opportunities: statuses, the stage gate, and the stalled rule.

use chrono::NaiveDateTime;
use serde_json::Value;

use super::lead::text_enum;

text_enum!(
    /// Where a deal stands.
    OpportunityStatus { Open = "open", Won = "won", Lost = "lost" }
);

text_enum!(
    /// How a stage change reached the system.
    Channel { Api = "api", Import = "import", Capture = "capture", System = "system" }
);

text_enum!(
    /// Kinds of sales activity.
    ActivityType {
        Call = "call", Email = "email", Meeting = "meeting", Demo = "demo",
        Proposal = "proposal", Note = "note", Task = "task",
    }
);

/// Whether a JSON member counts as set for the stage gate: present, not null, not an
/// empty string, list or object.
pub fn is_filled(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// Why an open deal counts as stalled. The SQL filter in
/// `storage::opportunities::stalled_condition` expresses the same rule for queries;
/// a test checks that both agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallReason {
    /// In its stage for more than the stage's `stalled_after_days`.
    InStageTooLong,
    /// No activity (or none since creation) for more than that many days.
    NoRecentActivity,
}

impl StallReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StallReason::InStageTooLong => "in_stage_too_long",
            StallReason::NoRecentActivity => "no_recent_activity",
        }
    }
}

/// The stalled rule: a threshold of `days` applies both to the time in the stage and to
/// the time since the last activity (or creation, when there was none).
pub fn stall_reasons(
    days: Option<i32>,
    stage_entered_at: NaiveDateTime,
    last_activity_or_created: NaiveDateTime,
    now: NaiveDateTime,
) -> Vec<StallReason> {
    let Some(days) = days else { return Vec::new() };
    let limit = chrono::Duration::days(i64::from(days));
    let mut reasons = Vec::new();
    if now - stage_entered_at > limit {
        reasons.push(StallReason::InStageTooLong);
    }
    if now - last_activity_or_created > limit {
        reasons.push(StallReason::NoRecentActivity);
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filled_means_present_and_not_empty() {
        let record =
            json!({"zero": 0, "text": " ", "list": [], "object": {}, "null": null, "yes": "a"});
        for (key, filled) in [
            ("zero", true),
            ("text", false),
            ("list", false),
            ("object", false),
            ("null", false),
            ("missing", false),
            ("yes", true),
        ] {
            assert_eq!(is_filled(record.get(key)), filled, "{key}");
        }
    }

    #[test]
    fn stalled_needs_a_threshold_and_counts_whole_periods() {
        let t = |d: i64| {
            chrono::DateTime::from_timestamp(d * 86_400, 0)
                .unwrap()
                .naive_utc()
        };
        assert!(stall_reasons(None, t(0), t(0), t(100)).is_empty());
        assert!(
            stall_reasons(Some(10), t(0), t(0), t(10)).is_empty(),
            "exactly at the threshold is not stalled"
        );
        assert_eq!(
            stall_reasons(Some(10), t(0), t(5), t(11)),
            [StallReason::InStageTooLong]
        );
        assert_eq!(
            stall_reasons(Some(10), t(5), t(0), t(11)),
            [StallReason::NoRecentActivity]
        );
        assert_eq!(stall_reasons(Some(10), t(0), t(0), t(11)).len(), 2);
    }
}
