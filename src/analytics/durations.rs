//! Time spent in each stage. A stay runs from a deal's entry into a stage to its next
//! entry anywhere (the following row of its stage log). Closed stays give count, mean,
//! median, p90 and max; stays still running in an open stage of an open deal are
//! reported apart as ages. Percentiles interpolate linearly: PostgreSQL computes them
//! with `percentile_cont`; on SQLite the query returns the two ranks around each
//! percentile and [`interpolate`] finishes the same computation.

use crate::domain::pipeline::StageKind;
use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::sql_types::{BigInt, Double, Nullable, Text};
use diesel::QueryableByName;
use serde::Serialize;
use utoipa::ToSchema;

use super::{cap_segments, pipeline_stages, GroupBy, Scope, Segments, Sql, OTHER_SEGMENT};
use crate::error::{AppError, AppResult};
use crate::storage::opportunities::backend_of;
use crate::storage::{Backend, DbConn};

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
    #[diesel(sql_type = crate::storage::uid::Uid)]
    stage_id: String,
    /// 1 for the rows of the whole read alongside the segments.
    #[diesel(sql_type = BigInt)]
    whole: i64,
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

/// `helper`: a second connection, when one is free, to split the heaviest query over.
pub fn report(
    conn: &mut DbConn,
    mut helper: Option<&mut DbConn>,
    scope: &Scope,
    group: Option<GroupBy>,
    now: NaiveDateTime,
) -> AppResult<DurationsReport> {
    let pipeline_id = scope.pipeline_id.clone().unwrap_or_default();
    let stages = pipeline_stages(conn, &pipeline_id)?;
    let stage_ids: Vec<String> = stages.iter().map(|s| s.id.clone()).collect();
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
    // The whole and every segment come from one read.
    let segs = match group {
        Some(g) => Segments::EachAndWhole(g),
        None => Segments::Whole,
    };
    let Read {
        whole: overall,
        by_key,
    } = rows(conn, helper.as_deref_mut(), scope, segs, now, &stage_ids)?;
    let (mut segments, mut segments_truncated, mut other) = (None, None, None);
    if let Some(g) = group {
        let (kept, rest) = cap_segments(
            by_key,
            |r| r.values().map(|row| row.n).sum(),
            |keys| {
                let mut rest = rows(
                    conn,
                    helper,
                    scope,
                    Segments::Rest(g, keys),
                    now,
                    &stage_ids,
                )?
                .by_key;
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

type Stages = BTreeMap<(String, i64), Row>;
type Keyed = BTreeMap<String, Stages>;

/// What one read gives: the rows of each key and, when asked for, of the whole.
#[derive(Default)]
struct Read {
    whole: Stages,
    by_key: Keyed,
}

/// The values a report aggregates: closed stays' lengths (`grp` 0) and running stays'
/// ages (`grp` 1), each as `v(id, key, stage_id, value)`.
fn value_queries(
    backend: Backend,
    scope: &Scope,
    segs: Segments,
    now: NaiveDateTime,
    closed_stages: Option<&[String]>,
) -> [(i64, Sql); 2] {
    let (whole, in_key) = segs.flags(backend);
    // The rest may reach one stay or deal through several keys (tags): each counts once.
    let (distinct, stay_id, deal_id) = if segs.merges() {
        ("DISTINCT ", "CAST(st.id AS TEXT)", "CAST(o.id AS TEXT)")
    } else {
        ("", "''", "''")
    };
    // Closed stays come from the maintained `stage_stays` (the stage log with each
    // entry's next entry and the seconds between them). Without a segment this reads
    // the closed range of the stays' covering index: one pipeline's entries, sorted by stage and
    // duration. A stay carries its deal's segment columns, so a segment reads no deal
    // row.
    let mut closed = Sql::new(backend);
    closed.push(&format!(
        "SELECT {distinct}{stay_id} AS id, {} AS key, st.stage_id AS stage_id, st.seconds AS value, \
         CAST({whole} AS BIGINT) AS whole_row, CAST({in_key} AS BIGINT) AS in_key FROM stage_stays st",
        segs.key(backend, "st")
    ));
    closed.push(&segs.join(backend, "st"));
    closed.push(" WHERE st.seconds IS NOT NULL");
    if let Some(ids) = closed_stages {
        closed.push(" AND st.stage_id IN ").in_ids(ids);
    }
    scope.push_filter_on(&mut closed, "st");
    segs.push_filter(&mut closed, "st");
    scope.push_range(&mut closed, "st.entered_at");

    // A running stay is the current stage of an open deal: read it from the deal row.
    let mut open = Sql::new(backend);
    let age = open.seconds_between("NOW_TS", "o.stage_entered_at");
    let (before, after) = age.split_once("NOW_TS").unwrap_or((&age, ""));
    open.push(&format!(
        "SELECT {distinct}{deal_id} AS id, {} AS key, o.stage_id AS stage_id, ",
        segs.key(backend, "o")
    ));
    open.push(before).ts(now).push(after);
    open.push(&format!(
        " AS value, CAST({whole} AS BIGINT) AS whole_row, CAST({in_key} AS BIGINT) AS in_key FROM opportunities o"
    ));
    open.push(&segs.join(backend, "o"));
    // Served in stage order by the partial index of open deals by pipeline, stage and
    // entry time; only open stages are kept when the rows are shaped.
    open.push(" WHERE o.status = 'open'");
    scope.push_deal_filter(&mut open);
    segs.push_filter(&mut open, "o");
    [(0, closed), (1, open)]
}

/// The rows of each key of `segs` and of the whole, as [`Segments`] asks.
fn rows(
    conn: &mut DbConn,
    helper: Option<&mut DbConn>,
    scope: &Scope,
    segs: Segments,
    now: NaiveDateTime,
    stage_ids: &[String],
) -> AppResult<Read> {
    let backend = backend_of(conn);
    let mut all = Vec::new();
    match helper {
        // PostgreSQL computes the ordered-set aggregates of a query on one core. With a
        // second connection, the closed stays of half the stages are aggregated on it at
        // the same time (stages are groups of their own, so the halves just add up).
        Some(helper) if backend == Backend::Postgres && stage_ids.len() > 1 => {
            let even: Vec<String> = stage_ids.iter().step_by(2).cloned().collect();
            let odd: Vec<String> = stage_ids.iter().skip(1).step_by(2).cloned().collect();
            let [(_, other_half), _] = value_queries(backend, scope, segs, now, Some(&odd));
            let [(_, half), (_, open)] = value_queries(backend, scope, segs, now, Some(&even));
            let (other, mine, running) = std::thread::scope(|s| {
                let other = s.spawn(move || aggregated_in_sql(helper, other_half, 0, segs));
                let mine = aggregated_in_sql(conn, half, 0, segs);
                let running = aggregated_in_sql(conn, open, 1, segs);
                (other.join(), mine, running)
            });
            let other = other.map_err(|_| AppError::internal("durations half failed"))?;
            all.extend(other?);
            all.extend(mine?);
            all.extend(running?);
        }
        _ => {
            for (grp, values) in value_queries(backend, scope, segs, now, None) {
                all.extend(match backend {
                    Backend::Postgres => aggregated_in_sql(conn, values, grp, segs)?,
                    Backend::Sqlite => aggregated_here(conn, values, grp)?,
                });
            }
        }
    }
    let mut out = Read::default();
    {
        for r in all {
            let stages = if r.whole == 1 {
                &mut out.whole
            } else {
                out.by_key.entry(r.key.clone()).or_default()
            };
            stages.insert((r.stage_id.clone(), r.grp), r);
        }
    }
    Ok(out)
}

/// PostgreSQL has the ordered-set aggregate: count, mean, max and both percentiles per
/// key and stage (and per stage for the whole, in the same pass) in one read.
fn aggregated_in_sql(
    conn: &mut DbConn,
    values: Sql,
    grp: i64,
    segs: Segments,
) -> AppResult<Vec<Row>> {
    // (before, aggregate, after, name): a FILTER goes right after the aggregate.
    const NUMBERS: [(&str, &str, &str, &str); 4] = [
        ("CAST(", "COUNT(*)", " AS BIGINT)", "n"),
        ("", "AVG(value)", "", "avg"),
        ("", "MAX(value)", "", "mx"),
        (
            "",
            "percentile_cont(ARRAY[0.5, 0.9]::float8[]) WITHIN GROUP (ORDER BY value)",
            "",
            "pc",
        ),
    ];
    let tags = matches!(segs, Segments::EachAndWhole(GroupBy::Tag));
    let numbers: Vec<String> = NUMBERS
        .iter()
        .map(|(before, aggregate, after, name)| {
            let filtered =
                |rows: &str| format!("{before}{aggregate} FILTER (WHERE {rows} = 1){after}");
            if tags {
                // A row may count for its key only, or for the whole only.
                format!(
                    "CASE WHEN GROUPING(key) = 1 THEN {} ELSE {} END AS {name}",
                    filtered("whole_row"),
                    filtered("in_key")
                )
            } else {
                format!("{before}{aggregate}{after} AS {name}")
            }
        })
        .collect();
    let (is_whole, by) = match segs {
        Segments::EachAndWhole(_) => (
            "CAST(GROUPING(key) AS BIGINT)",
            "GROUPING SETS ((stage_id), (key, stage_id))",
        ),
        Segments::Whole => ("CAST(1 AS BIGINT)", "key, stage_id"),
        Segments::Each(_) | Segments::Rest(..) => ("CAST(0 AS BIGINT)", "key, stage_id"),
    };
    let mut q = Sql::new(values.backend);
    q.push(&format!(
        "SELECT COALESCE(key, '') AS key, stage_id, whole, CAST({grp} AS BIGINT) AS grp, n, avg, mx, \
         pc[1] AS m_lo, pc[1] AS m_hi, pc[2] AS p_lo, pc[2] AS p_hi \
         FROM (SELECT key, stage_id, {is_whole} AS whole, {} FROM (",
        numbers.join(", ")
    ));
    q.append(&values);
    q.push(&format!(") v GROUP BY {by}) a WHERE n > 0"));
    q.load::<Row>(conn)
}

#[derive(QueryableByName)]
struct Value {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = crate::storage::uid::Uid)]
    stage_id: String,
    #[diesel(sql_type = Double)]
    value: f64,
    #[diesel(sql_type = BigInt)]
    whole_row: i64,
    #[diesel(sql_type = BigInt)]
    in_key: i64,
}

/// SQLite has no percentile aggregate, and ranking a pipeline's million stays with a
/// window sorts them all in a temporary b-tree (7 s at a million deals). Instead the
/// values are read once and each group is sorted here (mostly presorted: the covering
/// index yields them by stage and length), which takes a fraction of that.
fn aggregated_here(conn: &mut DbConn, values: Sql, grp: i64) -> AppResult<Vec<Row>> {
    // (key, stage) → values; the whole's key is `None`.
    let mut groups: HashMap<(Option<String>, String), Vec<f64>> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    for v in values.load_iter::<Value>(conn)? {
        let v = v?;
        // The rest lists a stay or deal once per key it has outside the kept ones.
        if !v.id.is_empty() && !seen.insert(v.id) {
            continue;
        }
        if v.whole_row == 1 {
            groups
                .entry((None, v.stage_id.clone()))
                .or_default()
                .push(v.value);
        }
        if v.in_key == 1 {
            groups
                .entry((Some(v.key), v.stage_id))
                .or_default()
                .push(v.value);
        }
    }
    Ok(groups
        .into_iter()
        .map(|((key, stage_id), mut v)| {
            v.sort_by(f64::total_cmp);
            let n = v.len();
            // The ranks around each percentile, as `interpolate` takes them.
            let around = |num: usize, den: usize| {
                let lo = (n - 1) * num / den;
                let hi = lo + usize::from(!((n - 1) * num).is_multiple_of(den));
                (Some(v[lo]), Some(v[hi]))
            };
            let (m_lo, m_hi) = around(1, 2);
            let (p_lo, p_hi) = around(9, 10);
            Row {
                whole: i64::from(key.is_none()),
                key: key.unwrap_or_default(),
                stage_id,
                grp,
                n: n as i64,
                avg: Some(v.iter().sum::<f64>() / n as f64),
                mx: v.last().copied(),
                m_lo,
                m_hi,
                p_lo,
                p_hi,
            }
        })
        .collect())
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
