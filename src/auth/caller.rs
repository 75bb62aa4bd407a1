//! The authenticated caller, from `Authorization: Bearer …` (a JWT access token or an
//! `sfk_` API key). The user row is read on every request, so a deactivated user or a
//! changed role takes effect at once rather than when the token expires.

use super::api_keys::{self, Scope};
use super::jwt::{Claims, JwtKeys};
use super::links::Signer;
use super::visibility::Visibility;
use crate::domain::ids::{TeamId, UserId};
use crate::domain::user::Role;
use crate::error::{AppError, AppResult};
use crate::storage::{self, api_keys as key_store, users, Backend, DbPool};

#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    pub team_id: Option<TeamId>,
    /// For managers: the ids of their team's members (themselves included).
    pub team_members: Vec<UserId>,
    /// `Some` for API keys: the only scopes the key may use. `None` for people, whose
    /// rights come from their role alone.
    pub scopes: Option<Vec<Scope>>,
    /// The API key used, when the caller is a machine.
    pub api_key_id: Option<String>,
}

impl Caller {
    pub fn visibility(&self) -> Visibility {
        match self.role {
            Role::Admin => Visibility::All,
            Role::Manager => match &self.team_id {
                Some(team) => Visibility::Team {
                    team_id: team.clone(),
                    members: self.team_members.clone(),
                },
                None => Visibility::Own(self.user_id.clone()),
            },
            Role::Rep => Visibility::Own(self.user_id.clone()),
        }
    }

    pub fn require_role(&self, allowed: &[Role]) -> AppResult<()> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "This action needs one of the roles: {}.",
                allowed
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    pub fn require_admin(&self) -> AppResult<()> {
        self.require_role(&[Role::Admin])?;
        self.require_person()
    }

    /// Refuses API keys for actions that only people may take (user and key admin).
    pub fn require_person(&self) -> AppResult<()> {
        match self.scopes {
            None => Ok(()),
            Some(_) => Err(AppError::Forbidden(
                "API keys cannot do this; sign in as a user.".into(),
            )),
        }
    }

    /// An API key must carry `scope`; people pass.
    pub fn require_scope(&self, scope: Scope) -> AppResult<()> {
        match &self.scopes {
            Some(scopes) if !scopes.contains(&scope) => Err(AppError::Forbidden(format!(
                "The API key lacks the {} scope.",
                scope.as_str()
            ))),
            _ => Ok(()),
        }
    }
}

fn unauthorized(why: &str) -> AppError {
    AppError::Unauthorized(why.to_owned())
}

/// What a request's `Authorization` header proved. Worked out once per request (one
/// JWT verification, one key or user lookup) by the authentication middleware, and read
/// from there by rate limiting, idempotency keys and the [`Caller`] extractor.
#[derive(Debug, Clone)]
pub enum Credential {
    /// No `Authorization` header.
    Absent,
    /// A header that does not hold: wrong scheme, a bad, expired or revoked token, an
    /// unknown or revoked key, a deactivated account. Counted against the client IP.
    Rejected(String),
    /// The database could not be asked; the request fails with 503.
    Unavailable(String),
    Valid(Caller),
}

impl Credential {
    /// Resolves the `Authorization` header of a request (its raw bytes).
    pub async fn resolve(
        jwt: &JwtKeys,
        pool: &DbPool,
        backend: Backend,
        header: Option<&[u8]>,
    ) -> Credential {
        let Some(value) = header else {
            return Credential::Absent;
        };
        let token = match bearer_token(value) {
            Ok(token) => token,
            Err(why) => return Credential::Rejected(why.to_owned()),
        };
        let caller = if token.starts_with("sfk_") {
            from_api_key(pool, token).await
        } else {
            match jwt.verify(&token) {
                Ok(claims) => from_claims(pool, backend, claims).await,
                Err(e) => Err(e),
            }
        };
        match caller {
            Ok(caller) => Credential::Valid(caller),
            Err(AppError::Unauthorized(why)) => Credential::Rejected(why),
            Err(other) => Credential::Unavailable(other.to_string()),
        }
    }

    /// The bucket a valid credential is counted in (rate limits, idempotency keys):
    /// `user:<id>` for people, `key:<id>` for API keys. `None` for anything else.
    pub fn scope(&self) -> Option<String> {
        match self {
            Credential::Valid(caller) => Some(match &caller.api_key_id {
                Some(key) => format!("key:{key}"),
                None => format!("user:{}", caller.user_id),
            }),
            _ => None,
        }
    }

    pub fn caller(&self) -> AppResult<Caller> {
        match self {
            Credential::Valid(caller) => Ok(caller.clone()),
            Credential::Absent => Err(unauthorized("Send Authorization: Bearer <token>.")),
            Credential::Rejected(why) => Err(unauthorized(why)),
            Credential::Unavailable(why) => Err(AppError::Unavailable(why.clone())),
        }
    }
}

