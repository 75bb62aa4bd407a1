//! Time spent in each stage. A stay runs from a deal's entry into a stage to its next
//! entry anywhere (the following row of its stage log). Closed stays give count, mean,
//! median, p90 and max; stays still running in an open stage of an open deal are
//! reported apart as ages. Percentiles interpolate linearly: PostgreSQL computes them
//! with `percentile_cont`; on SQLite the query returns the two ranks around each
//! percentile and [`interpolate`] finishes the same computation.

use crate::domain::pipeline::StageKind;
use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::sql_types::{BigInt, Double, Nullable, Text};
use diesel::QueryableByName;
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    cap_segments, pipeline_stages, segment_join, GroupBy, Scope, Segments, Sql, OTHER_SEGMENT,
};
use crate::error::AppResult;
use crate::storage::opportunities::backend_of;
use crate::storage::DbConn;

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Default)]
pub struct StageDuration {
    pub stage_id: String,
    pub name: String,
    /// How many stays in the stage have ended (the deal left it).
    pub count: i64,
    /// Mean length of the ended stays, in seconds; null without any.
    pub avg: Option<f64>,
    /// Median length of the ended stays, in seconds; null without any.
    pub median: Option<f64>,
    /// 90th percentile of the ended stays' lengths, in seconds; null without any.
    pub p90: Option<f64>,
    /// Longest ended stay, in seconds; null without any.
    pub max: Option<f64>,
    /// How many stays are still running (open deals now in this open stage).
    pub open_count: i64,
    /// Median age of the running stays, in seconds; null without any.
    pub open_median_age: Option<f64>,
    /// 90th percentile of the running stays' ages, in seconds; null without any.
    pub open_p90_age: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DurationSegment {
    pub key: String,
    pub stages: Vec<StageDuration>,
}

/// The segments beyond the largest [`super::MAX_SEGMENTS`], as one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DurationOther {
    /// How many segments are summed up here.
    pub segments: i64,
    /// Stays of deals in any of those segments, each counted once.
    pub stages: Vec<StageDuration>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DurationsReport {
    pub pipeline_id: String,
    pub stages: Vec<StageDuration>,
    /// With `group_by`: the 50 largest segments by stays (closed and running), in key
    /// order.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub segments: Option<Vec<DurationSegment>>,
    /// With `group_by`: true when there were more than 50 segments and `other` holds the
    /// rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub segments_truncated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub other: Option<DurationOther>,
}

#[derive(QueryableByName, Debug)]
struct Row {
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Text)]
    stage_id: String,
    /// 0 closed stays, 1 running stays.
    #[diesel(sql_type = BigInt)]
    grp: i64,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Nullable<Double>)]
    avg: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    mx: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    m_lo: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    m_hi: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    p_lo: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    p_hi: Option<f64>,
}

/// Percentile `p` of `n` sorted values from the values at ranks ⌊(n−1)p⌋ and ⌈(n−1)p⌉.
pub fn interpolate(n: i64, p: f64, lo: Option<f64>, hi: Option<f64>) -> Option<f64> {
    if n <= 0 {
        return None;
    }
    let rank = (n - 1) as f64 * p;
    let (lo, hi) = (lo?, hi?);
    Some(lo + (hi - lo) * (rank - rank.floor()))
}

