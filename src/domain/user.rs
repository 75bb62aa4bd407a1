//! Users, roles and emails.

use super::lead::text_enum;
use super::Problems;

text_enum!(Role { Admin = "admin", Manager = "manager", Rep = "rep" });

/// A syntactically plausible email address, lower-cased so lookups are case-blind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, &'static str> {
        let v = raw.trim().to_lowercase();
        let Some((local, domain)) = v.split_once('@') else {
            return Err("must be an email address");
        };
        let ok = !local.is_empty()
            && !domain.is_empty()
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !v.contains(char::is_whitespace)
            && !domain.contains('@')
            && v.len() <= 254;
        if ok {
            Ok(Email(v))
        } else {
            Err("must be an email address")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

pub const MIN_PASSWORD_LEN: usize = 10;

/// Checks a new password; the message names the rule, never the value.
pub fn check_password(p: &mut Problems, field: &str, password: &str) {
    if password.chars().count() < MIN_PASSWORD_LEN {
        p.add(
            field,
            "too_short",
            format!("must be at least {MIN_PASSWORD_LEN} characters"),
        );
    } else if password.len() > 1024 {
        p.add(field, "too_long", "must be at most 1024 bytes");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        for bad in ["", "ann", "@x.com", "ann@", "a b@x.com", "a@b@c", "a@.com"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}

// What an API key may do (people are limited by their role alone).
text_enum!(Scope {
    LeadsRead = "leads:read",
    LeadsWrite = "leads:write",
    OpportunitiesRead = "opportunities:read",
    OpportunitiesWrite = "opportunities:write",
    Imports = "imports",
    ReportsRead = "reports:read",
    WebhooksManage = "webhooks:manage",
    /// Read pipeline and stage configuration.
    PipelinesRead = "pipelines:read",
});
