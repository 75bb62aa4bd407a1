//! Leads repository.

use crate::domain::ids::{LeadId, OpportunityId, UserId};
use crate::storage::uid::{uid, Id};
use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::prelude::*;

use super::types::JsonText;
use crate::domain::lead::{Bant, CompanySize, LeadSource, LeadStatus, ScoreItem};
use diesel::sql_types::Text;
use serde_json::{Map, Value};

use super::schema::leads;
use super::{
    contains_pattern, parse_ts_key, tag_pattern, ts_key, After, DbConn, Page, PageRequest, Repo,
    Stamped,
};
use crate::error::ProblemCode;
use crate::error::{AppError, AppResult};
use crate::storage::visibility::{owner_filter, Visibility};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = leads, treat_none_as_null = true)]
#[diesel(treat_none_as_default_value = false)] // NULL, not DEFAULT: multi-row inserts on SQLite
pub struct LeadRow {
    pub id: LeadId,
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
    /// JSON object `{budget, authority, need, timeline}`.
    pub bant: JsonText<Bant>,
    pub score: i32,
    /// JSON array of score items.
    pub score_breakdown: JsonText<Vec<ScoreItem>>,
    /// JSON array of strings.
    pub tags: JsonText<Vec<String>>,
    pub owner_id: UserId,
    pub next_follow_up_at: Option<NaiveDateTime>,
    pub last_activity_at: Option<NaiveDateTime>,
    pub external_id: Option<String>,
    /// JSON object.
    pub custom: JsonText<Map<String, Value>>,
    pub converted_at: Option<NaiveDateTime>,
    pub converted_opportunity_id: Option<OpportunityId>,
    pub disqualified_reason: Option<String>,
    #[diesel(skip_update)]
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub created_by: Option<UserId>,
    pub updated_by: Option<UserId>,
}

#[derive(Debug, Default, Clone)]
pub struct LeadFilter {
    pub status: Option<LeadStatus>,
    pub source: Option<LeadSource>,
    pub industry: Option<String>,
    pub company_size: Option<CompanySize>,
    pub region: Option<String>,
    pub owner_id: Option<String>,
    pub tag: Option<String>,
    pub min_score: Option<i32>,
    pub created_from: Option<NaiveDateTime>,
    pub created_to: Option<NaiveDateTime>,
    pub q: Option<String>,
}

/// Inserts a lead written by someone who sees `vis` (a duplicate names the existing lead
/// only when it is visible).
pub fn insert(conn: &mut DbConn, row: &LeadRow, vis: &Visibility) -> AppResult<()> {
    // In an import batch the unique indexes catch duplicates at the flush.
    if super::batch::buffer_lead(row) {
        return Ok(());
    }
    check_unique(conn, row, vis)?;
    Ok(row.insert_row(conn)?)
}

pub fn save(conn: &mut DbConn, row: &LeadRow, vis: &Visibility) -> AppResult<()> {
    check_unique(conn, row, vis)?;
    Ok(row.save(conn)?)
}

/// Duplicate detection by email and by external id (before writing: on PostgreSQL a
/// failed insert would abort the transaction).
fn check_unique(conn: &mut DbConn, row: &LeadRow, vis: &Visibility) -> AppResult<()> {
    for (field, value) in [("email", &row.email), ("external_id", &row.external_id)] {
        let Some(value) = value else {
            continue;
        };
        let q = leads::table
            .select((leads::id, leads::owner_id))
            .filter(leads::id.ne(uid(&row.id)))
            .into_boxed();
        let q = match field {
            "email" => q.filter(leads::email.eq(value)),
            _ => q.filter(leads::external_id.eq(value)),
        };
        if let Some(other) = q.first(conn).optional()? {
            return Err(super::duplicate(
                vis,
                other,
                ProblemCode::DuplicateLead,
                "A lead",
                field,
            ));
        }
    }
    Ok(())
}

