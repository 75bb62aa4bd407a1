//! Where and why deals are lost: lost deals by the stage they were lost from and their
//! managed loss reason, with counts and amounts; and reactivation, the lost deals that
//! flowed back and how many of them were won after all.

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;
use serde::Serialize;
use utoipa::ToSchema;

use super::math::Rate;
use super::{money_sum, Scope, Sql};
use crate::domain::money::{format_thousandths, join_sum};
use crate::error::AppResult;
use crate::storage::opportunities::backend_of;
use crate::storage::DbConn;

#[derive(Debug, Clone, Serialize, ToSchema, QueryableByName)]
pub struct LossRow {
    /// The stage the deal was in when it was lost.
    #[diesel(sql_type = diesel::sql_types::Nullable<crate::storage::uid::Uid>)]
    pub stage_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub stage_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub loss_reason_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub loss_reason_label: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
    /// The amount, split (see `money_sum`).
    #[diesel(sql_type = BigInt)]
    #[serde(skip)]
    pub amount_hi: i64,
    #[diesel(sql_type = BigInt)]
    #[serde(skip)]
    pub amount_lo: i64,
    #[diesel(sql_type = BigInt)]
    #[serde(skip)]
    pub position: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LossEntry {
    #[serde(flatten)]
    pub row: LossRow,
    /// Sum of the lost deals' amounts (deals without an amount count as 0).
    pub amount: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LossReport {
    pub total_lost: i64,
    pub total_amount: String,
    /// By stage position, then most frequent reason.
    pub data: Vec<LossEntry>,
}

/// Lost deals in scope lost within the range (by `lost_at`).
pub fn report(conn: &mut DbConn, scope: &Scope) -> AppResult<LossReport> {
    let mut q = Sql::new(backend_of(conn));
    q.push(&format!(
        "SELECT a.stage_id AS stage_id, fs.name AS stage_name, a.loss_reason_id AS loss_reason_id, lr.label AS loss_reason_label, \
         a.count AS count, a.amount_hi AS amount_hi, a.amount_lo AS amount_lo, \
         CAST(COALESCE(fs.position, -1) AS BIGINT) AS position FROM (\
         SELECT r.lost_from_stage_id AS stage_id, r.lost_reason_id AS loss_reason_id, \
         CAST(COUNT(*) AS BIGINT) AS count, {} \
         FROM deal_reach r WHERE r.status = 'lost'",
        money_sum("r.amount_milli", None, "amount")
    ));
    // The per-deal summary mirrors each deal's status, amount, close time and reason;
    // names are joined to the few grouped rows.
    scope.push_filter_on(&mut q, "r");
    scope.push_range(&mut q, "r.closed_at");
    q.push(
        " GROUP BY r.lost_from_stage_id, r.lost_reason_id) a \
         LEFT JOIN stages fs ON fs.id = a.stage_id LEFT JOIN loss_reasons lr ON lr.id = a.loss_reason_id",
    );
    let mut rows = q.load::<LossRow>(conn)?;
    rows.sort_by(|a, b| {
        a.position
            .cmp(&b.position)
            .then(b.count.cmp(&a.count))
            .then(a.loss_reason_id.cmp(&b.loss_reason_id))
    });
    let total_lost = rows.iter().map(|r| r.count).sum();
    let total_amount = format_thousandths(
        rows.iter()
            .map(|r| join_sum(r.amount_hi, r.amount_lo))
            .sum::<i128>(),
    );
    Ok(LossReport {
        total_lost,
        total_amount,
        data: rows
            .into_iter()
            .map(|row| LossEntry {
                amount: format_thousandths(join_sum(row.amount_hi, row.amount_lo)),
                row,
            })
            .collect(),
    })
}

pub fn csv_rows(r: &LossReport) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "stage_id",
        "stage_name",
        "loss_reason_id",
        "loss_reason_label",
        "count",
        "amount",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()];
    for e in &r.data {
        rows.push(vec![
            e.row.stage_id.clone().unwrap_or_default(),
            e.row.stage_name.clone().unwrap_or_default(),
            e.row.loss_reason_id.clone().unwrap_or_default(),
            e.row.loss_reason_label.clone().unwrap_or_default(),
            e.row.count.to_string(),
            e.amount.clone(),
        ]);
    }
    rows
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReactivationReport {
    /// Deals in scope that were ever lost (a loss in the range).
    pub lost: i64,
    /// Of those, reopened (flowed back to an open stage) at least once.
    pub reopened: i64,
    /// `reopened / lost`.
    pub reactivation_rate: Rate,
    /// Reopened deals now won.
    pub won_after_reopen: i64,
    /// Reopened deals still open.
    pub open_after_reopen: i64,
    /// Reopened deals lost again.
    pub lost_again: i64,
    /// `won_after_reopen / reopened`.
    pub win_rate_after_reopen: Rate,
    pub won_amount_after_reopen: String,
}

#[derive(QueryableByName)]
struct ReactivationRow {
    #[diesel(sql_type = BigInt)]
    lost: i64,
    #[diesel(sql_type = BigInt)]
    reopened: i64,
    #[diesel(sql_type = BigInt)]
    won: i64,
    #[diesel(sql_type = BigInt)]
    open: i64,
    #[diesel(sql_type = BigInt)]
    lost_again: i64,
    #[diesel(sql_type = BigInt)]
    won_amount_hi: i64,
    #[diesel(sql_type = BigInt)]
    won_amount_lo: i64,
}

/// Per deal: was it lost (an entry into a lost stage in the range), and was it
/// reopened (an entry from a lost stage into an open stage after that).
pub fn reactivation(conn: &mut DbConn, scope: &Scope) -> AppResult<ReactivationReport> {
    let mut q = Sql::new(backend_of(conn));
    q.push(&format!(
        "SELECT CAST(COUNT(*) AS BIGINT) AS lost, CAST(COALESCE(SUM(reopened), 0) AS BIGINT) AS reopened, \
         CAST(COALESCE(SUM(CASE WHEN reopened = 1 AND status = 'won' THEN 1 ELSE 0 END), 0) AS BIGINT) AS won, \
         CAST(COALESCE(SUM(CASE WHEN reopened = 1 AND status = 'open' THEN 1 ELSE 0 END), 0) AS BIGINT) AS open, \
         CAST(COALESCE(SUM(CASE WHEN reopened = 1 AND status = 'lost' THEN 1 ELSE 0 END), 0) AS BIGINT) AS lost_again, \
         {} FROM (",
        money_sum(
            "CASE WHEN reopened = 1 AND status = 'won' THEN amount_milli ELSE 0 END",
            None,
            "won_amount"
        )
    ));
    // The per-deal summary knows whether a deal was ever lost and whether it was
    // reopened; with a range, a deal counts when one of its entries into a lost stage
    // lies in the range (an index range of the stays).
    q.push(
        "SELECT r.opportunity_id AS id, r.status AS status, r.amount_milli AS amount_milli, \
         r.reopened AS reopened, r.was_lost AS was_lost FROM deal_reach r WHERE r.was_lost = 1",
    );
    scope.push_filter_on(&mut q, "r");
    if scope.has_range() {
        q.push(
            " AND r.opportunity_id IN (SELECT st.opportunity_id FROM stage_stays st \
             WHERE st.stage_kind = 'lost'",
        );
        scope.push_entries_on(&mut q, "st");
        q.push(")");
    }
    q.push(") d WHERE was_lost = 1");
    reactivation_row(conn, &q)
}

fn reactivation_row(conn: &mut DbConn, q: &Sql) -> AppResult<ReactivationReport> {
    let r = q.load::<ReactivationRow>(conn)?.pop();
    let r = r.unwrap_or(ReactivationRow {
        lost: 0,
        reopened: 0,
        won: 0,
        open: 0,
        lost_again: 0,
        won_amount_hi: 0,
        won_amount_lo: 0,
    });
    Ok(ReactivationReport {
        lost: r.lost,
        reopened: r.reopened,
        reactivation_rate: Rate::of(r.reopened, r.lost),
        won_after_reopen: r.won,
        open_after_reopen: r.open,
        lost_again: r.lost_again,
        win_rate_after_reopen: Rate::of(r.won, r.reopened),
        won_amount_after_reopen: format_thousandths(join_sum(r.won_amount_hi, r.won_amount_lo)),
    })
}

pub fn reactivation_csv(r: &ReactivationReport) -> Vec<Vec<String>> {
    vec![
        [
            "lost",
            "reopened",
            "won_after_reopen",
            "open_after_reopen",
            "lost_again",
            "win_rate_after_reopen",
            "won_amount_after_reopen",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        vec![
            r.lost.to_string(),
            r.reopened.to_string(),
            r.won_after_reopen.to_string(),
            r.open_after_reopen.to_string(),
            r.lost_again.to_string(),
            r.win_rate_after_reopen
                .value
                .map(|v| v.to_string())
                .unwrap_or_default(),
            r.won_amount_after_reopen.clone(),
        ],
    ]
}
