//! How a file's columns map to a record's fields: names are matched case- and
//! space-insensitively, with common aliases (`Company Name`, `E-mail`, `Phone Number`);
//! cell text is turned into the typed value the API takes (dates in ISO or `YYYY/MM/DD`,
//! amounts with thousands separators, lists separated by `;`).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::Kind;
use crate::error::FieldError;

/// The type of a field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Text,
    Int,
    Date,
    DateTime,
    List,
    Object,
    Amount,
}

/// Where a column's values go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A member of the record's input (the API's field).
    Field(&'static str, Ty),
    /// One BANT part of a lead (`bant.budget`).
    Bant(&'static str),
    /// A member of `custom` (`custom.contract_no`).
    Custom(String),
    /// A reference by another key, resolved while importing.
    Ref(Ref),
    /// The record's own id (from an export): matches the record.
    Id,
    /// A deal's past stages, `stage:time` pairs separated by `;`.
    StageHistory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ref {
    OwnerEmail,
    AccountExternalId,
    ContactExternalId,
    LeadExternalId,
    Pipeline,
    Stage,
    LossReason,
}

type Spec = (&'static str, Ty, &'static [&'static str]);

// Fields several kinds share, with their aliases.
const FIRST_NAME: Spec = (
    "first_name",
    Ty::Text,
    &["first", "given_name", "firstname", "名"],
);
const LAST_NAME: Spec = (
    "last_name",
    Ty::Text,
    &[
        "last",
        "surname",
        "family_name",
        "lastname",
        "name",
        "full_name",
        "姓名",
    ],
);
const EMAIL: Spec = (
    "email",
    Ty::Text,
    &["e_mail", "email_address", "mail", "邮箱"],
);
const PHONE: Spec = (
    "phone",
    Ty::Text,
    &["phone_number", "telephone", "tel", "mobile", "电话", "手机"],
);
const INDUSTRY: Spec = ("industry", Ty::Text, &["行业"]);
const COMPANY_SIZE: Spec = ("company_size", Ty::Text, &["size", "employees", "规模"]);
const REGION: Spec = ("region", Ty::Text, &["state", "province", "地区"]);
const OWNER_ID: Spec = ("owner_id", Ty::Text, &[]);
const EXTERNAL_ID: Spec = ("external_id", Ty::Text, &["external_key", "source_id"]);
const TAGS: Spec = ("tags", Ty::List, &["labels"]);
const CUSTOM: Spec = ("custom", Ty::Object, &[]);

const LEAD: &[Spec] = &[
    FIRST_NAME,
    LAST_NAME,
    EMAIL,
    PHONE,
    (
        "company",
        Ty::Text,
        &["company_name", "organization", "organisation", "公司"],
    ),
    ("job_title", Ty::Text, &["title", "position", "职位"]),
    INDUSTRY,
    COMPANY_SIZE,
    REGION,
    ("country", Ty::Text, &[]),
    ("source", Ty::Text, &["lead_source", "来源"]),
    ("source_detail", Ty::Text, &["campaign"]),
    ("interest", Ty::Text, &["notes", "message"]),
    ("status", Ty::Text, &["lead_status"]),
    ("bant", Ty::Object, &[]),
    TAGS,
    OWNER_ID,
    (
        "next_follow_up_at",
        Ty::DateTime,
        &["follow_up", "next_follow_up"],
    ),
    EXTERNAL_ID,
    CUSTOM,
];

const ACCOUNT: &[Spec] = &[
    (
        "name",
        Ty::Text,
        &[
            "company",
            "company_name",
            "account_name",
            "organization",
            "公司",
        ],
    ),
    INDUSTRY,
    COMPANY_SIZE,
    REGION,
    (
        "website",
        Ty::Text,
        &["url", "web", "homepage", "website_url"],
    ),
    OWNER_ID,
    EXTERNAL_ID,
];

const CONTACT: &[Spec] = &[
    FIRST_NAME,
    LAST_NAME,
    EMAIL,
    PHONE,
    ("account_id", Ty::Text, &[]),
    OWNER_ID,
    EXTERNAL_ID,
];

const OPPORTUNITY: &[Spec] = &[
    (
        "name",
        Ty::Text,
        &[
            "deal_name",
            "opportunity_name",
            "opportunity",
            "deal",
            "title",
        ],
    ),
    ("pipeline_id", Ty::Text, &[]),
    ("stage_id", Ty::Text, &[]),
    ("amount", Ty::Amount, &["value", "deal_value", "金额"]),
    ("currency", Ty::Text, &[]),
    ("probability", Ty::Int, &[]),
    (
        "expected_close_date",
        Ty::Date,
        &["close_date", "expected_close"],
    ),
    ("account_id", Ty::Text, &[]),
    ("contact_id", Ty::Text, &[]),
    ("lead_id", Ty::Text, &[]),
    OWNER_ID,
    ("source", Ty::Text, &["lead_source"]),
    INDUSTRY,
    COMPANY_SIZE,
    REGION,
    TAGS,
    ("next_action", Ty::Object, &[]),
    EXTERNAL_ID,
    CUSTOM,
];

/// Columns an export writes that an import does not set (derived or kept by the
/// server); they are skipped quietly so an exported file imports as it is.
const READ_ONLY: &[&str] = &[
    "score",
    "score_breakdown",
    "last_activity_at",
    "converted_at",
    "converted_opportunity_id",
    "disqualified_reason",
    "version",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "status",
    "lost_reason_id",
    "lost_note",
    "stage_entered_at",
    "closed_at",
    "stage_name",
    "stage_probability",
    "weighted_amount",
    "days_in_stage",
    "is_stalled",
    "stalled_days",
    "amount_minor",
    "effective_probability",
    "won_at",
    "lost_at",
    "error",
];

fn refs(kind: Kind) -> &'static [(Ref, &'static [&'static str])] {
    const OWNER: (Ref, &[&str]) = (
        Ref::OwnerEmail,
        &["owner_email", "owner", "sales_rep", "负责人"],
    );
    match kind {
        Kind::Leads | Kind::Accounts => &[OWNER],
        Kind::Contacts => &[OWNER, (Ref::AccountExternalId, &["account_external_id"])],
        Kind::Opportunities => &[
            OWNER,
            (Ref::AccountExternalId, &["account_external_id"]),
            (Ref::ContactExternalId, &["contact_external_id"]),
            (Ref::LeadExternalId, &["lead_external_id"]),
            (Ref::Pipeline, &["pipeline", "pipeline_name"]),
            (
                Ref::Stage,
                &["stage", "stage_name_or_id", "deal_stage", "阶段"],
            ),
            (Ref::LossReason, &["loss_reason", "lost_reason"]),
        ],
    }
}

fn specs(kind: Kind) -> &'static [Spec] {
    match kind {
        Kind::Leads => LEAD,
        Kind::Accounts => ACCOUNT,
        Kind::Contacts => CONTACT,
        Kind::Opportunities => OPPORTUNITY,
    }
}

/// A column name as compared: trimmed, lower case, runs of spaces, `-` and `_` as one
/// `_`.
pub fn normalize(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().trim_start_matches('\u{feff}').chars() {
        if c == ' ' || c == '-' || c == '_' || c == '\t' {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out.trim_end_matches('_').to_owned()
}

/// What a column of a file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    Known(Target),
    /// Written by exports, set by the server: skipped.
    ReadOnly,
    Unknown,
}

/// What the column `name` is for `kind`.
pub fn target(kind: Kind, name: &str) -> Column {
    let n = normalize(name);
    if n == "id" {
        return Column::Known(Target::Id);
    }
    if let Some(key) = n.strip_prefix("custom.") {
        let original = name
            .trim()
            .split_once('.')
            .map(|(_, k)| k.trim())
            .unwrap_or(key);
        if !original.is_empty() && kind != Kind::Accounts && kind != Kind::Contacts {
            return Column::Known(Target::Custom(original.to_owned()));
        }
    }
    if kind == Kind::Leads {
        for part in ["budget", "authority", "need", "timeline"] {
            if n == part || n.strip_prefix("bant.") == Some(part) {
                return Column::Known(Target::Bant(part));
            }
        }
    }
    if kind == Kind::Opportunities && (n == "stage_history" || n == "history") {
        return Column::Known(Target::StageHistory);
    }
    for (name, ty, aliases) in specs(kind) {
        if n == *name || aliases.contains(&n.as_str()) {
            return Column::Known(Target::Field(name, *ty));
        }
    }
    for (r, aliases) in refs(kind) {
        if aliases.contains(&n.as_str()) {
            return Column::Known(Target::Ref(*r));
        }
    }
    if READ_ONLY.contains(&n.as_str()) {
        return Column::ReadOnly;
    }
    Column::Unknown
}

/// A cell's text, or `None` when it is empty. A leading `'` protecting a formula-like
/// value (as exports write it) is dropped; a value that would run as a spreadsheet
/// formula is refused.
pub fn text(field: &str, value: &Value) -> Result<Option<String>, FieldError> {
    let s = match value {
        Value::Null => return Ok(None),
        Value::String(s) => s.as_str(),
        Value::Bool(b) => return Ok(Some(b.to_string())),
        Value::Number(n) => return Ok(Some(n.to_string())),
        _ => {
            return Err(FieldError::new(field, "invalid_type", "expected text"));
        }
    };
    if s.trim().is_empty() {
        return Ok(None);
    }
    if let Some(rest) = s.strip_prefix('\'') {
        if looks_like_formula(rest) {
            return Ok(Some(rest.to_owned()));
        }
    }
    if looks_like_formula(s) {
        return Err(FieldError::new(
            field,
            "formula",
            "looks like a spreadsheet formula; prefix it with ' to store it as text",
        ));
    }
    Ok(Some(s.to_owned()))
}

/// Starts like a formula a spreadsheet would run: `=` or `@`, or `+`/`-` not followed
/// by a number (`+86 10 1234` and `-12.5` are values).
pub fn looks_like_formula(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some('=' | '@') => true,
        Some('+' | '-') => !matches!(chars.next(), Some('0'..='9' | '.' | ' ' | '(') | None),
        _ => false,
    }
}

/// Converts a cell to the JSON value of a field of type `ty`.
pub fn convert(field: &str, ty: Ty, value: &Value) -> Result<Value, FieldError> {
    if !value.is_string() && !value.is_null() {
        // JSON input already carries types; dates and amounts are still checked below
        // when given as strings.
        if ty == Ty::Amount && value.is_number() {
            return Ok(Value::String(value.to_string()));
        }
        return Ok(value.clone());
    }
    let Some(s) = text(field, value)? else {
        return Ok(if ty == Ty::List {
            Value::Array(vec![])
        } else {
            Value::Null
        });
    };
    let s = s.trim();
    let invalid = |code: &str, message: &str| FieldError::new(field, code, message);
    Ok(match ty {
        Ty::Text => Value::String(s.to_owned()),
        Ty::Int => match s.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => return Err(invalid("invalid", "expected a whole number")),
        },
        Ty::Date => match date(s) {
            Some(d) => Value::String(d.format("%Y-%m-%d").to_string()),
            None => {
                return Err(invalid(
                    "invalid_date",
                    "write dates as YYYY-MM-DD or YYYY/MM/DD",
                ))
            }
        },
        Ty::DateTime => {
            match datetime(s) {
                Some(t) => Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
                None => return Err(invalid(
                    "invalid_date",
                    "write times as RFC 3339 (2025-03-01T09:30:00Z), YYYY-MM-DD HH:MM or a date",
                )),
            }
        }
        Ty::List => {
            if s.starts_with('[') {
                serde_json::from_str(s).map_err(|_| {
                    invalid("invalid", "expected a JSON array or values separated by ;")
                })?
            } else {
                let sep = if s.contains(';') { ';' } else { ',' };
                Value::Array(
                    s.split(sep)
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(|t| Value::String(t.to_owned()))
                        .collect(),
                )
            }
        }
        Ty::Object => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Err(invalid("invalid", "expected a JSON object")),
        },
        Ty::Amount => Value::String(amount(s).ok_or_else(|| {
            invalid(
                "invalid_number",
                "write amounts as 12500.00 (a comma may group thousands: 12,500.00)",
            )
        })?),
    })
}

/// `12,500.00` → `12500.00`; `12500` as is. Dots as thousands separators (`12.500,00`)
/// are ambiguous and refused.
pub fn amount(s: &str) -> Option<String> {
    let s = s.trim();
    let (sign, digits) = match s.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", s),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    if frac.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let int = if int.contains(',') {
        let groups: Vec<&str> = int.split(',').collect();
        let ok = (1..=3).contains(&groups[0].len())
            && groups[1..].iter().all(|g| g.len() == 3)
            && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return None;
        }
        groups.concat()
    } else {
        int.to_owned()
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match frac {
        Some(f) => format!("{sign}{int}.{f}"),
        None => format!("{sign}{int}"),
    })
}

