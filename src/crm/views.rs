//! The records as the API shows them: the bodies of responses, and the `data` of
//! outbound webhook events, which are written in the transaction of the change.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::leads::bant_of;
use super::opportunities::NextAction;
use crate::domain::lead::{Bant, CompanySize, LeadSource, LeadStatus, ScoreItem};
use crate::domain::money::amount_text;
use crate::domain::opportunity::{ActivityType, OpportunityStatus};
use crate::storage::activities::ActivityRow;
use crate::storage::leads::LeadRow;
use crate::storage::opportunities::OpportunityRow;

/// Stored timestamps are UTC without an offset; the API speaks RFC 3339 with `Z`.
pub fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

#[derive(Serialize, ToSchema)]
pub struct LeadOut {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
    pub job_title: Option<String>,
    pub industry: Option<String>,
    pub company_size: Option<CompanySize>,
    pub region: Option<String>,
    pub country: Option<String>,
    pub source: LeadSource,
    pub source_detail: Option<String>,
    pub interest: Option<String>,
    pub status: LeadStatus,
    pub bant: Bant,
    /// 0–100: the sum of the points in `score_breakdown`, clamped.
    pub score: i32,
    /// Every scoring rule that matched and the points it gave.
    pub score_breakdown: Vec<ScoreItem>,
    pub tags: Vec<String>,
    pub owner_id: String,
    pub next_follow_up_at: Option<DateTime<Utc>>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub external_id: Option<String>,
    pub custom: Map<String, Value>,
    pub converted_at: Option<DateTime<Utc>>,
    pub converted_opportunity_id: Option<String>,
    pub disqualified_reason: Option<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
}

impl From<LeadRow> for LeadOut {
    fn from(l: LeadRow) -> Self {
        LeadOut {
            bant: bant_of(&l),
            source: l.source,
            status: l.status,
            company_size: l.company_size,
            score_breakdown: l.score_breakdown.to_vec(),
            tags: l.tags.to_vec(),
            custom: (*l.custom).clone(),
            next_follow_up_at: l.next_follow_up_at.map(utc),
            last_activity_at: l.last_activity_at.map(utc),
            converted_at: l.converted_at.map(utc),
            created_at: utc(l.created_at),
            updated_at: utc(l.updated_at),
            id: l.id.into(),
            first_name: l.first_name,
            last_name: l.last_name,
            email: l.email,
            phone: l.phone,
            company: l.company,
            job_title: l.job_title,
            industry: l.industry,
            region: l.region,
            country: l.country,
            source_detail: l.source_detail,
            interest: l.interest,
            score: l.score,
            owner_id: l.owner_id.into(),
            external_id: l.external_id,
            converted_opportunity_id: l.converted_opportunity_id.map(String::from),
            disqualified_reason: l.disqualified_reason,
            version: l.version,
            created_by: l.created_by.map(String::from),
            updated_by: l.updated_by.map(String::from),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OpportunityOut {
    pub id: String,
    pub name: String,
    pub pipeline_id: String,
    pub stage_id: String,
    pub status: OpportunityStatus,
    /// With the currency's decimals: none for JPY, two for CNY, three for KWD.
    #[schema(example = "12500.00")]
    pub amount: Option<String>,
    pub currency: String,
    /// The override, if any.
    pub probability: Option<i32>,
    /// The override or else the stage's probability.
    pub effective_probability: i32,
    pub expected_close_date: Option<NaiveDate>,
    pub account_id: Option<String>,
    pub contact_id: Option<String>,
    pub lead_id: Option<String>,
    pub owner_id: String,
    pub source: Option<LeadSource>,
    pub industry: Option<String>,
    pub company_size: Option<CompanySize>,
    pub region: Option<String>,
    pub tags: Vec<String>,
    pub next_action: Option<NextAction>,
    pub lost_reason_id: Option<String>,
    pub lost_note: Option<String>,
    pub stage_entered_at: DateTime<Utc>,
    /// Latest completed activity (not counted as a change: the version stays).
    pub last_activity_at: Option<DateTime<Utc>>,
    pub won_at: Option<DateTime<Utc>>,
    pub lost_at: Option<DateTime<Utc>>,
    pub external_id: Option<String>,
    pub custom: Map<String, Value>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
}

impl OpportunityOut {
    pub fn new(o: OpportunityRow, stage_probability: i32) -> Self {
        let status = o.status;
        let closed = |s: OpportunityStatus| o.closed_at.filter(|_| status == s).map(utc);
        OpportunityOut {
            effective_probability: o.probability.unwrap_or(stage_probability),
            won_at: closed(OpportunityStatus::Won),
            lost_at: closed(OpportunityStatus::Lost),
            status,
            amount: o.amount_minor.map(|m| amount_text(m, &o.currency)),
            source: o.source,
            company_size: o.company_size,
            tags: o.tags.to_vec(),
            custom: (*o.custom).clone(),
            next_action: o.next_action_text.clone().map(|text| NextAction {
                text,
                due_at: o.next_action_due_at.map(utc),
            }),
            stage_entered_at: utc(o.stage_entered_at),
            last_activity_at: o.last_activity_at.map(utc),
            created_at: utc(o.created_at),
            updated_at: utc(o.updated_at),
            id: o.id.into(),
            name: o.name,
            pipeline_id: o.pipeline_id.into(),
            stage_id: o.stage_id.into(),
            currency: o.currency,
            probability: o.probability,
            expected_close_date: o.expected_close_date,
            account_id: o.account_id.map(String::from),
            contact_id: o.contact_id.map(String::from),
            lead_id: o.lead_id.map(String::from),
            owner_id: o.owner_id.into(),
            industry: o.industry,
            region: o.region,
            lost_reason_id: o.lost_reason_id,
            lost_note: o.lost_note,
            external_id: o.external_id,
            version: o.version,
            created_by: o.created_by.map(String::from),
            updated_by: o.updated_by.map(String::from),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ActivityOut {
    pub id: String,
    #[serde(rename = "type")]
    pub type_: ActivityType,
    pub subject: String,
    pub body: Option<String>,
    pub lead_id: Option<String>,
    pub opportunity_id: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub owner_id: String,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
}

impl From<ActivityRow> for ActivityOut {
    fn from(a: ActivityRow) -> Self {
        ActivityOut {
            type_: a.type_,
            due_at: a.due_at.map(utc),
            completed_at: a.completed_at.map(utc),
            created_at: utc(a.created_at),
            updated_at: utc(a.updated_at),
            id: a.id.into(),
            subject: a.subject,
            body: a.body,
            lead_id: a.lead_id.map(String::from),
            opportunity_id: a.opportunity_id.map(String::from),
            outcome: a.outcome,
            owner_id: a.owner_id.into(),
            version: a.version,
            created_by: a.created_by.map(String::from),
            updated_by: a.updated_by.map(String::from),
        }
    }
}
