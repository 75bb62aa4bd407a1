//! The funnel: how many deals entered each stage, reached it or a later one, advanced
//! beyond it, and were lost there.
//!
//! Rules (applied the same way in both modes):
//! - Funnel steps are the open stages in position order, then the won stage. Lost stages
//!   are not steps; a deal lost from stage S counts in S's `lost_here`.
//! - A deal *reached or passed* S when the furthest step it ever entered is S or later:
//!   a skipped stage counts as passed. It *advanced* from S when it reached a later step.
//! - `entered` counts deals with at least one entry into S: re-entries count once.
//! - A reopened deal counts once with everything it reached before and after being lost;
//!   it is in `lost_here` only while it is lost.
//! - `cohort`: deals created in the range, followed to today. `period`: deals with stage
//!   entries in the range, counting only those entries.

use crate::domain::pipeline::StageKind;
use std::collections::{BTreeMap, HashMap};

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::math::Rate;
use super::{
    cap_segments, pipeline_stages, GroupBy, Scope, Segments, Sql, StageInfo, OTHER_SEGMENT,
};
use crate::error::AppResult;
use crate::storage::opportunities::backend_of;
use crate::storage::{Backend, DbConn};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FunnelMode {
    Cohort,
    Period,
}

impl FunnelMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FunnelMode::Cohort => "cohort",
            FunnelMode::Period => "period",
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct FunnelStage {
    pub stage_id: String,
    pub name: String,
    pub position: i32,
    /// `open` or `won`.
    #[schema(value_type = crate::domain::pipeline::StageKind)]
    pub kind: String,
    pub entered: i64,
    pub reached_or_passed: i64,
    pub advanced: i64,
    /// `advanced / reached_or_passed`; null for the won stage, the end of the funnel.
    pub conversion_rate: Rate,
    pub drop_off: i64,
    pub lost_here: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct FunnelSegment {
    pub key: String,
    pub total: i64,
    pub stages: Vec<FunnelStage>,
    pub win_rate: Rate,
}

/// The segments beyond the largest [`super::MAX_SEGMENTS`], as one.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct FunnelOther {
    /// How many segments are summed up here.
    pub segments: i64,
    /// Deals in any of those segments, each counted once.
    pub total: i64,
    pub stages: Vec<FunnelStage>,
    pub win_rate: Rate,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FunnelReport {
    pub pipeline_id: String,
    pub mode: FunnelMode,
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// Deals in the report.
    pub total: i64,
    pub stages: Vec<FunnelStage>,
    /// Won deals over all deals in the report.
    pub win_rate: Rate,
    /// With `group_by`: the 50 largest segments by `total`, in key order.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub segments: Option<Vec<FunnelSegment>>,
    /// With `group_by`: true when there were more than 50 segments and `other` holds the
    /// rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub segments_truncated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub other: Option<FunnelOther>,
}

/// The database's answer, per segment key.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Counts {
    /// Deals by the furthest step rank they reached (-1: none).
    pub reach: BTreeMap<i64, i64>,
    pub entered: HashMap<String, i64>,
    pub lost_here: HashMap<String, i64>,
    pub won: i64,
}

/// Rank of a stage in the funnel: open stages by position, the won stage last, lost
/// stages outside (`None`).
pub fn step_rank(kind: StageKind, position: i32) -> Option<i64> {
    match kind {
        StageKind::Open => Some(i64::from(position)),
        StageKind::Won => Some(WON_RANK),
        StageKind::Lost => None,
    }
}

const WON_RANK: i64 = 1_000_000;

/// Turns the counts into funnel steps (pure: unit-tested on its own).
pub fn assemble(stages: &[StageInfo], c: &Counts) -> (i64, Vec<FunnelStage>, Rate) {
    let total: i64 = c.reach.values().sum();
    let mut steps: Vec<(&StageInfo, i64)> = stages
        .iter()
        .filter_map(|s| step_rank(s.kind, s.position).map(|r| (s, r)))
        .collect();
    steps.sort_by_key(|(_, r)| *r);
    let reached = |rank: i64| -> i64 { c.reach.range(rank..).map(|(_, n)| n).sum() };
    let out = steps
        .iter()
        .enumerate()
        .map(|(i, (s, rank))| {
            let here = reached(*rank);
            let is_won = s.kind == StageKind::Won;
            let advanced = match steps.get(i + 1) {
                Some((_, next)) if !is_won => reached(*next),
                _ => 0,
            };
            FunnelStage {
                stage_id: s.id.clone(),
                name: s.name.clone(),
                position: s.position,
                kind: s.kind.as_str().to_owned(),
                entered: c.entered.get(&s.id).copied().unwrap_or(0),
                reached_or_passed: here,
                advanced,
                conversion_rate: if is_won {
                    Rate::of(0, 0)
                } else {
                    Rate::of(advanced, here)
                },
                drop_off: if is_won { 0 } else { here - advanced },
                lost_here: c.lost_here.get(&s.id).copied().unwrap_or(0),
            }
        })
        .collect();
    (total, out, Rate::of(c.won, total))
}