/// A date as ISO (`2025-03-01`), with slashes (`2025/03/01`) or the date of an RFC 3339
/// time.
pub fn date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%Y/%m/%d"))
        .ok()
        .or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|t| t.date_naive()))
}

/// A time as RFC 3339, `YYYY-MM-DD HH:MM[:SS]` (UTC), or a date (midnight UTC).
pub fn datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y/%m/%d %H:%M:%S",
        "%Y/%m/%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    date(s)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Puts `value` at `key` of the object `into[member]`, creating it.
pub fn set_member(into: &mut Map<String, Value>, member: &str, key: &str, value: Value) {
    let entry = into
        .entry(member.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(m) = entry {
        m.insert(key.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_map_to_fields() {
        assert_eq!(normalize("  Company  Name "), "company_name");
        assert_eq!(
            target(Kind::Leads, "Company Name"),
            Column::Known(Target::Field("company", Ty::Text))
        );
        assert_eq!(
            target(Kind::Leads, "E-mail"),
            Column::Known(Target::Field("email", Ty::Text))
        );
        assert_eq!(
            target(Kind::Leads, "Phone Number"),
            Column::Known(Target::Field("phone", Ty::Text))
        );
        assert_eq!(
            target(Kind::Accounts, "Company Name"),
            Column::Known(Target::Field("name", Ty::Text))
        );
        assert_eq!(target(Kind::Leads, "score"), Column::ReadOnly);
        assert_eq!(target(Kind::Leads, "favourite colour"), Column::Unknown);
        assert_eq!(
            target(Kind::Opportunities, "custom.Contract No"),
            Column::Known(Target::Custom("Contract No".into()))
        );
        assert_eq!(
            target(Kind::Leads, "BANT.Budget"),
            Column::Known(Target::Bant("budget"))
        );
    }

    #[test]
    fn cells_become_typed_values() {
        assert_eq!(amount("12,500.00").as_deref(), Some("12500.00"));
        assert_eq!(amount("1,234,567").as_deref(), Some("1234567"));
        assert_eq!(amount("12.500,00"), None);
        assert_eq!(amount("12,50"), None);
        let v = |s: &str| Value::String(s.into());
        assert_eq!(
            convert("d", Ty::Date, &v("2025/03/01")).unwrap(),
            v("2025-03-01")
        );
        assert_eq!(
            convert("d", Ty::Date, &v("01.03.2025")).unwrap_err().code,
            "invalid_date"
        );
        assert_eq!(
            convert("t", Ty::DateTime, &v("2025-03-01 09:30")).unwrap(),
            v("2025-03-01T09:30:00.000000Z")
        );
        assert_eq!(
            convert("tags", Ty::List, &v("a; b;")).unwrap(),
            serde_json::json!(["a", "b"])
        );
        assert_eq!(convert("x", Ty::Text, &v("")).unwrap(), Value::Null);
    }

    #[test]
    fn formulas_are_refused_unless_quoted() {
        let v = |s: &str| Value::String(s.into());
        assert_eq!(
            text("c", &v("=cmd|' /C calc'!A0")).unwrap_err().code,
            "formula"
        );
        assert_eq!(
            text("c", &v("'=SUM(A1)")).unwrap().as_deref(),
            Some("=SUM(A1)")
        );
        assert_eq!(text("c", &v("-12.5")).unwrap().as_deref(), Some("-12.5"));
        assert_eq!(text("c", &v("@here")).unwrap_err().code, "formula");
    }
}
