//! stageflow: a sales-pipeline (CRM) backend.

pub mod analytics;
pub mod auth;
pub mod config;
pub mod demo;
pub mod domain;
pub mod error;
pub mod http;
pub mod startup;
pub mod storage;
pub mod telemetry;