#[derive(QueryableByName)]
struct ReachMaskRow {
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = BigInt)]
    mask: i64,
    #[diesel(sql_type = Text)]
    lost_from: String,
    #[diesel(sql_type = BigInt)]
    whole_row: i64,
    #[diesel(sql_type = BigInt)]
    in_key: i64,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Adds `n` deals that entered the stages of `mask` (bit = stage position) and, while
/// lost, were lost from `lost_from` (empty: not lost).
pub fn add_deals(c: &mut Counts, stages: &[StageInfo], mask: i64, lost_from: &str, n: i64) {
    let mut max_rank = -1;
    let mut won = false;
    for s in stages {
        if !(0..63).contains(&s.position) || (mask >> s.position) & 1 == 0 {
            continue;
        }
        *c.entered.entry(s.id.clone()).or_default() += n;
        if let Some(rank) = step_rank(s.kind, s.position) {
            max_rank = max_rank.max(rank);
        }
        won |= s.kind == StageKind::Won;
    }
    *c.reach.entry(max_rank).or_default() += n;
    if won {
        c.won += n;
    }
    if !lost_from.is_empty() {
        *c.lost_here.entry(lost_from.to_owned()).or_default() += n;
    }
}

/// Counts from the per-deal summary `deal_reach`: every entry of each deal counts
/// (cohort mode, or period mode without a range), so one row per deal answers. The row
/// carries the deal's segment columns, so a segment reads no deal row.
fn counts_from_summary(
    conn: &mut DbConn,
    scope: &Scope,
    segs: Segments,
    stages: &[StageInfo],
) -> AppResult<Read> {
    grouped_masks(conn, segs, stages, |q| {
        let (whole, in_key) = segs.flags(q.backend);
        q.push(&format!(
            "SELECT {} AS key, r.opportunity_id AS oid, r.entered_mask AS mask, \
             COALESCE(CAST(r.lost_from_stage_id AS TEXT), '') AS lost_from, CAST({whole} AS BIGINT) AS whole_row, CAST({in_key} AS BIGINT) AS in_key \
             FROM deal_reach r",
            segs.key(q.backend, "r")
        ));
        q.push(&segs.join(q.backend, "r"));
        q.push(" WHERE r.entered_mask <> 0");
        scope.push_filter_on(q, "r");
        segs.push_filter(q, "r");
        scope.push_range(q, "r.created_at");
    })
}

/// Counts of period mode with a range: only the entries in the range count. The stays
/// in the range (one index range of `stage_stays`) give each deal the mask of the stages
/// it entered then; its summary row gives the segment and whether it was lost in the
/// range, and from where.
fn counts_in_period(
    conn: &mut DbConn,
    scope: &Scope,
    segs: Segments,
    stages: &[StageInfo],
) -> AppResult<Read> {
    grouped_masks(conn, segs, stages, |q| {
        // The OR of each entered stage's bit (SQLite has no BIT_OR; the sum of the
        // distinct bits is the same number).
        let bits = match q.backend {
            Backend::Postgres => "bit_or(CAST(1 AS BIGINT) << s.position)",
            Backend::Sqlite => "SUM(DISTINCT CAST(1 AS BIGINT) << s.position)",
        };
        let (whole, in_key) = segs.flags(q.backend);
        q.push(&format!(
            "SELECT {} AS key, r.opportunity_id AS oid, e.mask AS mask, CAST({whole} AS BIGINT) AS whole_row, \
             CAST({in_key} AS BIGINT) AS in_key, CASE WHEN 1 = 1",
            segs.key(q.backend, "r")
        ));
        scope.push_range(q, "r.lost_at");
        q.push(&format!(
            " THEN COALESCE(CAST(r.lost_from_stage_id AS TEXT), '') ELSE '' END AS lost_from \
             FROM (SELECT st.opportunity_id AS oid, CAST({bits} AS BIGINT) AS mask \
             FROM stage_stays st JOIN stages s ON s.id = st.stage_id WHERE s.position BETWEEN 0 AND 62"
        ));
        scope.push_entries_on(q, "st");
        q.push(" GROUP BY st.opportunity_id) e JOIN deal_reach r ON r.opportunity_id = e.oid");
        q.push(&segs.join(q.backend, "r"));
        q.push(" WHERE 1 = 1");
        segs.push_filter(q, "r");
    })
}

