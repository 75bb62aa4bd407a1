//! The API test suite: one binary, every test on a fresh database, each run on SQLite
//! and on PostgreSQL (`STAGEFLOW_TEST_PG_URL`, default postgres://postgres@127.0.0.1:5432/postgres).

mod factories;
mod helpers;

mod activities;
mod auth;
mod binary;
mod bodies;
mod browser;
mod capture;
mod contract;
mod contract_types;
mod errors;
mod funnel_links;
mod hardening;
mod idempotency;
mod ids;
mod imports;
mod job_rows;
mod leads;
mod money;
mod openapi;
mod opportunities;
mod pipelines;
mod receiver;
mod reports;
mod security_authz;
mod security_limits;
mod users;
mod webhooks;
