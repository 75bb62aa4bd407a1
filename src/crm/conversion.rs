//! Lead conversion: one lead becomes an account, a contact and a deal in one
//! transaction, the deal entering its first stage like any other.

use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::ToSchema;

use super::accounts::{AccountInput, ContactInput};
use super::opportunities::{self, DealWithProbability, OpportunityInput};
use super::stages::{enter_stage, first_open_stage, StageChange};
use crate::auth::Caller;
use crate::domain::ids::{PipelineId, StageId};
use crate::domain::lead::LeadStatus;
use crate::domain::opportunity::Channel;
use crate::domain::pipeline::StageKind;
use crate::error::{AppError, AppResult, ProblemCode};
use crate::storage::accounts::{self as accounts_store, AccountRow, ContactRow};
use crate::storage::leads::{self as store, LeadRow};
use crate::storage::opportunities as opp_store;
use crate::storage::{pipelines, DbConn, Stamped, Visible};

/// What a conversion created or linked.
pub struct Conversion {
    pub lead: LeadRow,
    pub account: AccountRow,
    pub contact: ContactRow,
    pub opportunity: DealWithProbability,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvertRequest {
    #[schema(value_type = String)]
    pub pipeline_id: PipelineId,
    /// Defaults to "<company> – <interest>" (or the person's name).
    pub name: Option<String>,
    #[schema(example = "120000.00")]
    pub amount: Option<String>,
    pub expected_close_date: Option<NaiveDate>,
    /// An open stage; defaults to the pipeline's first.
    #[schema(value_type = Option<String>)]
    pub stage_id: Option<StageId>,
}

fn person_name(l: &LeadRow) -> Option<String> {
    let name = [l.last_name.as_deref(), l.first_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("");
    (!name.is_empty()).then_some(name)
}

/// Converts a visible lead: links or creates the account (matched by company name) and
/// the contact (matched by email), creates the deal in an open stage of the pipeline
/// (the first by default; its requirements apply) and marks the lead converted. A lead
/// converted already is 409 with the deal as `existing_id`.
pub fn convert(
    conn: &mut DbConn,
    caller: &Caller,
    default_currency: &str,
    id: &str,
    req: ConvertRequest,
) -> AppResult<Conversion> {
    let vis = caller.visibility();
    let mut lead = LeadRow::lock_visible(conn, &vis, id)?;
    match Some(lead.status) {
        Some(LeadStatus::Converted) => {
            return Err(AppError::Conflict {
                code: ProblemCode::LeadAlreadyConverted,
                detail: "The lead was converted already.".into(),
                existing_id: lead.converted_opportunity_id.clone().map(String::from),
            })
        }
        Some(LeadStatus::Disqualified) => {
            return Err(AppError::Conflict {
                code: ProblemCode::LeadDisqualified,
                detail: "Requalify the lead (PATCH its status) before converting it.".into(),
                existing_id: None,
            })
        }
        _ => {}
    }
    let stages = pipelines::stages_of(conn, &req.pipeline_id)?;
    if stages.is_empty() {
        return Err(AppError::field(
            "pipeline_id",
            "not_found",
            "no such pipeline",
        ));
    }
    let stage = match &req.stage_id {
        Some(sid) => stages
            .iter()
            .find(|s| &s.id == sid)
            .cloned()
            .filter(|s| s.kind == StageKind::Open),
        None => Some(first_open_stage(&stages)?),
    }
    .ok_or_else(|| {
        AppError::field(
            "stage_id",
            "not_found",
            "no such open stage in this pipeline",
        )
    })?;
    // A lead owned by someone else stays theirs; so do its account, contact and deal.
    let owned_by_lead = Some(lead.owner_id.clone());
    let account_name = lead
        .company
        .clone()
        .or_else(|| person_name(&lead))
        .or_else(|| lead.email.clone())
        .unwrap_or_default();
    let account = match accounts_store::visible_account_named(conn, &vis, &account_name)? {
        Some(a) => a,
        None => {
            let input = AccountInput {
                name: account_name,
                industry: lead.industry.clone(),
                company_size: lead.company_size,
                region: lead.region.clone(),
                website: None,
                owner_id: owned_by_lead.clone().map(String::from),
                external_id: None,
            };
            super::accounts::create_account(conn, caller, &input)?
        }
    };
    let existing_contact = match &lead.email {
        Some(email) => accounts_store::visible_contact_with_email(conn, &vis, email)?,
        None => None,
    };
    let contact = match existing_contact {
        Some(c) => c,
        None => {
            let input = ContactInput {
                first_name: lead.first_name.clone(),
                last_name: lead.last_name.clone().or_else(|| {
                    lead.first_name
                        .is_none()
                        .then(|| lead.company.clone())
                        .flatten()
                }),
                email: lead.email.clone(),
                phone: lead.phone.clone(),
                account_id: Some(account.id.to_string()),
                owner_id: owned_by_lead.clone().map(String::from),
                external_id: None,
            };
            super::accounts::create_contact(conn, caller, &input)?
        }
    };
    let default_name = match (&lead.company, &lead.interest) {
        (Some(c), Some(i)) => format!("{c} – {i}"),
        (Some(c), None) => c.clone(),
        _ => person_name(&lead).unwrap_or_else(|| account.name.clone()),
    };
    let input = OpportunityInput {
        name: req.name.clone().unwrap_or(default_name),
        pipeline_id: req.pipeline_id.clone(),
        stage_id: Some(stage.id.clone()),
        amount: req.amount.clone(),
        currency: None,
        probability: None,
        expected_close_date: req.expected_close_date,
        account_id: Some(account.id.to_string()),
        contact_id: Some(contact.id.to_string()),
        lead_id: Some(lead.id.to_string()),
        owner_id: owned_by_lead,
        source: Some(lead.source),
        industry: lead.industry.clone(),
        company_size: lead.company_size,
        region: lead.region.clone(),
        tags: lead.tags.to_vec(),
        next_action: None,
        external_id: None,
        custom: None,
    };
    let (mut opp, target) = opportunities::build(conn, caller, default_currency, &input, None)?;
    let change = StageChange {
        actor: &caller.user_id,
        channel: Channel::Api,
        note: Some(format!("converted from lead {}", lead.id)),
        at: opp.created_at,
        keep_next_action: false,
    };
    enter_stage(conn, &mut opp, None, &target, &change)?;
    opp_store::insert(conn, &opp, &vis)?;
    super::events::opportunity(conn, None, &opp)?;
    let before = lead.clone();
    lead.stamp_next(&caller.user_id, change.at);
    lead.status = LeadStatus::Converted;
    lead.converted_at = Some(change.at);
    lead.converted_opportunity_id = Some(opp.id.clone());
    store::save(conn, &lead, &vis)?;
    super::events::lead(conn, Some(&before), &lead)?;
    Ok(Conversion {
        lead,
        account,
        contact,
        opportunity: (opp, target.probability),
    })
}