/// Runs the query `rows` writes (one row per deal, or per deal and key: `key, oid, mask,
/// lost_from`)
/// grouped by key, mask and loss, and adds each group up with [`add_deals`].
fn grouped_masks(
    conn: &mut DbConn,
    segs: Segments,
    stages: &[StageInfo],
    rows: impl FnOnce(&mut Sql),
) -> AppResult<Read> {
    // Mask and loss are facts of the deal, so a deal falls in one group per key; the rest
    // may reach a deal through several keys (tags), where it counts once.
    let n = if segs.merges() {
        "COUNT(DISTINCT oid)"
    } else {
        "COUNT(*)"
    };
    let mut q = Sql::new(backend_of(conn));
    q.push(&format!(
        "SELECT key, mask, lost_from, whole_row, in_key, CAST({n} AS BIGINT) AS n FROM ("
    ));
    rows(&mut q);
    q.push(") e GROUP BY key, mask, lost_from, whole_row, in_key");
    let mut read = Read::default();
    for r in q.load::<ReachMaskRow>(conn)? {
        if r.whole_row == 1 {
            add_deals(&mut read.whole, stages, r.mask, &r.lost_from, r.n);
        }
        if r.in_key == 1 {
            let counts = read.by_key.entry(r.key).or_default();
            add_deals(counts, stages, r.mask, &r.lost_from, r.n);
        }
    }
    Ok(read)
}

/// What one read of the funnel gives: the counts of the whole (when the segments asked
/// for it) and of each key.
#[derive(Debug, Default)]
pub struct Read {
    pub whole: Counts,
    pub by_key: BTreeMap<String, Counts>,
}

/// Reads the counts of the segments (and of the whole, as [`Segments`] says).
pub fn counts(
    conn: &mut DbConn,
    scope: &Scope,
    mode: FunnelMode,
    segs: Segments,
    stages: &[StageInfo],
) -> AppResult<Read> {
    if mode == FunnelMode::Cohort || !scope.has_range() {
        counts_from_summary(conn, scope, segs, stages)
    } else {
        counts_in_period(conn, scope, segs, stages)
    }
}

pub fn report(
    conn: &mut DbConn,
    scope: &Scope,
    mode: FunnelMode,
    group: Option<GroupBy>,
) -> AppResult<FunnelReport> {
    let pipeline_id = scope.pipeline_id.clone().unwrap_or_default();
    let stages = pipeline_stages(conn, &pipeline_id)?;
    // The whole and every segment come from one read.
    let segs = match group {
        Some(g) => Segments::EachAndWhole(g),
        None => Segments::Whole,
    };
    let Read {
        whole: overall,
        by_key,
    } = counts(conn, scope, mode, segs, &stages)?;
    let (total, steps, win_rate) = assemble(&stages, &overall);
    let (mut segments, mut segments_truncated, mut other) = (None, None, None);
    if let Some(g) = group {
        let (kept, rest) = cap_segments(
            by_key,
            |c| c.reach.values().sum(),
            |keys| {
                let mut rest = counts(conn, scope, mode, Segments::Rest(g, keys), &stages)?;
                Ok(rest.by_key.remove("").unwrap_or_default())
            },
        )?;
        segments_truncated = Some(rest.is_some());
        other = rest.map(|(summed, c)| {
            let (total, stages, win_rate) = assemble(&stages, &c);
            FunnelOther {
                segments: summed,
                total,
                stages,
                win_rate,
            }
        });
        segments = Some(
            kept.into_iter()
                .map(|(key, c)| {
                    let (total, stages, win_rate) = assemble(&stages, &c);
                    FunnelSegment {
                        key,
                        total,
                        stages,
                        win_rate,
                    }
                })
                .collect(),
        );
    }
    Ok(FunnelReport {
        pipeline_id,
        mode,
        from: scope.from.map(|t| t.and_utc()),
        to: scope.to.map(|t| t.and_utc()),
        total,
        stages: steps,
        win_rate,
        segments,
        segments_truncated,
        other,
    })
}