pub fn report(
    conn: &mut DbConn,
    scope: &Scope,
    group: Option<GroupBy>,
    now: NaiveDateTime,
) -> AppResult<DurationsReport> {
    let pipeline_id = scope.pipeline_id.clone().unwrap_or_default();
    let stages = pipeline_stages(conn, &pipeline_id)?;
    let shape = |rows: &BTreeMap<(String, i64), Row>| -> Vec<StageDuration> {
        stages
            .iter()
            .map(|s| {
                let mut d = StageDuration {
                    stage_id: s.id.clone(),
                    name: s.name.clone(),
                    ..Default::default()
                };
                if let Some(r) = rows.get(&(s.id.clone(), 0)) {
                    d.count = r.n;
                    d.avg = r.avg;
                    d.max = r.mx;
                    d.median = interpolate(r.n, 0.5, r.m_lo, r.m_hi);
                    d.p90 = interpolate(r.n, 0.9, r.p_lo, r.p_hi);
                }
                if let Some(r) = rows
                    .get(&(s.id.clone(), 1))
                    .filter(|_| s.kind == StageKind::Open)
                {
                    d.open_count = r.n;
                    d.open_median_age = interpolate(r.n, 0.5, r.m_lo, r.m_hi);
                    d.open_p90_age = interpolate(r.n, 0.9, r.p_lo, r.p_hi);
                }
                d
            })
            .collect()
    };
    let overall = rows(conn, scope, Segments::Whole, now)?
        .remove("")
        .unwrap_or_default();
    let (mut segments, mut segments_truncated, mut other) = (None, None, None);
    if let Some(g) = group {
        let by_key = rows(conn, scope, Segments::Each(g), now)?;
        let (kept, rest) = cap_segments(
            by_key,
            |r| r.values().map(|row| row.n).sum(),
            |keys| {
                let mut rest = rows(conn, scope, Segments::Rest(g, keys), now)?;
                Ok(rest.remove("").unwrap_or_default())
            },
        )?;
        segments_truncated = Some(rest.is_some());
        other = rest.map(|(summed, r)| DurationOther {
            segments: summed,
            stages: shape(&r),
        });
        segments = Some(
            kept.into_iter()
                .map(|(key, r)| DurationSegment {
                    key,
                    stages: shape(&r),
                })
                .collect(),
        );
    }
    Ok(DurationsReport {
        pipeline_id,
        stages: shape(&overall),
        segments,
        segments_truncated,
        other,
    })
}

type Keyed = BTreeMap<String, BTreeMap<(String, i64), Row>>;

fn rows(conn: &mut DbConn, scope: &Scope, segs: Segments, now: NaiveDateTime) -> AppResult<Keyed> {
    let backend = backend_of(conn);
    let group = segs.group();
    let key = segs.key();
    // The rest may reach one stay or deal through several keys (tags): each counts once.
    let (distinct, stay_id, deal_id) = if segs.merges() {
        ("DISTINCT ", "st.id AS id, ", "o.id AS id, ")
    } else {
        ("", "", "")
    };
    // Closed stays come from the maintained `stage_stays` (the stage log with each
    // entry's next entry and the seconds between them). Without a segment this reads
    // the covering index of closed stays: one pipeline's entries, sorted by stage and
    // duration, so the percentiles sort presorted runs.
    let mut closed = Sql::new(backend);
    closed.push(&format!(
        "WITH v AS (SELECT {distinct}{stay_id}{key} AS key, st.stage_id AS stage_id, st.seconds AS value FROM stage_stays st"
    ));
    if group.is_some() {
        closed.push(" JOIN opportunities o ON o.id = st.opportunity_id");
        closed.push(segment_join(backend, group));
    }
    closed.push(" WHERE st.seconds IS NOT NULL");
    scope.push_filter_on(&mut closed, "st");
    segs.push_filter(&mut closed);
    scope.push_range(&mut closed, "st.entered_at");
    closed.push(")");
    aggregate(&mut closed, group.is_some(), 0);

    // A running stay is the current stage of an open deal: read it from the deal row.
    let mut open = Sql::new(backend);
    let age = open.seconds_between("NOW_TS", "o.stage_entered_at");
    let (before, after) = age.split_once("NOW_TS").unwrap_or((&age, ""));
    open.push(&format!(
        "WITH v AS (SELECT {distinct}{deal_id}{key} AS key, o.stage_id AS stage_id, "
    ));
    open.push(before).ts(now).push(after);
    open.push(" AS value FROM opportunities o");
    open.push(segment_join(backend, group));
    // Served in stage order by the partial index of open deals by pipeline, stage and
    // entry time; only open stages are kept when the rows are shaped.
    open.push(" WHERE o.status = 'open'");
    scope.push_deal_filter(&mut open);
    segs.push_filter(&mut open);
    open.push(")");
    aggregate(&mut open, group.is_some(), 1);

    let mut out: Keyed = BTreeMap::new();
    for q in [closed, open] {
        for r in q.load::<Row>(conn)? {
            out.entry(r.key.clone())
                .or_default()
                .insert((r.stage_id.clone(), r.grp), r);
        }
    }
    Ok(out)
}

