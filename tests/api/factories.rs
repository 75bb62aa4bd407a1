//! Builder-style factories for the arrange steps of the API tests.
//!
//! Every step asserts the status it expects (`Req::created`, `Req::send_ok`), so a test
//! whose arrangement fails stops at that line with the request and the answer's body,
//! instead of failing later on a number that is off.
//!
//! ```text
//! let p = app.pipeline().plain().create().await;
//! let deal = app.deal(&p).amount("100").by(&rep).create().await;
//! deal.move_to("B").await;
//! let lead = app.lead().company("X").source("event").create().await;
//! ```

use std::ops::Deref;

use serde_json::{json, Map, Value};
use stageflow::domain::user::Role;

use crate::helpers::{id_of, stage_id, Res, TestApp};

impl TestApp {
    /// A pipeline to be described and created; see [`PipelineFactory`].
    pub fn pipeline(&self) -> PipelineFactory<'_> {
        PipelineFactory {
            app: self,
            name: "Pipeline".into(),
            stages: Vec::new(),
        }
    }

    /// A pipeline whose stages gate on the fields a test needs: Qualify (open) →
    /// Propose (needs amount, expected_close_date) → Negotiate (needs account_id,
    /// custom.po_number) → Won (needs amount) / Lost.
    pub async fn gated_pipeline(&self) -> Value {
        self.pipeline().gated().create().await
    }

    /// A deal in `pipeline`, created by the admin unless [`DealFactory::by`] says who.
    pub fn deal<'a>(&'a self, pipeline: &Value) -> DealFactory<'a> {
        let mut fields = Map::new();
        fields.insert("name".into(), json!("deal"));
        fields.insert("pipeline_id".into(), pipeline["id"].clone());
        DealFactory {
            app: self,
            pipeline: pipeline.clone(),
            token: self.admin_token.clone(),
            fields,
        }
    }

    /// An API key of the admin with `scopes` (201); returns its secret.
    pub async fn api_key(&self, scopes: Value) -> String {
        let res = self
            .post("/api/v1/api-keys")
            .admin()
            .json(json!({"name": "integration", "scopes": scopes}))
            .created()
            .await;
        res.body["secret"].as_str().unwrap().to_owned()
    }

    /// A lead, created by the admin unless [`LeadFactory::by`] says who.
    pub fn lead(&self) -> LeadFactory<'_> {
        LeadFactory {
            app: self,
            token: self.admin_token.clone(),
            fields: Map::new(),
        }
    }

    /// Creates a lead from a whole request body as `token`; returns the answer's body.
    pub async fn lead_as(&self, token: &str, body: Value) -> Value {
        self.post("/api/v1/leads")
            .token(token)
            .json(body)
            .created()
            .await
            .body
    }

    /// Creates an opportunity from a whole request body as `token`; returns the
    /// answer's body.
    pub async fn opportunity(&self, token: &str, body: Value) -> Value {
        self.post("/api/v1/opportunities")
            .token(token)
            .json(body)
            .created()
            .await
            .body
    }

    /// A rep in no team: `(id, token)`.
    pub async fn rep(&self, email: &str) -> (String, String) {
        self.user(email, Role::Rep, None).await
    }
}

/// Asserts that `token` cannot see the record at `path`: reading it is a 404, as if
/// it did not exist (not a 403, which would confirm that it does).
pub async fn assert_invisible(app: &TestApp, token: &str, path: &str) {
    app.get(path)
        .token(token)
        .send()
        .await
        .problem(404, "not_found");
}

/// [`assert_invisible`], and changing (with `patch`) or deleting the record is a 404
/// as well.
pub async fn assert_out_of_reach(app: &TestApp, token: &str, path: &str, patch: Value) {
    assert_invisible(app, token, path).await;
    app.patch(path)
        .token(token)
        .json(patch)
        .send()
        .await
        .problem(404, "not_found");
    app.delete(path)
        .token(token)
        .send()
        .await
        .problem(404, "not_found");
}

pub struct PipelineFactory<'a> {
    app: &'a TestApp,
    name: String,
    stages: Vec<Value>,
}

