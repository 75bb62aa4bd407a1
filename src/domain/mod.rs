//! Plain types and rules. Nothing here knows HTTP or SQL.

pub mod lead;
pub mod money;
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