/// The token of `Authorization: Bearer <token>`. A header value is text when it is
/// visible ASCII (or tabs), as HTTP defines it.
fn bearer_token(value: &[u8]) -> Result<String, &'static str> {
    let visible = value
        .iter()
        .all(|b| *b == b'\t' || (0x20..0x7f).contains(b));
    let value = std::str::from_utf8(value)
        .ok()
        .filter(|_| visible)
        .ok_or("The Authorization header is not valid text.")?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim().to_owned())
        }
        _ => Err("Use the Bearer scheme."),
    }
}

async fn from_claims(pool: &DbPool, backend: Backend, claims: Claims) -> AppResult<Caller> {
    storage::run_point_read(pool, backend, move |conn| {
        let user = users::find(conn, &claims.sub)?
            .filter(|u| u.active)
            .ok_or_else(|| unauthorized("The account does not exist or is deactivated."))?;
        // A password change or a deactivation moves the generation on, so every token
        // issued before it stops working even if the account is active again.
        if i64::from(user.token_generation) != claims.gen {
            return Err(unauthorized(
                "The access token was revoked (password change or deactivation); sign in again.",
            ));
        }
        caller_of(conn, user, None)
    })
    .await
}

async fn from_api_key(pool: &DbPool, token: String) -> AppResult<Caller> {
    storage::run(pool, move |conn| {
        let invalid = || unauthorized("The API key is invalid or revoked.");
        let (prefix, secret) = api_keys::parse(&token).ok_or_else(invalid)?;
        let key = key_store::find_by_prefix(conn, prefix)?
            .filter(|k| k.revoked_at.is_none())
            .filter(|k| api_keys::secret_matches(secret, &k.secret_hash))
            .ok_or_else(invalid)?;
        let user = users::find(conn, &key.user_id)?
            .filter(|u| u.active)
            .ok_or_else(invalid)?;
        key_store::touch(conn, &key)?;
        let scopes = key.scopes.into_inner();
        caller_of(conn, user, Some((key.id.into(), scopes)))
    })
    .await
}

/// Re-reads the signer of a link as they are now, with the binding its MAC covers: for
/// a person their id and token generation (a password change or a deactivation voids
/// their links as it voids their tokens), for an API key its id. A deactivated person or
/// a revoked key is 401.
pub fn link_signer(conn: &mut storage::DbConn, signer: &Signer) -> AppResult<(Caller, String)> {
    match signer {
        Signer::User(id) => {
            let user = users::find(conn, id)?.filter(|u| u.active).ok_or_else(|| {
                unauthorized("The link's signer is deactivated or no longer exists.")
            })?;
            let binding = format!("user:{}:{}", user.id, user.token_generation);
            Ok((caller_of(conn, user, None)?, binding))
        }
        Signer::Key(id) => {
            let invalid =
                || unauthorized("The link's API key is revoked or its owner deactivated.");
            let key = key_store::find(conn, id)?
                .filter(|k| k.revoked_at.is_none())
                .ok_or_else(invalid)?;
            let user = users::find(conn, &key.user_id)?
                .filter(|u| u.active)
                .ok_or_else(invalid)?;
            let binding = format!("key:{}", key.id);
            Ok((
                caller_of(conn, user, Some((key.id.into(), key.scopes.into_inner())))?,
                binding,
            ))
        }
    }
}

fn caller_of(
    conn: &mut storage::DbConn,
    user: users::UserRow,
    key: Option<(String, Vec<Scope>)>,
) -> AppResult<Caller> {
    let role = user.role;
    let team_members = match (&user.team_id, role) {
        (Some(team), Role::Manager) => users::member_ids(conn, team)?,
        _ => Vec::new(),
    };
    let (api_key_id, scopes) = match key {
        Some((id, scopes)) => (Some(id), Some(scopes)),
        None => (None, None),
    };
    Ok(Caller {
        role,
        team_members,
        user_id: user.id,
        email: user.email,
        team_id: user.team_id,
        scopes,
        api_key_id,
    })
}

impl Caller {
    /// Who this caller is when signing a link: the API key for machines, else the person.
    pub fn signer(&self) -> Signer {
        match &self.api_key_id {
            Some(key) => Signer::Key(key.clone()),
            None => Signer::User(self.user_id.clone()),
        }
    }

    /// True when the caller may use `scope`: people always, API keys when they carry it.
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.as_ref().is_none_or(|s| s.contains(&scope))
    }

    /// An API key must carry at least one of `scopes` (for actions that serve each kind
    /// of record only as far as the key reaches); people pass.
    pub fn require_any_scope(&self, scopes: &[Scope]) -> AppResult<()> {
        if scopes.iter().any(|s| self.has_scope(*s)) {
            return Ok(());
        }
        let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        Err(AppError::Forbidden(format!(
            "The API key needs one of the scopes: {}.",
            names.join(", ")
        )))
    }
}