pub fn list(
    conn: &mut DbConn,
    vis: &Visibility,
    f: &LeadFilter,
    page: &PageRequest,
) -> AppResult<Page<LeadRow>> {
    let mut q = leads::table
        .filter(owner_filter(vis, leads::owner_id))
        .select(LeadRow::as_select())
        .into_boxed();
    if let Some(v) = &f.status {
        q = q.filter(leads::status.eq(*v));
    }
    if let Some(v) = &f.source {
        q = q.filter(leads::source.eq(*v));
    }
    if let Some(v) = &f.industry {
        q = q.filter(leads::industry.eq(v.clone()));
    }
    if let Some(v) = &f.company_size {
        q = q.filter(leads::company_size.eq(*v));
    }
    if let Some(v) = &f.region {
        q = q.filter(leads::region.eq(v.clone()));
    }
    if let Some(v) = &f.owner_id {
        q = q.filter(leads::owner_id.eq(uid(v)));
    }
    if let Some(v) = &f.tag {
        q = q.filter(leads::tags.like(tag_pattern(v)).escape('\\'));
    }
    if let Some(v) = f.min_score {
        q = q.filter(leads::score.ge(v));
    }
    if let Some(v) = f.created_from {
        q = q.filter(leads::created_at.ge(v));
    }
    if let Some(v) = f.created_to {
        q = q.filter(leads::created_at.lt(v));
    }
    if let Some(text) = &f.q {
        let pattern = contains_pattern(text);
        let searchable = "lower(coalesce(leads.first_name, '') || ' ' || coalesce(leads.last_name, '') || ' ' || \
                          coalesce(leads.email, '') || ' ' || coalesce(leads.company, ''))";
        q = q.filter(sql::<Text>(searchable).like(pattern).escape('\\'));
    }
    let after = page.after.as_ref().map(|a| (a.value.clone(), a.id.clone()));
    let q = match page.sort.as_str() {
        "score" => {
            let after = after
                .map(|(v, id)| {
                    v.parse::<i32>()
                        .map(|v| (v, id))
                        .map_err(|_| super::invalid_cursor())
                })
                .transpose()?;
            crate::keyset!(q, leads::score, leads::id, page.desc, after)
        }
        "updated_at" => {
            let after = after
                .map(|(v, id)| Ok::<_, AppError>((parse_ts_key(&v)?, id)))
                .transpose()?;
            crate::keyset!(q, leads::updated_at, leads::id, page.desc, after)
        }
        _ => {
            let after = after
                .map(|(v, id)| Ok::<_, AppError>((parse_ts_key(&v)?, id)))
                .transpose()?;
            crate::keyset!(q, leads::created_at, leads::id, page.desc, after)
        }
    };
    let rows = q.limit(page.limit as i64 + 1).load(conn)?;
    let sort = page.sort.clone();
    Ok(Page::from_rows(rows, page.limit, |l: &LeadRow| After {
        value: match sort.as_str() {
            "score" => l.score.to_string(),
            "updated_at" => ts_key(&l.updated_at),
            _ => ts_key(&l.created_at),
        },
        id: l.id.to_string(),
    }))
}

/// All leads not yet converted, for rescoring after the rules change.
/// Refuses to delete a lead that deals name as their origin (a lead converted by its own
/// endpoint is refused earlier, as part of its deal's history).
pub fn ensure_lead_unused(conn: &mut DbConn, id: &str) -> AppResult<()> {
    use super::schema::opportunities;
    let deals: i64 = opportunities::table
        .filter(opportunities::lead_id.eq(uid(id)))
        .count()
        .get_result(conn)?;
    if deals > 0 {
        return Err(AppError::Conflict {
            code: ProblemCode::LeadInUse,
            detail: "Opportunities name this lead as their origin; it stays.".into(),
            existing_id: None,
        });
    }
    Ok(())
}

pub fn unconverted(conn: &mut DbConn) -> AppResult<Vec<LeadRow>> {
    Ok(leads::table
        .filter(leads::status.ne("converted"))
        .select(LeadRow::as_select())
        .load(conn)?)
}

pub fn set_score(conn: &mut DbConn, id: &str, score: i32, breakdown: &str) -> AppResult<()> {
    diesel::update(leads::table.find(uid(id)))
        .set((leads::score.eq(score), leads::score_breakdown.eq(breakdown)))
        .execute(conn)?;
    Ok(())
}

pub fn touch_activity(conn: &mut DbConn, id: &str, at: Option<NaiveDateTime>) -> AppResult<()> {
    diesel::update(leads::table.find(uid(id)))
        .set(leads::last_activity_at.eq(at))
        .execute(conn)?;
    Ok(())
}

/// Unlinks a deleted opportunity from the lead it came from (the lead stays converted).
pub fn forget_conversion(conn: &mut DbConn, opportunity_id: &str) -> AppResult<()> {
    diesel::update(leads::table.filter(leads::converted_opportunity_id.eq(uid(opportunity_id))))
        .set(leads::converted_opportunity_id.eq(None::<Id>))
        .execute(conn)?;
    Ok(())
}

/// Open leads whose next follow-up is due before `before`.
pub fn due_follow_ups(
    conn: &mut DbConn,
    vis: &Visibility,
    owner_id: Option<&str>,
    before: Option<NaiveDateTime>,
    limit: i64,
) -> AppResult<Vec<LeadRow>> {
    let mut q = leads::table
        .filter(owner_filter(vis, leads::owner_id))
        .filter(leads::status.ne_all(["converted", "disqualified"]))
        .filter(leads::next_follow_up_at.is_not_null())
        .select(LeadRow::as_select())
        .into_boxed();
    if let Some(owner) = owner_id {
        q = q.filter(leads::owner_id.eq(uid(owner)));
    }
    if let Some(before) = before {
        q = q.filter(leads::next_follow_up_at.lt(before));
    }
    Ok(q.order((leads::next_follow_up_at.asc(), leads::id.asc()))
        .limit(limit)
        .load(conn)?)
}
