//! Integrations: leads captured from third-party forms and signed webhooks, and signed
//! outbound webhooks delivered from the transactional outbox (see `crm::events`).

pub mod capture;
pub mod delivery;
pub mod guard;
pub mod signing;
