//! Checks shared by the records' write paths: optional texts, emails, tags, custom
//! fields and owners.

use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::domain::ids::UserId;
use crate::domain::user::Email;
use crate::domain::Problems;
use crate::error::AppResult;
use crate::storage::types::JsonText;
use crate::storage::{users, DbConn};

/// A trimmed optional text: empty becomes `None`, longer than `max` is an error.
pub fn opt_text(
    p: &mut Problems,
    field: &str,
    value: &Option<String>,
    max: usize,
) -> Option<String> {
    let v = value.as_deref().map(str::trim).filter(|v| !v.is_empty())?;
    if v.chars().count() > max {
        p.add(
            field,
            "too_long",
            format!("must be at most {max} characters"),
        );
    }
    Some(v.to_owned())
}

pub fn opt_email(p: &mut Problems, field: &str, value: &Option<String>) -> Option<String> {
    let v = value.as_deref().map(str::trim).filter(|v| !v.is_empty())?;
    match Email::parse(v) {
        Ok(e) => Some(e.into_inner()),
        Err(m) => {
            p.add(field, "invalid", m);
            None
        }
    }
}

/// Tags: trimmed, unique, at most 50 of at most 50 characters; stored as a JSON array.
pub fn tags_json(p: &mut Problems, tags: &[String]) -> AppResult<JsonText<Vec<String>>> {
    let mut out: Vec<String> = Vec::new();
    for (i, t) in tags.iter().enumerate() {
        let t = t.trim();
        if t.is_empty() || t.chars().count() > 50 {
            p.add(
                format!("tags[{i}]"),
                "invalid",
                "a tag has 1 to 50 characters",
            );
        } else if !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
    }
    if out.len() > 50 {
        p.add("tags", "too_many", "at most 50 tags");
    }
    JsonText::encode(out)
}

/// Custom fields: a flat-or-nested JSON object of at most 16 KiB.
pub fn custom_json(
    p: &mut Problems,
    custom: &Option<Map<String, Value>>,
) -> AppResult<JsonText<Map<String, Value>>> {
    let custom = JsonText::encode(custom.clone().unwrap_or_default())?;
    if custom.text().len() > 16 * 1024 {
        p.add("custom", "too_large", "custom fields are limited to 16 KiB");
    }
    Ok(custom)
}

/// The owner of a record being written: the caller by default; otherwise an active user
/// the caller may see (a rep can only own records themselves).
pub fn resolve_owner(
    conn: &mut DbConn,
    p: &mut Problems,
    caller: &Caller,
    requested: Option<&str>,
) -> AppResult<UserId> {
    let Some(owner) = requested else {
        return Ok(caller.user_id.clone());
    };
    if !crate::domain::is_id(owner) {
        crate::domain::optional_id(p, "owner_id", Some(owner));
        return Ok(caller.user_id.clone());
    }
    if caller.user_id == owner {
        return Ok(owner.into());
    }
    let owner = UserId::from(owner);
    let ok =
        caller.visibility().allows(&owner) && users::find(conn, &owner)?.is_some_and(|u| u.active);
    if !ok {
        p.add(
            "owner_id",
            "not_found",
            "no such active user among those you may assign to",
        );
    }
    Ok(owner)
}
