//! Leads: their writable fields, how a row is built, checked and scored, and every way
//! a lead changes short of conversion (see [`super::conversion`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::fields::{custom_json, opt_email, opt_text, resolve_owner, tags_json};
use super::records::{stamp_new_or_next, Ops};
use crate::auth::Caller;
use crate::domain::lead::{
    score, Bant, CompanySize, LeadFacts, LeadSource, LeadStatus, ScoringRule,
};
use crate::domain::{required_text, Problems};
use crate::error::{AppError, AppResult, ProblemCode};
use crate::storage::leads::{self as store, LeadRow};
use crate::storage::types::JsonText;
use crate::storage::{self, activities, check_version, scoring, DbConn, Repo, Stamped, Visible};

/// The writable fields of a lead.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadInput {
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
    /// Defaults to `other`.
    pub source: Option<LeadSource>,
    pub source_detail: Option<String>,
    pub interest: Option<String>,
    /// `new` (default), `contacted`, `nurturing` or `qualified`. `converted` and
    /// `disqualified` are reached through their own endpoints.
    pub status: Option<LeadStatus>,
    pub bant: Option<Bant>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Defaults to the caller.
    pub owner_id: Option<String>,
    pub next_follow_up_at: Option<DateTime<Utc>>,
    pub external_id: Option<String>,
    pub custom: Option<Map<String, Value>>,
}

/// The lead's BANT qualification.
pub fn bant_of(l: &LeadRow) -> Bant {
    *l.bant
}

impl From<&LeadRow> for LeadInput {
    fn from(l: &LeadRow) -> Self {
        LeadInput {
            first_name: l.first_name.clone(),
            last_name: l.last_name.clone(),
            email: l.email.clone(),
            phone: l.phone.clone(),
            company: l.company.clone(),
            job_title: l.job_title.clone(),
            industry: l.industry.clone(),
            company_size: l.company_size,
            region: l.region.clone(),
            country: l.country.clone(),
            source: Some(l.source),
            source_detail: l.source_detail.clone(),
            interest: l.interest.clone(),
            status: Some(l.status),
            bant: Some(bant_of(l)),
            tags: l.tags.to_vec(),
            owner_id: Some(l.owner_id.to_string()),
            next_follow_up_at: l.next_follow_up_at.map(|t| t.and_utc()),
            external_id: l.external_id.clone(),
            custom: Some((*l.custom).clone()),
        }
    }
}

/// Recomputes a lead's score and breakdown from the current rules.
pub fn apply_score(row: &mut LeadRow, rules: &[ScoringRule]) -> AppResult<()> {
    let facts = LeadFacts {
        bant: bant_of(row),
        source: Some(row.source.as_str().to_owned()),
        industry: row.industry.clone(),
        company_size: row.company_size.map(|c| c.as_str().to_owned()),
        region: row.region.clone(),
        country: row.country.clone(),
        tags: row.tags.to_vec(),
        has_email: row.email.is_some(),
        has_phone: row.phone.is_some(),
    };
    let (total, items) = score(&facts, rules);
    row.score = total;
    row.score_breakdown = JsonText::encode(items)?;
    Ok(())
}

