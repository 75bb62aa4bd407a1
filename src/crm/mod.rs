//! The workflow layer: every change to a lead, an account, a contact, a deal or a
//! pipeline's stages goes through one function here, whoever asks for it (an HTTP handler today; imports,
//! captured forms and webhooks next). Each function takes a connection inside the
//! caller's transaction, the caller, and typed input, runs the whole rule set (checks,
//! visibility, stage gates, the stage log, next actions, closing times, scoring, the
//! report aggregates) and returns rows or an error. Nothing here knows HTTP.

pub mod accounts;
pub mod activities;
pub mod capture;
pub mod conversion;
pub mod events;
pub mod fields;
pub mod leads;
pub mod opportunities;
pub mod pipelines;
pub mod records;
pub mod stages;
pub mod views;
