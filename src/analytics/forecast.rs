//! Forecast: open deals by expected close period (month or quarter), owner and
//! currency, unweighted and weighted by effective probability (the deal's override or
//! its stage's). Snapshots freeze a forecast; their accuracy compares each frozen row
//! with the deals actually won in that period by that owner.

use crate::storage::uid::uid;
use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::math::{round4, Rate};
use super::{last_day_before, money_sum, Scope, Sql};
use crate::domain::ids::{SnapshotId, UserId};
use crate::domain::money::{exponent_of, format_minor, join_sum, parse_total};
use crate::error::ProblemCode;
use crate::error::{AppError, AppResult};
use crate::storage::opportunities::backend_of;
use crate::storage::schema::forecast_snapshots;
use crate::storage::types::JsonText;
use crate::storage::DbConn;

crate::domain::lead::text_enum!(Period { Month = "month", Quarter = "quarter" });

crate::storage::types::text_columns!(Period);

// What a snapshot is taken of; stored with it, so its accuracy is later checked over
// the same deals.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshot {
    #[schema(example = "2026 Q4 commit")]
    pub name: String,
    /// Defaults to `month`.
    pub period: Option<Period>,
    pub pipeline_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ForecastRow {
    /// `2026-12` or `2026-Q4`.
    pub period: String,
    pub owner_id: String,
    pub owner_name: Option<String>,
    pub currency: String,
    pub deals: i64,
    pub unweighted: String,
    /// Σ amount × effective probability / 100.
    pub weighted: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ForecastTotal {
    pub period: String,
    pub currency: String,
    pub deals: i64,
    pub unweighted: String,
    pub weighted: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ForecastReport {
    pub period: Period,
    pub rows: Vec<ForecastRow>,
    pub totals: Vec<ForecastTotal>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    period: String,
    #[diesel(sql_type = crate::storage::uid::Uid)]
    owner_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    owner_name: Option<String>,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = BigInt)]
    deals: i64,
    #[diesel(sql_type = BigInt)]
    unweighted_hi: i64,
    #[diesel(sql_type = BigInt)]
    unweighted_lo: i64,
    /// Σ amount_minor × probability (hundredths of a minor unit of `currency`), split.
    #[diesel(sql_type = BigInt)]
    weighted_hi: i64,
    #[diesel(sql_type = BigInt)]
    weighted_lo: i64,
}

/// Rounds hundredths of a minor unit half away from zero.
fn from_x100(v: i128) -> i128 {
    (v + if v >= 0 { 50 } else { -50 }) / 100
}

/// Open deals whose expected close date is in the range.
pub fn report(conn: &mut DbConn, scope: &Scope, period: Period) -> AppResult<ForecastReport> {
    let mut q = Sql::new(backend_of(conn));
    let key = q.period_key("o.expected_close_date", period == Period::Quarter);
    let unweighted = money_sum("o.amount_minor", None, "unweighted");
    let weighted = money_sum(
        "o.amount_minor",
        Some("COALESCE(o.probability, s.probability)"),
        "weighted",
    );
    q.push(&format!(
        "SELECT {key} AS period, o.owner_id AS owner_id, MAX(u.name) AS owner_name, o.currency AS currency, \
         CAST(COUNT(*) AS BIGINT) AS deals, {unweighted}, {weighted} \
         FROM opportunities o JOIN stages s ON s.id = o.stage_id LEFT JOIN users u ON u.id = o.owner_id \
         WHERE o.status = 'open' AND o.expected_close_date IS NOT NULL"
    ));
    scope.push_deal_filter(&mut q);
    // Dates are bound as text: PostgreSQL casts them to DATE, SQLite compares the
    // ISO text it stores.
    let cast = if q.backend == crate::storage::Backend::Postgres {
        "::date"
    } else {
        ""
    };
    if let Some(from) = scope.from {
        q.push(" AND o.expected_close_date >= ")
            .text(&from.date().to_string())
            .push(cast);
    }
    if let Some(to) = scope.to {
        q.push(" AND o.expected_close_date <= ")
            .text(&last_day_before(to).to_string())
            .push(cast);
    }
    q.push(&format!(
        " GROUP BY {key}, o.owner_id, o.currency ORDER BY 1, 2, 4"
    ));
    let rows = q.load::<Row>(conn)?;
    let mut totals: BTreeMap<(String, String), (i64, i128, i128)> = BTreeMap::new();
    for r in &rows {
        let t = totals
            .entry((r.period.clone(), r.currency.clone()))
            .or_default();
        t.0 += r.deals;
        t.1 += join_sum(r.unweighted_hi, r.unweighted_lo);
        t.2 += join_sum(r.weighted_hi, r.weighted_lo);
    }
    Ok(ForecastReport {
        period,
        rows: rows
            .into_iter()
            .map(|r| ForecastRow {
                weighted: format_minor(
                    from_x100(join_sum(r.weighted_hi, r.weighted_lo)),
                    exponent_of(&r.currency),
                ),
                unweighted: format_minor(
                    join_sum(r.unweighted_hi, r.unweighted_lo),
                    exponent_of(&r.currency),
                ),
                period: r.period,
                owner_id: r.owner_id,
                owner_name: r.owner_name,
                currency: r.currency,
                deals: r.deals,
            })
            .collect(),
        totals: totals
            .into_iter()
            .map(
                |((period, currency), (deals, unweighted, weighted))| ForecastTotal {
                    period,
                    deals,
                    unweighted: format_minor(unweighted, exponent_of(&currency)),
                    weighted: format_minor(from_x100(weighted), exponent_of(&currency)),
                    currency,
                },
            )
            .collect(),
    })
}