impl PipelineFactory<'_> {
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// Adds one stage described in full.
    pub fn stage(mut self, stage: Value) -> Self {
        self.stages.push(stage);
        self
    }

    /// "Plain": A → B → C → Won, Lost; no gates, A stalls after 7 days.
    pub fn plain(self) -> Self {
        self.name("Plain")
            .stage(json!({"name": "A", "probability": 10, "stalled_after_days": 7}))
            .stage(json!({"name": "B", "probability": 30}))
            .stage(json!({"name": "C", "probability": 60}))
            .stage(json!({"name": "Won", "kind": "won"}))
            .stage(json!({"name": "Lost", "kind": "lost"}))
    }

    /// "Gated": see [`TestApp::gated_pipeline`].
    pub fn gated(self) -> Self {
        self.name("Gated")
            .stage(
                json!({"name": "Qualify", "probability": 10, "stalled_after_days": 7,
                "next_action_within_days": 2, "suggested_actions": ["Call the buyer"]}),
            )
            .stage(json!({"name": "Propose", "probability": 40,
                "required_fields": ["amount", "expected_close_date"],
                "stalled_after_days": 14, "next_action_within_days": 3}))
            .stage(json!({"name": "Negotiate", "probability": 70,
                "required_fields": ["account_id", "custom.po_number"]}))
            .stage(json!({"name": "Won", "kind": "won", "required_fields": ["amount"]}))
            .stage(json!({"name": "Lost", "kind": "lost"}))
    }

    /// Creates it as the admin (201); returns the pipeline's body.
    pub async fn create(self) -> Value {
        self.app
            .post("/api/v1/pipelines")
            .admin()
            .json(json!({"name": self.name, "stages": self.stages}))
            .created()
            .await
            .body
    }
}

pub struct DealFactory<'a> {
    app: &'a TestApp,
    pipeline: Value,
    token: String,
    fields: Map<String, Value>,
}

impl<'a> DealFactory<'a> {
    /// Creates (and later moves) the deal with this credential, which makes its
    /// user the owner.
    pub fn by(mut self, token: &str) -> Self {
        self.token = token.into();
        self
    }

    pub fn name(self, name: &str) -> Self {
        self.set("name", name)
    }

    pub fn amount(self, amount: &str) -> Self {
        self.set("amount", amount)
    }

    pub fn source(self, source: &str) -> Self {
        self.set("source", source)
    }

    /// Any other member of the request body.
    pub fn set(mut self, member: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(member.into(), value.into());
        self
    }

    /// Creates it (201).
    pub async fn create(self) -> Deal<'a> {
        let body = self
            .app
            .opportunity(&self.token, Value::Object(self.fields))
            .await;
        Deal {
            app: self.app,
            id: id_of(&body),
            pipeline: self.pipeline,
            token: self.token,
            body,
        }
    }
}

/// A created deal: its body (through `Deref`) and the stage changes a test arranges,
/// made with the credential that created it. Each asserts a 200.
pub struct Deal<'a> {
    app: &'a TestApp,
    pub id: String,
    pipeline: Value,
    token: String,
    pub body: Value,
}

impl Deref for Deal<'_> {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.body
    }
}

impl Deal<'_> {
    pub fn path(&self) -> String {
        format!("/api/v1/opportunities/{}", self.id)
    }

    /// Moves it to the stage named `stage` (a lost stage with the reason
    /// "competitor").
    pub async fn move_to(&self, stage: &str) -> Res {
        self.app
            .post(&format!("{}/move", self.path()))
            .token(&self.token)
            .json(json!({"stage_id": stage_id(&self.pipeline, stage), "loss_reason_id": "competitor"}))
            .send_ok()
            .await
    }

    /// Moves it through the stages named, in order.
    pub async fn move_through(&self, stages: &[&str]) {
        for stage in stages {
            self.move_to(stage).await;
        }
    }

    pub async fn win(&self) -> Res {
        self.app
            .post(&format!("{}/win", self.path()))
            .token(&self.token)
            .send_ok()
            .await
    }

    pub async fn lose(&self, reason: &str) -> Res {
        self.app
            .post(&format!("{}/lose", self.path()))
            .token(&self.token)
            .json(json!({"loss_reason_id": reason}))
            .send_ok()
            .await
    }

    /// Reopens a lost deal into the stage named `stage`.
    pub async fn reopen(&self, stage: &str) -> Res {
        self.app
            .post(&format!("{}/reopen", self.path()))
            .token(&self.token)
            .json(json!({"stage_id": stage_id(&self.pipeline, stage)}))
            .send_ok()
            .await
    }

    /// PATCHes it with `patch` (a JSON merge patch).
    pub async fn patch(&self, patch: Value) -> Res {
        self.app
            .patch(&self.path())
            .token(&self.token)
            .json(patch)
            .send_ok()
            .await
    }
}

pub struct LeadFactory<'a> {
    app: &'a TestApp,
    token: String,
    fields: Map<String, Value>,
}

impl LeadFactory<'_> {
    /// Creates the lead with this credential, which makes its user the owner.
    pub fn by(mut self, token: &str) -> Self {
        self.token = token.into();
        self
    }

    pub fn company(self, company: &str) -> Self {
        self.set("company", company)
    }

    pub fn source(self, source: &str) -> Self {
        self.set("source", source)
    }

    pub fn status(self, status: &str) -> Self {
        self.set("status", status)
    }

    /// Any other member of the request body.
    pub fn set(mut self, member: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(member.into(), value.into());
        self
    }

    /// Creates it (201); returns its body.
    pub async fn create(self) -> Value {
        self.app
            .lead_as(&self.token, Value::Object(self.fields))
            .await
    }
}