/// CSV rows: one per (segment, stage); the whole funnel has segment `""`.
pub fn csv_rows(r: &FunnelReport) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "segment",
        "stage_id",
        "name",
        "position",
        "kind",
        "entered",
        "reached_or_passed",
        "advanced",
        "conversion_rate",
        "conversion_numerator",
        "conversion_denominator",
        "drop_off",
        "lost_here",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()];
    let mut push = |key: &str, stages: &[FunnelStage]| {
        for s in stages {
            rows.push(vec![
                key.to_owned(),
                s.stage_id.clone(),
                s.name.clone(),
                s.position.to_string(),
                s.kind.clone(),
                s.entered.to_string(),
                s.reached_or_passed.to_string(),
                s.advanced.to_string(),
                s.conversion_rate
                    .value
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                s.conversion_rate.numerator.to_string(),
                s.conversion_rate.denominator.to_string(),
                s.drop_off.to_string(),
                s.lost_here.to_string(),
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

    fn stages() -> Vec<StageInfo> {
        let s = |id: &str, position: i32, kind: &str| StageInfo {
            id: id.into(),
            name: id.to_uppercase(),
            position,
            kind: StageKind::parse(kind).unwrap(),
        };
        vec![
            s("a", 0, "open"),
            s("b", 1, "open"),
            s("c", 2, "open"),
            s("won", 3, "won"),
            s("lost", 4, "lost"),
        ]
    }

    fn counts(
        reach: &[(i64, i64)],
        entered: &[(&str, i64)],
        lost: &[(&str, i64)],
        won: i64,
    ) -> Counts {
        Counts {
            reach: reach.iter().copied().collect(),
            entered: entered.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            lost_here: lost.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            won,
        }
    }

    #[test]
    fn an_empty_funnel_has_zero_counts_and_null_rates() {
        let (total, steps, win) = assemble(&stages(), &Counts::default());
        assert_eq!(total, 0);
        assert_eq!(steps.len(), 4, "open stages then won; lost is not a step");
        assert!(steps
            .iter()
            .all(|s| s.reached_or_passed == 0 && s.conversion_rate.value.is_none()));
        assert_eq!(win.value, None);
    }

    #[test]
    fn skipped_stages_count_as_passed() {
        // One deal went a → c (skipping b) and is still open; one was won directly from a.
        let c = counts(
            &[(2, 1), (WON_RANK, 1)],
            &[("a", 2), ("c", 1), ("won", 1)],
            &[],
            1,
        );
        let (total, steps, win) = assemble(&stages(), &c);
        assert_eq!(total, 2);
        let b = &steps[1];
        assert_eq!((b.entered, b.reached_or_passed, b.advanced), (0, 2, 2));
        assert_eq!(steps[0].conversion_rate, Rate::of(2, 2));
        assert_eq!(
            steps[2].conversion_rate,
            Rate::of(1, 2),
            "c: one of two went on to won"
        );
        assert_eq!(steps[3].conversion_rate.value, None, "won ends the funnel");
        assert_eq!(win, Rate::of(1, 2));
    }

    #[test]
    fn a_single_lost_deal_shows_where_it_dropped() {
        let c = counts(&[(1, 1)], &[("a", 1), ("b", 1)], &[("b", 1)], 0);
        let (_, steps, win) = assemble(&stages(), &c);
        assert_eq!(steps[1].lost_here, 1);
        assert_eq!(
            (
                steps[1].reached_or_passed,
                steps[1].advanced,
                steps[1].drop_off
            ),
            (1, 0, 1)
        );
        assert_eq!(steps[0].conversion_rate, Rate::of(1, 1));
        assert_eq!(win, Rate::of(0, 1));
    }

    #[test]
    fn deals_that_only_touched_a_lost_stage_count_in_the_total_only() {
        let c = counts(&[(-1, 3), (0, 1)], &[("a", 1)], &[], 0);
        let (total, steps, _) = assemble(&stages(), &c);
        assert_eq!(total, 4);
        assert_eq!(steps[0].reached_or_passed, 1);
    }
}
