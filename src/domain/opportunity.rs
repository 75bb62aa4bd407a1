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

/// The stage gate: which of a stage's `required_fields` the opportunity (in its API
/// shape, after the proposed change) does not satisfy. A field is satisfied when it is
/// present and not null, not an empty string, not an empty list or object.
pub fn missing_required_fields(record: &Value, required: &[String]) -> Vec<String> {
    required
        .iter()
        .filter(|field| {
            let value = match field.strip_prefix("custom.") {
                Some(key) => record.get("custom").and_then(|c| c.get(key)),
                None => record.get(field.as_str()),
            };
            !is_filled(value)
        })
        .cloned()
        .collect()
}

fn is_filled(value: Option<&Value>) -> bool {
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
    fn gate_lists_each_missing_field() {
        let record = json!({"amount": null, "expected_close_date": "2026-12-01", "tags": [],
                            "account_id": "", "custom": {"po": "A-1", "empty": null}, "probability": 0});
        let required: Vec<String> = [
            "amount",
            "expected_close_date",
            "tags",
            "account_id",
            "custom.po",
            "custom.empty",
            "custom.none",
            "probability",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            missing_required_fields(&record, &required),
            [
                "amount",
                "tags",
                "account_id",
                "custom.empty",
                "custom.none"
            ]
        );
        assert!(missing_required_fields(&record, &[]).is_empty());
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
