//! Plain types and rules. Nothing here knows HTTP or SQL.

pub mod ids;
pub mod import;
pub mod integration;
pub mod lead;
pub mod money;
pub mod network;
pub mod opportunity;
pub mod pipeline;
pub mod templates;
pub mod user;

/// Collects field errors while checking a whole input, so a client sees every problem
/// of a request at once rather than one per round trip.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<crate::error::FieldError>);

impl Problems {
    pub fn add(&mut self, field: impl Into<String>, code: &str, message: impl Into<String>) {
        self.0
            .push(crate::error::FieldError::new(field, code, message));
    }

    pub fn into_result(self) -> crate::error::AppResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(crate::error::AppError::Validation(self.0))
        }
    }
}

/// Caps on free text, so that no field stores what a request body can carry (the body
/// limit is a megabyte): names and titles, longer descriptions, notes on a change.
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
pub const MAX_NOTE_CHARS: usize = 2000;

/// True for an id in the form the service writes them (`storage::new_id`): a UUID,
/// hyphenated and in lower case.
pub fn is_id(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok_and(|u| u.hyphenated().to_string() == text)
}

/// An optional member that must be an id when present.
pub fn optional_id(p: &mut Problems, field: &str, value: Option<&str>) {
    if value.is_some_and(|v| !is_id(v)) {
        p.add(
            field,
            "invalid",
            "must be an id (a UUID such as 01970a7e-3c4f-7d2b-9a51-2f6c8e0b4d13)",
        );
    }
}

/// Trims a required text; empty or longer than `max` chars is a field error.
pub fn required_text(p: &mut Problems, field: &str, value: &str, max: usize) -> String {
    let v = value.trim();
    if v.is_empty() {
        p.add(field, "required", "must not be empty");
    } else if v.chars().count() > max {
        p.add(
            field,
            "too_long",
            format!("must be at most {max} characters"),
        );
    }
    v.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_canonical_uuids() {
        assert!(is_id("01970a7e-3c4f-7d2b-9a51-2f6c8e0b4d13"));
        for bad in [
            "",
            "nope",
            "01970A7E-3C4F-7D2B-9A51-2F6C8E0B4D13",
            "01970a7e3c4f7d2b9a512f6c8e0b4d13",
            "{01970a7e-3c4f-7d2b-9a51-2f6c8e0b4d13}",
            " 01970a7e-3c4f-7d2b-9a51-2f6c8e0b4d13",
        ] {
            assert!(!is_id(bad), "{bad:?}");
        }
    }
}
