//! Users, roles and emails.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Problems;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Manager,
    Rep,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Rep => "rep",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "manager" => Some(Role::Manager),
            "rep" => Some(Role::Rep),
            _ => None,
        }
    }
}

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Scope {
    #[serde(rename = "leads:read")]
    LeadsRead,
    #[serde(rename = "leads:write")]
    LeadsWrite,
    #[serde(rename = "opportunities:read")]
    OpportunitiesRead,
    #[serde(rename = "opportunities:write")]
    OpportunitiesWrite,
    #[serde(rename = "imports")]
    Imports,
    #[serde(rename = "reports:read")]
    ReportsRead,
    #[serde(rename = "webhooks:manage")]
    WebhooksManage,
    /// Read pipeline and stage configuration.
    #[serde(rename = "pipelines:read")]
    PipelinesRead,
}
