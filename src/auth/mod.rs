//! Identity: password hashing, JWT access tokens, API keys, the `Caller` extractor and
//! visibility scoping.

pub mod api_keys;
pub mod caller;
pub mod jwt;
pub mod links;
pub mod password;
pub mod rate_limit;
pub mod visibility;

pub use caller::Caller;
pub use visibility::Visibility;
