//! Reports about people and sources: the leaderboard of owners, and lead sources from
//! lead to won deal.

use std::collections::BTreeMap;

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::math::Rate;
use super::{money_sum, Scope, Sql};
use crate::domain::money::{format_thousandths, join_sum};
use crate::error::AppResult;
use crate::storage::opportunities::backend_of;
use crate::storage::DbConn;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaderboardMetric {
    WonAmount,
    WonCount,
    StageAdvances,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct LeaderboardEntry {
    pub rank: i64,
    pub owner_id: String,
    pub owner_name: Option<String>,
    pub won_amount: String,
    pub won_count: i64,
    /// Moves to a later open stage or to won (moves to lost and reopens do not count).
    pub stage_advances: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Leaderboard {
    pub metric: LeaderboardMetric,
    pub data: Vec<LeaderboardEntry>,
}

#[derive(QueryableByName)]
struct OwnerRow {
    #[diesel(sql_type = crate::storage::uid::Uid)]
    owner_id: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = BigInt)]
    amount_hi: i64,
    #[diesel(sql_type = BigInt)]
    amount_lo: i64,
}

/// The amount columns of an [`OwnerRow`] for queries that count without amounts.
const NO_AMOUNT: &str = "CAST(0 AS BIGINT) AS amount_hi, CAST(0 AS BIGINT) AS amount_lo";

pub fn leaderboard(
    conn: &mut DbConn,
    scope: &Scope,
    metric: LeaderboardMetric,
) -> AppResult<Leaderboard> {
    let backend = backend_of(conn);
    let mut won = Sql::new(backend);
    // Won deals from the per-deal summary, which mirrors status, amount and close time
    // (a partial index of won deals by owner answers).
    won.push(&format!(
        "SELECT r.owner_id AS owner_id, CAST(COUNT(*) AS BIGINT) AS n, {} \
         FROM deal_reach r WHERE r.status = 'won'",
        money_sum("r.amount_milli", None, "amount")
    ));
    scope.push_filter_on(&mut won, "r");
    scope.push_range(&mut won, "r.closed_at");
    won.push(" GROUP BY r.owner_id");
    let mut adv = Sql::new(backend);
    if !scope.has_range() {
        // All-time advances: summed from the per-deal summary.
        adv.push(&format!(
            "SELECT r.owner_id AS owner_id, CAST(SUM(r.advances) AS BIGINT) AS n, {NO_AMOUNT} \
             FROM deal_reach r WHERE r.advances > 0"
        ));
        scope.push_filter_on(&mut adv, "r");
        adv.push(" GROUP BY r.owner_id");
    } else {
        // Advances in the range: entries that were a step forward from an open stage
        // (`advance_in`), read off the stays' index by entry time.
        adv.push(&format!(
            "SELECT st.owner_id AS owner_id, CAST(COUNT(*) AS BIGINT) AS n, {NO_AMOUNT} \
             FROM stage_stays st WHERE st.advance_in = 1"
        ));
        scope.push_entries_on(&mut adv, "st");
        adv.push(" GROUP BY st.owner_id");
    }
    let mut by_owner: BTreeMap<String, (Option<String>, i128, i64, i64)> = BTreeMap::new();
    for r in won.load::<OwnerRow>(conn)? {
        let e = by_owner.entry(r.owner_id).or_default();
        e.1 = join_sum(r.amount_hi, r.amount_lo);
        e.2 = r.n;
    }
    for r in adv.load::<OwnerRow>(conn)? {
        by_owner.entry(r.owner_id).or_default().3 = r.n;
    }
    // Names come from the small users table rather than a join inside the aggregates.
    for (id, name) in crate::storage::users::names(conn)? {
        if let Some(e) = by_owner.get_mut(&id) {
            e.0 = Some(name);
        }
    }
    let mut rows: Vec<(String, Option<String>, i128, i64, i64)> = by_owner
        .into_iter()
        .map(|(id, (name, amount, count, adv))| (id, name, amount, count, adv))
        .collect();
    let key = |r: &(String, Option<String>, i128, i64, i64)| match metric {
        LeaderboardMetric::WonAmount => r.2,
        LeaderboardMetric::WonCount => i128::from(r.3),
        LeaderboardMetric::StageAdvances => i128::from(r.4),
    };
    rows.sort_by(|a, b| key(b).cmp(&key(a)).then(a.0.cmp(&b.0)));
    let data = rows
        .into_iter()
        .enumerate()
        .map(
            |(i, (owner_id, owner_name, amount, count, advances))| LeaderboardEntry {
                rank: i as i64 + 1,
                owner_id,
                owner_name,
                won_amount: format_thousandths(amount),
                won_count: count,
                stage_advances: advances,
            },
        )
        .collect();
    Ok(Leaderboard { metric, data })
}

