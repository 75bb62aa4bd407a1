//! Settings: defaults, then an optional `stageflow.toml`, then `STAGEFLOW_*` environment
//! variables. Secrets are `secrecy::SecretString`s: they never reach a log line or a
//! `Debug` print, are wiped from memory when dropped, and are read only where they are
//! used, through `ExposeSecret`.

pub use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub database_url: String,
    pub bind: String,
    pub jwt_secret: Option<SecretString>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// Lifetime of access tokens, in seconds.
    pub token_ttl_secs: i64,
    pub admin_email: Option<String>,
    pub admin_password: Option<SecretString>,
    pub cors_origins: Vec<String>,
    pub log: String,
    pub log_format: LogFormat,
    pub default_currency: String,
    /// Largest JSON body accepted, in bytes.
    pub max_body_bytes: usize,
    pub pool_size: u32,
    /// Sign-in attempts per minute on `/auth/token` for one email from one client IP.
    pub login_attempts_per_minute: u32,
    /// Sign-in attempts per minute from one client IP, whatever the email.
    pub login_ip_attempts_per_minute: u32,
    /// `Strict-Transport-Security` value to send (e.g. `max-age=31536000`); none by
    /// default, since a TLS proxy in front usually owns that decision.
    pub hsts: Option<String>,
    /// API requests per minute per credential (user or API key).
    pub rate_limit_per_minute: u32,
    /// API requests per minute per client IP without valid credentials.
    pub public_rate_limit_per_minute: u32,
    /// Networks webhook deliveries may reach although they are internal (comma-separated
    /// CIDRs, e.g. `127.0.0.0/8`); empty by default.
    pub webhook_allowed_networks: String,
    /// The first retry's delay; each next one doubles, up to 12 hours.
    pub webhook_retry_base_ms: u64,
    /// How long a delivery is retried before it is `failed` (3 days).
    pub webhook_retry_window_secs: u64,
    /// The whole time a receiver has to answer.
    pub webhook_timeout_ms: u64,
    /// How often an idle delivery worker looks for due deliveries.
    pub webhook_poll_ms: u64,
    /// How often stalled deals are looked for (`opportunity.stalled`).
    pub stall_scan_secs: u64,
    /// Capture posts per minute per client IP and source.
    pub capture_ip_per_minute: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: "sqlite://stageflow.db".into(),
            bind: "127.0.0.1:8080".into(),
            jwt_secret: None,
            jwt_issuer: "stageflow".into(),
            jwt_audience: "stageflow-api".into(),
            token_ttl_secs: 3600,
            admin_email: None,
            admin_password: None,
            cors_origins: Vec::new(),
            log: "info".into(),
            log_format: LogFormat::Pretty,
            default_currency: "CNY".into(),
            max_body_bytes: 1024 * 1024,
            pool_size: 8,
            login_attempts_per_minute: 10,
            login_ip_attempts_per_minute: 30,
            hsts: None,
            rate_limit_per_minute: 1200,
            public_rate_limit_per_minute: 120,
            webhook_allowed_networks: String::new(),
            webhook_retry_base_ms: 10_000,
            webhook_retry_window_secs: 3 * 24 * 3600,
            webhook_timeout_ms: 10_000,
            webhook_poll_ms: 1_000,
            stall_scan_secs: 60,
            capture_ip_per_minute: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid {path}: {source}")]
    Toml {
        path: String,
        source: toml::de::Error,
    },
    #[error("invalid {var}: {why}")]
    Env { var: &'static str, why: String },
    #[error("invalid setting {name}: {why}")]
    Setting { name: &'static str, why: String },
}

impl Settings {
    /// Loads from `STAGEFLOW_CONFIG` (or `./stageflow.toml` when it exists), then the
    /// environment.
    pub fn load() -> Result<Settings, ConfigError> {
        let explicit = std::env::var("STAGEFLOW_CONFIG").ok();
        let path = explicit.clone().unwrap_or_else(|| "stageflow.toml".into());
        let mut settings = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|source| ConfigError::Toml {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
                Settings::default()
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        settings.apply_env(|name| std::env::var(name).ok())?;
        // A default currency from the file is checked like one from the environment:
        // it decides how many decimals amounts have.
        let currency =
            crate::domain::money::Currency::parse(&settings.default_currency).map_err(|why| {
                ConfigError::Setting {
                    name: "default_currency",
                    why: why.into(),
                }
            })?;
        settings.default_currency = currency.to_string();
        Ok(settings)
    }

    /// Overrides fields from `STAGEFLOW_*` variables read through `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let text = |var: &str| get(var).filter(|v| !v.trim().is_empty());
        if let Some(v) = text("STAGEFLOW_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = text("STAGEFLOW_BIND") {
            self.bind = v;
        }
        if let Some(v) = text("STAGEFLOW_JWT_SECRET") {
            self.jwt_secret = Some(v.into());
        }
        if let Some(v) = text("STAGEFLOW_JWT_ISSUER") {
            self.jwt_issuer = v;
        }
        if let Some(v) = text("STAGEFLOW_JWT_AUDIENCE") {
            self.jwt_audience = v;
        }
        if let Some(v) = text("STAGEFLOW_ADMIN_EMAIL") {
            self.admin_email = Some(v);
        }
        if let Some(v) = text("STAGEFLOW_ADMIN_PASSWORD") {
            self.admin_password = Some(v.into());
        }
        if let Some(v) = text("STAGEFLOW_CORS_ORIGINS") {
            self.cors_origins = v
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(v) = text("STAGEFLOW_LOG") {
            self.log = v;
        }
        if let Some(v) = text("STAGEFLOW_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Env {
                        var: "STAGEFLOW_LOG_FORMAT",
                        why: "expected pretty or json".into(),
                    })
                }
            };
        }
        if let Some(v) = text("STAGEFLOW_HSTS") {
            self.hsts = Some(v);
        }
        if let Some(v) = text("STAGEFLOW_DEFAULT_CURRENCY") {
            let code =
                crate::domain::money::Currency::parse(&v).map_err(|why| ConfigError::Env {
                    var: "STAGEFLOW_DEFAULT_CURRENCY",
                    why: why.into(),
                })?;
            self.default_currency = code.to_string();
        }
        if let Some(v) = get("STAGEFLOW_WEBHOOK_ALLOWED_NETWORKS") {
            self.webhook_allowed_networks = v;
        }
        crate::domain::network::Networks::parse(&self.webhook_allowed_networks).map_err(|why| {
            ConfigError::Env {
                var: "STAGEFLOW_WEBHOOK_ALLOWED_NETWORKS",
                why,
            }
        })?;
        parse_num(
            &text,
            "STAGEFLOW_WEBHOOK_RETRY_BASE_MS",
            &mut self.webhook_retry_base_ms,
        )?;
        parse_num(
            &text,
            "STAGEFLOW_WEBHOOK_RETRY_WINDOW_SECS",
            &mut self.webhook_retry_window_secs,
        )?;
        parse_num(
            &text,
            "STAGEFLOW_WEBHOOK_TIMEOUT_MS",
            &mut self.webhook_timeout_ms,
        )?;
        parse_num(
            &text,
            "STAGEFLOW_WEBHOOK_POLL_MS",
            &mut self.webhook_poll_ms,
        )?;
        parse_num(
            &text,
            "STAGEFLOW_STALL_SCAN_SECS",
            &mut self.stall_scan_secs,
        )?;
        parse_num(
            &text,
            "STAGEFLOW_CAPTURE_IP_PER_MINUTE",
            &mut self.capture_ip_per_minute,
        )?;
        parse_num(&text, "STAGEFLOW_TOKEN_TTL_SECS", &mut self.token_ttl_secs)?;
        parse_num(&text, "STAGEFLOW_MAX_BODY_BYTES", &mut self.max_body_bytes)?;
        parse_num(&text, "STAGEFLOW_POOL_SIZE", &mut self.pool_size)?;
        parse_num(
            &text,
            "STAGEFLOW_LOGIN_ATTEMPTS_PER_MINUTE",
            &mut self.login_attempts_per_minute,
        )?;
        parse_num(
            &text,
            "STAGEFLOW_LOGIN_IP_ATTEMPTS_PER_MINUTE",
            &mut self.login_ip_attempts_per_minute,
        )?;
        parse_num(
            &text,
            "STAGEFLOW_RATE_LIMIT_PER_MINUTE",
            &mut self.rate_limit_per_minute,
        )?;
        parse_num(
            &text,
            "STAGEFLOW_PUBLIC_RATE_LIMIT_PER_MINUTE",
            &mut self.public_rate_limit_per_minute,
        )?;
        Ok(())
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://")
    }
}