/// Appends the count, mean, max and percentile ranks of `v(key, stage_id, value)` per
/// key and stage, tagged with `grp`.
fn aggregate(q: &mut Sql, keyed: bool, grp: i64) {
    let (by, key) = if keyed {
        ("key, stage_id", "key")
    } else {
        ("stage_id", "''")
    };
    match q.backend {
        // PostgreSQL has the ordered-set aggregate itself; both percentiles in one sort.
        crate::storage::Backend::Postgres => q.push(&format!(
            " SELECT key, stage_id, CAST({grp} AS BIGINT) AS grp, n, avg, mx, pc[1] AS m_lo, pc[1] AS m_hi, pc[2] AS p_lo, pc[2] AS p_hi \
             FROM (SELECT {key} AS key, stage_id, CAST(COUNT(*) AS BIGINT) AS n, AVG(value) AS avg, MAX(value) AS mx, \
             percentile_cont(ARRAY[0.5, 0.9]::float8[]) WITHIN GROUP (ORDER BY value) AS pc FROM v GROUP BY {by}) a"
        )),
        // SQLite has none: take the two ranks around each percentile and interpolate.
        crate::storage::Backend::Sqlite => q.push(&format!(
            ", r AS (SELECT key, stage_id, value, ROW_NUMBER() OVER (PARTITION BY {by} ORDER BY value) - 1 AS rn, \
             COUNT(*) OVER (PARTITION BY {by}) AS n FROM v) \
             SELECT {key} AS key, stage_id, CAST({grp} AS BIGINT) AS grp, CAST(MAX(n) AS BIGINT) AS n, AVG(value) AS avg, MAX(value) AS mx, \
             MAX(CASE WHEN rn = (n - 1) / 2 THEN value END) AS m_lo, \
             MAX(CASE WHEN rn = (n - 1) / 2 + (n - 1) % 2 THEN value END) AS m_hi, \
             MAX(CASE WHEN rn = (n - 1) * 9 / 10 THEN value END) AS p_lo, \
             MAX(CASE WHEN rn = (n - 1) * 9 / 10 + CASE WHEN ((n - 1) * 9) % 10 > 0 THEN 1 ELSE 0 END THEN value END) AS p_hi \
             FROM r GROUP BY {by}"
        )),
    };
}

pub fn csv_rows(r: &DurationsReport) -> Vec<Vec<String>> {
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_default();
    let mut rows = vec![[
        "segment",
        "stage_id",
        "name",
        "count",
        "avg",
        "median",
        "p90",
        "max",
        "open_count",
        "open_median_age",
        "open_p90_age",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()];
    let mut push = |key: &str, stages: &[StageDuration]| {
        for s in stages {
            rows.push(vec![
                key.to_owned(),
                s.stage_id.clone(),
                s.name.clone(),
                s.count.to_string(),
                opt(s.avg),
                opt(s.median),
                opt(s.p90),
                opt(s.max),
                s.open_count.to_string(),
                opt(s.open_median_age),
                opt(s.open_p90_age),
            ]);
        }
    };
    push("", &r.stages);
    for seg in r.segments.iter().flatten() {
        push(&seg.key, &seg.stages);
    }
    if let Some(other) = &r.other {
        push(OTHER_SEGMENT, &other.stages);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::math::percentile_cont;

    #[test]
    fn interpolation_matches_percentile_cont() {
        for values in [
            vec![5.0],
            vec![1.0, 2.0],
            vec![1.0, 2.0, 3.0, 4.0],
            (1..=11).map(f64::from).collect::<Vec<_>>(),
        ] {
            let n = values.len() as i64;
            for (p, num, den) in [(0.5, 1, 2), (0.9, 9, 10)] {
                let lo = (n - 1) * num / den;
                let hi = lo + i64::from(((n - 1) * num) % den > 0);
                let got = interpolate(n, p, Some(values[lo as usize]), Some(values[hi as usize]));
                assert_eq!(got, percentile_cont(&values, p), "n={n} p={p}");
            }
        }
        assert_eq!(interpolate(0, 0.5, None, None), None);
    }
}