pub fn csv_rows(r: &ForecastReport) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "period",
        "owner_id",
        "owner_name",
        "currency",
        "deals",
        "unweighted",
        "weighted",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()];
    for e in &r.rows {
        rows.push(vec![
            e.period.clone(),
            e.owner_id.clone(),
            e.owner_name.clone().unwrap_or_default(),
            e.currency.clone(),
            e.deals.to_string(),
            e.unweighted.clone(),
            e.weighted.clone(),
        ]);
    }
    rows
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = forecast_snapshots)]
pub struct SnapshotRow {
    pub id: SnapshotId,
    pub name: String,
    pub period: Period,
    /// What the forecast was taken of.
    pub scope: JsonText<CreateSnapshot>,
    pub rows: JsonText<Vec<ForecastRow>>,
    pub created_at: NaiveDateTime,
    pub created_by: UserId,
}

pub fn insert_snapshot(conn: &mut DbConn, row: &SnapshotRow) -> AppResult<()> {
    diesel::insert_into(forecast_snapshots::table)
        .values(row.clone())
        .execute(conn)?;
    Ok(())
}

/// Snapshots one user may take in any 24 hours: enough for every team and period a
/// manager tracks, while a script looping on the endpoint stops early.
pub const SNAPSHOTS_PER_DAY: i64 = 100;

/// Refuses a snapshot when `user_id` has taken [`SNAPSHOTS_PER_DAY`] in the 24 hours
/// before `now`; `Retry-After` says when the oldest of them leaves the window.
pub fn check_snapshot_quota(conn: &mut DbConn, user_id: &str, now: NaiveDateTime) -> AppResult<()> {
    let day = chrono::Duration::hours(24);
    let (taken, oldest): (i64, Option<NaiveDateTime>) = forecast_snapshots::table
        .filter(forecast_snapshots::created_by.eq(uid(user_id)))
        .filter(forecast_snapshots::created_at.gt(now - day))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(forecast_snapshots::created_at),
        ))
        .first(conn)?;
    if taken < SNAPSHOTS_PER_DAY {
        return Ok(());
    }
    let wait = oldest.map_or(day, |t| t + day - now).num_seconds().max(1);
    Err(AppError::QuotaExceeded {
        code: ProblemCode::SnapshotQuotaExceeded,
        detail: format!(
            "You have taken {SNAPSHOTS_PER_DAY} forecast snapshots in the last 24 hours; the next one is possible in {wait} s."
        ),
        retry_after_secs: wait.unsigned_abs(),
    })
}

/// A snapshot its creator (or an admin, `any_creator`) may read.
pub fn find_snapshot(
    conn: &mut DbConn,
    id: &str,
    user_id: &str,
    any_creator: bool,
) -> AppResult<SnapshotRow> {
    forecast_snapshots::table
        .find(uid(id))
        .select(SnapshotRow::as_select())
        .first(conn)
        .optional()?
        .filter(|s| any_creator || s.created_by.as_str() == user_id)
        .ok_or(AppError::NotFound)
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct AccuracyRow {
    pub period: String,
    pub owner_id: String,
    pub currency: String,
    pub forecast_deals: i64,
    pub forecast_unweighted: String,
    pub forecast_weighted: String,
    /// Deals of this owner won with `won_at` in the period (in the snapshot's scope).
    pub won_deals: i64,
    pub won_amount: String,
    /// `won_amount / forecast_weighted`; null without a weighted forecast.
    pub attainment: Option<f64>,
    /// `won_amount − forecast_weighted`.
    pub error: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccuracyReport {
    pub snapshot_id: String,
    pub period: Period,
    pub rows: Vec<AccuracyRow>,
    /// Periods×owners whose won amount came within 10 % of the weighted forecast.
    pub within_10_percent: Rate,
}

#[derive(QueryableByName)]
struct WonRow {
    #[diesel(sql_type = Text)]
    period: String,
    #[diesel(sql_type = crate::storage::uid::Uid)]
    owner_id: String,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = BigInt)]
    deals: i64,
    #[diesel(sql_type = BigInt)]
    amount_hi: i64,
    #[diesel(sql_type = BigInt)]
    amount_lo: i64,
}