fn parse_num<T: std::str::FromStr>(
    text: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    slot: &mut T,
) -> Result<(), ConfigError> {
    if let Some(v) = text(var) {
        *slot = v.trim().parse().map_err(|_| ConfigError::Env {
            var,
            why: format!("{v:?} is not a number"),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_defaults_and_secrets_stay_hidden() {
        let mut s = Settings::default();
        s.apply_env(|k| match k {
            "STAGEFLOW_JWT_SECRET" => Some("x".repeat(40)),
            "STAGEFLOW_CORS_ORIGINS" => Some("https://a.example, https://b.example".into()),
            "STAGEFLOW_POOL_SIZE" => Some("3".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            s.cors_origins,
            vec!["https://a.example", "https://b.example"]
        );
        assert_eq!(s.pool_size, 3);
        assert!(!format!("{s:?}").contains("xxxx"));
    }

    #[test]
    fn numeric_secrets_stay_text_and_blank_variables_are_unset() {
        let mut s = Settings::default();
        s.apply_env(|k| match k {
            "STAGEFLOW_ADMIN_PASSWORD" => Some("20261202".into()),
            "STAGEFLOW_JWT_SECRET" => Some("   ".into()),
            "STAGEFLOW_BIND" => Some(String::new()),
            _ => None,
        })
        .unwrap();
        let password = s
            .admin_password
            .as_ref()
            .map(|p| p.expose_secret().to_owned());
        assert_eq!(password.as_deref(), Some("20261202"));
        assert!(s.jwt_secret.is_none(), "a blank secret is no secret");
        assert_eq!(s.bind, Settings::default().bind);
    }

    #[test]
    fn bad_numbers_are_refused() {
        let mut s = Settings::default();
        let err = s
            .apply_env(|k| (k == "STAGEFLOW_POOL_SIZE").then(|| "many".to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains("STAGEFLOW_POOL_SIZE"));
    }

    #[test]
    fn the_default_currency_is_an_iso_code() {
        let mut s = Settings::default();
        s.apply_env(|k| (k == "STAGEFLOW_DEFAULT_CURRENCY").then(|| " jpy ".to_owned()))
            .unwrap();
        assert_eq!(s.default_currency, "JPY");
        let err = s
            .apply_env(|k| (k == "STAGEFLOW_DEFAULT_CURRENCY").then(|| "¥".to_owned()))
            .unwrap_err();
        assert!(
            err.to_string().contains("STAGEFLOW_DEFAULT_CURRENCY"),
            "{err}"
        );
    }
}
