//! Activities repository.

use crate::domain::ids::{ActivityId, LeadId, OpportunityId, UserId};
use crate::storage::uid::{uid, uids};
use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::domain::opportunity::ActivityType;

use super::schema::{activities, leads, opportunities};
use super::{parse_ts_key, ts_key, After, Db, DbConn, Page, PageRequest, Visible};
use crate::error::{AppError, AppResult};
use crate::storage::visibility::{Filter, Visibility};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = activities, treat_none_as_null = true)]
#[diesel(treat_none_as_default_value = false)] // NULL, not DEFAULT: lets `COPY` take the rows
pub struct ActivityRow {
    pub id: ActivityId,
    pub type_: ActivityType,
    pub subject: String,
    pub body: Option<String>,
    pub lead_id: Option<LeadId>,
    pub opportunity_id: Option<OpportunityId>,
    pub due_at: Option<NaiveDateTime>,
    pub completed_at: Option<NaiveDateTime>,
    pub outcome: Option<String>,
    pub owner_id: UserId,
    #[diesel(skip_update)]
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub created_by: Option<UserId>,
    pub updated_by: Option<UserId>,
}

/// Activities follow their lead or deal: visible to whoever may see the parent now, not
/// to whoever logged them, so a reassigned deal takes its activities along. `None` when
/// every activity is visible.
fn parent_filter<'a>(vis: &Visibility) -> Option<Filter<'a, activities::table>> {
    // Concrete owner predicates rather than `owner_filter`'s boxed one: a subquery must
    // render on each backend of the multi-connection.
    macro_rules! on_visible_parent {
        ($lead_owner:expr, $deal_owner:expr) => {
            Some(Box::new(
                activities::lead_id
                    .assume_not_null()
                    .eq_any(leads::table.select(leads::id).filter($lead_owner))
                    .or(activities::opportunity_id.assume_not_null().eq_any(
                        opportunities::table
                            .select(opportunities::id)
                            .filter($deal_owner),
                    )),
            ))
        };
    }
    match vis {
        Visibility::All => None,
        Visibility::Own(user) => on_visible_parent!(
            leads::owner_id.eq(uid(user)),
            opportunities::owner_id.eq(uid(user))
        ),
        Visibility::Team { members, .. } => on_visible_parent!(
            leads::owner_id.eq_any(uids(members)),
            opportunities::owner_id.eq_any(uids(members))
        ),
    }
}

/// An activity is visible to whoever may see its lead or deal.
impl Visible for ActivityRow {
    fn visible_to(&self, conn: &mut DbConn, vis: &Visibility) -> QueryResult<bool> {
        if parent_filter(vis).is_none() {
            return Ok(true);
        }
        Ok(visible(vis)
            .filter(activities::id.eq(uid(&self.id)))
            .select(activities::id)
            .first::<ActivityId>(conn)
            .optional()?
            .is_some())
    }
}

/// Every activity the caller may see, as a query to narrow.
fn visible<'a>(vis: &Visibility) -> activities::BoxedQuery<'a, Db> {
    let q = activities::table.into_boxed();
    match parent_filter(vis) {
        Some(f) => q.filter(f),
        None => q,
    }
}

/// Which parents' activities a query returns: an API key reads only the record kinds
/// its scopes cover.
#[derive(Debug, Clone, Copy)]
pub struct ParentKinds {
    pub leads: bool,
    pub opportunities: bool,
}

impl ParentKinds {
    fn restrict<'a>(self, mut q: activities::BoxedQuery<'a, Db>) -> activities::BoxedQuery<'a, Db> {
        if !self.leads {
            q = q.filter(activities::lead_id.is_null());
        }
        if !self.opportunities {
            q = q.filter(activities::opportunity_id.is_null());
        }
        q
    }
}

#[derive(Debug, Clone)]
pub struct ActivityFilter {
    pub lead_id: Option<String>,
    pub opportunity_id: Option<String>,
    pub type_: Option<ActivityType>,
    pub owner_id: Option<String>,
    /// `true`: not completed yet; `false`: completed.
    pub open: Option<bool>,
    pub due_before: Option<NaiveDateTime>,
    pub kinds: ParentKinds,
}

pub fn list(
    conn: &mut DbConn,
    vis: &Visibility,
    f: &ActivityFilter,
    page: &PageRequest,
) -> AppResult<Page<ActivityRow>> {
    let mut q = f.kinds.restrict(visible(vis));
    if let Some(v) = &f.lead_id {
        q = q.filter(activities::lead_id.eq(uid(v)));
    }
    if let Some(v) = &f.opportunity_id {
        q = q.filter(activities::opportunity_id.eq(uid(v)));
    }
    if let Some(v) = &f.type_ {
        q = q.filter(activities::type_.eq(*v));
    }
    if let Some(v) = &f.owner_id {
        q = q.filter(activities::owner_id.eq(uid(v)));
    }
    match f.open {
        Some(true) => q = q.filter(activities::completed_at.is_null()),
        Some(false) => q = q.filter(activities::completed_at.is_not_null()),
        None => {}
    }
    if let Some(v) = f.due_before {
        q = q.filter(activities::due_at.lt(v));
    }
    let after = page
        .after
        .as_ref()
        .map(|a| Ok::<_, AppError>((parse_ts_key(&a.value)?, a.id.clone())))
        .transpose()?;
    let rows = crate::keyset!(q, activities::created_at, activities::id, page.desc, after)
        .limit(page.limit as i64 + 1)
        .load(conn)?;
    Ok(Page::from_rows(rows, page.limit, |a: &ActivityRow| After {
        value: ts_key(&a.created_at),
        id: a.id.to_string(),
    }))
}

/// The latest completed activity time of a lead or an opportunity.
pub fn last_completed(
    conn: &mut DbConn,
    lead_id: Option<&str>,
    opportunity_id: Option<&str>,
) -> AppResult<Option<NaiveDateTime>> {
    let mut q = activities::table
        .select(diesel::dsl::max(activities::completed_at))
        .into_boxed();
    if let Some(id) = lead_id {
        q = q.filter(activities::lead_id.eq(uid(id)));
    }
    if let Some(id) = opportunity_id {
        q = q.filter(activities::opportunity_id.eq(uid(id)));
    }
    Ok(q.first(conn)?)
}

/// Open activities with a due date, soonest first, for the follow-up queue.
pub fn open_due(
    conn: &mut DbConn,
    vis: &Visibility,
    kinds: ParentKinds,
    owner_id: Option<&str>,
    before: Option<NaiveDateTime>,
    limit: i64,
) -> AppResult<Vec<ActivityRow>> {
    let mut q = kinds
        .restrict(visible(vis))
        .filter(activities::completed_at.is_null())
        .filter(activities::due_at.is_not_null());
    if let Some(owner) = owner_id {
        q = q.filter(activities::owner_id.eq(uid(owner)));
    }
    if let Some(before) = before {
        q = q.filter(activities::due_at.lt(before));
    }
    Ok(q.order((activities::due_at.asc(), activities::id.asc()))
        .limit(limit)
        .load(conn)?)
}

/// Deletes the activities of an opportunity being deleted.
pub fn delete_for_opportunity(conn: &mut DbConn, opportunity_id: &str) -> AppResult<()> {
    diesel::delete(activities::table.filter(activities::opportunity_id.eq(uid(opportunity_id))))
        .execute(conn)?;
    Ok(())
}

pub fn delete_for_lead(conn: &mut DbConn, lead_id: &str) -> AppResult<()> {
    diesel::delete(activities::table.filter(activities::lead_id.eq(uid(lead_id)))).execute(conn)?;
    Ok(())
}