/// Checks input and builds the scored row; `base` is the stored lead on update.
pub fn build(
    conn: &mut DbConn,
    caller: &Caller,
    input: &LeadInput,
    base: Option<&LeadRow>,
) -> AppResult<LeadRow> {
    let mut p = Problems::default();
    let first_name = opt_text(&mut p, "first_name", &input.first_name, 100);
    let last_name = opt_text(&mut p, "last_name", &input.last_name, 100);
    let email = opt_email(&mut p, "email", &input.email);
    let phone = opt_text(&mut p, "phone", &input.phone, 50);
    let company = opt_text(&mut p, "company", &input.company, 200);
    if [&first_name, &last_name, &email, &phone, &company]
        .iter()
        .all(|v| v.is_none())
    {
        p.add(
            "last_name",
            "required",
            "a lead needs at least a name, a company, an email or a phone",
        );
    }
    let old_status = base.map(|b| b.status);
    let status = input.status.unwrap_or(LeadStatus::New);
    if Some(status) != old_status {
        match (old_status, status) {
            (Some(LeadStatus::Converted), _) => {
                return Err(AppError::Conflict {
                    code: ProblemCode::LeadConverted,
                    detail: "A converted lead keeps its status.".into(),
                    existing_id: None,
                })
            }
            (_, LeadStatus::Converted | LeadStatus::Disqualified) => p.add(
                "status",
                "use_endpoint",
                "convert or disqualify a lead with POST /leads/{id}/convert or /disqualify",
            ),
            _ => {}
        }
    }
    let owner_id = resolve_owner(conn, &mut p, caller, input.owner_id.as_deref())?;
    let bant = JsonText::encode(input.bant.unwrap_or_default())?;
    let mut row = LeadRow {
        first_name,
        last_name,
        email,
        phone,
        company,
        job_title: opt_text(&mut p, "job_title", &input.job_title, 100),
        industry: opt_text(&mut p, "industry", &input.industry, 100),
        company_size: input.company_size,
        region: opt_text(&mut p, "region", &input.region, 100),
        country: opt_text(&mut p, "country", &input.country, 100),
        source: input.source.unwrap_or(LeadSource::Other),
        source_detail: opt_text(&mut p, "source_detail", &input.source_detail, 300),
        interest: opt_text(&mut p, "interest", &input.interest, 1000),
        status,
        bant,
        tags: tags_json(&mut p, &input.tags)?,
        owner_id,
        next_follow_up_at: input.next_follow_up_at.map(|t| t.naive_utc()),
        external_id: opt_text(&mut p, "external_id", &input.external_id, 200),
        custom: custom_json(&mut p, &input.custom)?,
        ..stamp_new_or_next(base.cloned(), caller, |id, now| LeadRow {
            id: id.into(),
            first_name: None,
            last_name: None,
            email: None,
            phone: None,
            company: None,
            job_title: None,
            industry: None,
            company_size: None,
            region: None,
            country: None,
            source: LeadSource::Other,
            source_detail: None,
            interest: None,
            status: LeadStatus::New,
            bant: JsonText::default(),
            score: 0,
            score_breakdown: JsonText::default(),
            tags: JsonText::default(),
            owner_id: String::new().into(),
            next_follow_up_at: None,
            last_activity_at: None,
            external_id: None,
            custom: JsonText::default(),
            converted_at: None,
            converted_opportunity_id: None,
            disqualified_reason: None,
            version: 1,
            created_at: now,
            updated_at: now,
            created_by: Some(caller.user_id.clone()),
            updated_by: Some(caller.user_id.clone()),
        })
    };
    p.into_result()?;
    if old_status == Some(LeadStatus::Disqualified) && status != LeadStatus::Disqualified {
        row.disqualified_reason = None;
    }
    apply_score(&mut row, &scoring::rules(conn)?)?;
    Ok(row)
}

/// Creates a scored lead. A lead with the email or external id of an existing one is
/// refused (409 `duplicate_lead`, naming it when the caller may see it).
pub fn create(conn: &mut DbConn, caller: &Caller, input: &LeadInput) -> AppResult<LeadRow> {
    let row = build(conn, caller, input, None)?;
    store::insert(conn, &row, &caller.visibility())?;
    super::events::lead(conn, None, &row)?;
    Ok(row)
}

/// How a lead is locked, shown as input, rebuilt (and rescored) and saved on update.
pub fn ops() -> Ops<LeadRow, LeadInput> {
    Ops {
        input_of: |r| LeadInput::from(r),
        build,
        save: |conn, caller, before, row| {
            store::save(conn, row, &caller.visibility())?;
            super::events::lead(conn, Some(before), row)
        },
    }
}

/// Deletes a lead that was not converted, with its activities.
pub fn remove(conn: &mut DbConn, _caller: &Caller, current: &LeadRow) -> AppResult<()> {
    if current.status == LeadStatus::Converted {
        return Err(AppError::Conflict {
            code: ProblemCode::LeadConverted,
            detail: "A converted lead is part of its opportunity's history and stays.".into(),
            existing_id: current.converted_opportunity_id.clone().map(String::from),
        });
    }
    store::ensure_lead_unused(conn, &current.id)?;
    activities::delete_for_lead(conn, &current.id)?;
    Ok(LeadRow::delete(conn, &current.id)?)
}

/// Disqualifies a visible lead with a reason; PATCH its status back to reopen it.
pub fn disqualify(
    conn: &mut DbConn,
    caller: &Caller,
    id: &str,
    expected_version: Option<i32>,
    reason: &str,
) -> AppResult<LeadRow> {
    let mut p = Problems::default();
    let reason = required_text(&mut p, "reason", reason, 1000);
    p.into_result()?;
    let mut row = LeadRow::lock_visible(conn, &caller.visibility(), id)?;
    check_version(expected_version, row.version)?;
    if row.status == LeadStatus::Converted {
        return Err(AppError::Conflict {
            code: ProblemCode::LeadConverted,
            detail: "A converted lead cannot be disqualified.".into(),
            existing_id: row.converted_opportunity_id.map(String::from),
        });
    }
    let before = row.clone();
    row.stamp_next(&caller.user_id, storage::now());
    row.status = LeadStatus::Disqualified;
    row.disqualified_reason = Some(reason);
    store::save(conn, &row, &caller.visibility())?;
    super::events::lead(conn, Some(&before), &row)?;
    Ok(row)
}

/// Replaces the scoring rules and rescores every lead that is not converted; answers
/// how many were rescored.
pub fn replace_rules(conn: &mut DbConn, rules: &[ScoringRule]) -> AppResult<usize> {
    scoring::replace_rules(conn, rules)?;
    let leads = store::unconverted(conn)?;
    for mut lead in leads.iter().cloned() {
        apply_score(&mut lead, rules)?;
        store::set_score(conn, &lead.id, lead.score, lead.score_breakdown.text())?;
    }
    Ok(leads.len())
}