/// Compares a snapshot's rows with what was won in each period (rows with no forecast
/// but with wins appear with a zero forecast).
pub fn accuracy(
    conn: &mut DbConn,
    snapshot: &SnapshotRow,
    scope: &Scope,
) -> AppResult<AccuracyReport> {
    let period = snapshot.period;
    let frozen: &[ForecastRow] = &snapshot.rows;
    let periods: Vec<String> = {
        let mut p: Vec<String> = frozen.iter().map(|r| r.period.clone()).collect();
        p.sort();
        p.dedup();
        p
    };
    let mut q = Sql::new(backend_of(conn));
    let key = q.period_key("o.closed_at", period == Period::Quarter);
    let amount = money_sum("o.amount_minor", None, "amount");
    q.push(&format!(
        "SELECT {key} AS period, o.owner_id AS owner_id, o.currency AS currency, CAST(COUNT(*) AS BIGINT) AS deals, \
         {amount} FROM opportunities o WHERE o.status = 'won'"
    ));
    scope.push_deal_filter(&mut q);
    q.push(&format!(" AND {key} IN ")).in_texts(&periods);
    q.push(&format!(" GROUP BY {key}, o.owner_id, o.currency"));
    let mut won: BTreeMap<(String, String, String), (i64, i128)> = q
        .load::<WonRow>(conn)?
        .into_iter()
        .map(|r| {
            (
                (r.period, r.owner_id, r.currency),
                (r.deals, join_sum(r.amount_hi, r.amount_lo)),
            )
        })
        .collect();
    // Frozen totals may be larger than any single amount.
    let parse = |s: &str, currency: &str| parse_total(s, exponent_of(currency)).unwrap_or(0);
    let mut rows = Vec::new();
    for f in frozen {
        let (deals, amount) = won
            .remove(&(f.period.clone(), f.owner_id.clone(), f.currency.clone()))
            .unwrap_or((0, 0));
        rows.push(accuracy_row(
            f.period.clone(),
            f.owner_id.clone(),
            f.currency.clone(),
            f.deals,
            parse(&f.unweighted, &f.currency),
            parse(&f.weighted, &f.currency),
            deals,
            amount,
        ));
    }
    for ((p, owner, currency), (deals, amount)) in won {
        rows.push(accuracy_row(p, owner, currency, 0, 0, 0, deals, amount));
    }
    let close = rows
        .iter()
        .filter(|r| r.attainment.is_some_and(|a| (a - 1.0).abs() <= 0.1))
        .count() as i64;
    Ok(AccuracyReport {
        snapshot_id: snapshot.id.to_string(),
        period,
        within_10_percent: Rate::of(close, rows.len() as i64),
        rows,
    })
}

#[allow(clippy::too_many_arguments)]
fn accuracy_row(
    period: String,
    owner_id: String,
    currency: String,
    forecast_deals: i64,
    unweighted: i128,
    weighted: i128,
    won_deals: i64,
    won_amount: i128,
) -> AccuracyRow {
    let exponent = exponent_of(&currency);
    AccuracyRow {
        period,
        owner_id,
        currency,
        forecast_deals,
        forecast_unweighted: format_minor(unweighted, exponent),
        forecast_weighted: format_minor(weighted, exponent),
        won_deals,
        won_amount: format_minor(won_amount, exponent),
        attainment: (weighted > 0).then(|| round4(won_amount as f64 / weighted as f64)),
        error: format_minor(won_amount - weighted, exponent),
    }
}

pub fn accuracy_csv(r: &AccuracyReport) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "period",
        "owner_id",
        "currency",
        "forecast_deals",
        "forecast_unweighted",
        "forecast_weighted",
        "won_deals",
        "won_amount",
        "attainment",
        "error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()];
    for e in &r.rows {
        rows.push(vec![
            e.period.clone(),
            e.owner_id.clone(),
            e.currency.clone(),
            e.forecast_deals.to_string(),
            e.forecast_unweighted.clone(),
            e.forecast_weighted.clone(),
            e.won_deals.to_string(),
            e.won_amount.clone(),
            e.attainment.map(|v| v.to_string()).unwrap_or_default(),
            e.error.clone(),
        ]);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_amounts_round_half_away_from_zero() {
        assert_eq!(from_x100(12_345), 123);
        assert_eq!(from_x100(12_350), 124);
        assert_eq!(from_x100(-12_350), -124);
    }

    #[test]
    fn attainment_needs_a_forecast() {
        let r = accuracy_row(
            "2026-12".into(),
            "u".into(),
            "CNY".into(),
            1,
            10_000,
            5_000,
            1,
            5_500,
        );
        assert_eq!(r.attainment, Some(1.1));
        assert_eq!(r.error, "5.00");
        let none = accuracy_row(
            "2026-12".into(),
            "u".into(),
            "CNY".into(),
            0,
            0,
            0,
            1,
            1_000,
        );
        assert_eq!(none.attainment, None);
    }
}