pub fn leaderboard_csv(r: &Leaderboard) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "rank",
        "owner_id",
        "owner_name",
        "won_amount",
        "won_count",
        "stage_advances",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()];
    for e in &r.data {
        rows.push(vec![
            e.rank.to_string(),
            e.owner_id.clone(),
            e.owner_name.clone().unwrap_or_default(),
            e.won_amount.clone(),
            e.won_count.to_string(),
            e.stage_advances.to_string(),
        ]);
    }
    rows
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct SourceEntry {
    pub source: String,
    /// Leads created in the range.
    pub leads: i64,
    /// Of those, qualified or converted.
    pub qualified: i64,
    pub converted: i64,
    /// Converted leads whose opportunity is won.
    pub won: i64,
    pub won_amount: String,
    /// `qualified / leads`.
    pub qualification_rate: Rate,
    /// `converted / leads`.
    pub conversion_rate: Rate,
    /// `won / converted`.
    pub win_rate: Rate,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeadSourcesReport {
    pub data: Vec<SourceEntry>,
}

#[derive(QueryableByName)]
struct SourceRow {
    #[diesel(sql_type = Text)]
    source: String,
    #[diesel(sql_type = BigInt)]
    leads: i64,
    #[diesel(sql_type = BigInt)]
    qualified: i64,
    #[diesel(sql_type = BigInt)]
    converted: i64,
    #[diesel(sql_type = BigInt)]
    won: i64,
    #[diesel(sql_type = BigInt)]
    won_amount_hi: i64,
    #[diesel(sql_type = BigInt)]
    won_amount_lo: i64,
}

/// Leads by source; the owner, team and visibility apply to the lead's owner, the
/// pipeline (when given) to the opportunity a lead was converted into.
pub fn lead_sources(conn: &mut DbConn, scope: &Scope) -> AppResult<LeadSourcesReport> {
    let mut q = Sql::new(backend_of(conn));
    q.push(&format!(
        "SELECT l.source AS source, CAST(COUNT(*) AS BIGINT) AS leads, \
         CAST(SUM(CASE WHEN l.status IN ('qualified', 'converted') THEN 1 ELSE 0 END) AS BIGINT) AS qualified, \
         CAST(SUM(CASE WHEN l.status = 'converted' THEN 1 ELSE 0 END) AS BIGINT) AS converted, \
         CAST(SUM(CASE WHEN o.status = 'won' THEN 1 ELSE 0 END) AS BIGINT) AS won, \
         {} FROM leads l LEFT JOIN opportunities o ON o.id = l.converted_opportunity_id",
        money_sum(
            &format!(
                "CASE WHEN o.status = 'won' THEN {} ELSE 0 END",
                crate::storage::sql::thousandths("o.amount_minor", "o.currency")
            ),
            None,
            "won_amount"
        )
    ));
    if let Some(p) = &scope.pipeline_id {
        q.push(" AND o.pipeline_id = ").id(p);
    }
    q.push(" WHERE 1 = 1");
    scope.push_owner_filter(&mut q, "l.owner_id");
    scope.push_range(&mut q, "l.created_at");
    q.push(" GROUP BY l.source ORDER BY l.source");
    let data = q
        .load::<SourceRow>(conn)?
        .into_iter()
        .map(|r| SourceEntry {
            qualification_rate: Rate::of(r.qualified, r.leads),
            conversion_rate: Rate::of(r.converted, r.leads),
            win_rate: Rate::of(r.won, r.converted),
            won_amount: format_thousandths(join_sum(r.won_amount_hi, r.won_amount_lo)),
            source: r.source,
            leads: r.leads,
            qualified: r.qualified,
            converted: r.converted,
            won: r.won,
        })
        .collect();
    Ok(LeadSourcesReport { data })
}

pub fn lead_sources_csv(r: &LeadSourcesReport) -> Vec<Vec<String>> {
    let rate = |r: &Rate| r.value.map(|v| v.to_string()).unwrap_or_default();
    let mut rows = vec![[
        "source",
        "leads",
        "qualified",
        "converted",
        "won",
        "won_amount",
        "qualification_rate",
        "conversion_rate",
        "win_rate",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()];
    for e in &r.data {
        rows.push(vec![
            e.source.clone(),
            e.leads.to_string(),
            e.qualified.to_string(),
            e.converted.to_string(),
            e.won.to_string(),
            e.won_amount.clone(),
            rate(&e.qualification_rate),
            rate(&e.conversion_rate),
            rate(&e.win_rate),
        ]);
    }
    rows
}
