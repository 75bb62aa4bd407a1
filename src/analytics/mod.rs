//! The analytics module: reports computed in the database from the append-only stage
//! log, plus the pure functions (rates, percentiles, funnel rules) that shape them.
//!
//! Every report query is built by [`Sql`], which writes the backend's placeholders and
//! keeps the bind values, and starts from [`Scope`], which limits the opportunities to
//! what the caller may see and to the requested pipeline, owner and team.

pub mod activity;
pub mod durations;
pub mod forecast;
pub mod funnel;
pub mod funnel_svg;
pub mod losses;
pub mod math;
pub mod people;
pub mod stalled;

use crate::domain::pipeline::StageKind;
use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::sql_types::Text;
use diesel::QueryableByName;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Visibility;
use crate::domain::money::SUM_SPLIT;
use crate::error::ProblemCode;
use crate::error::{AppError, AppResult};
pub use crate::storage::sql::Sql;
use crate::storage::{Backend, DbConn};

/// `SUM(amount × factor)` as the two columns `{alias}_hi` and `{alias}_lo` (BIGINT),
/// split at [`SUM_SPLIT`] so that neither can overflow; join them with
/// [`crate::domain::money::join_sum`].
pub fn money_sum(amount: &str, factor: Option<&str>, alias: &str) -> String {
    let times = factor.map(|f| format!(" * {f}")).unwrap_or_default();
    format!(
        "CAST(COALESCE(SUM(({amount}) / {SUM_SPLIT}{times}), 0) AS BIGINT) AS {alias}_hi, \
         CAST(COALESCE(SUM(({amount}) % {SUM_SPLIT}{times}), 0) AS BIGINT) AS {alias}_lo"
    )
}

/// How a report splits its numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Owner,
    Team,
    Source,
    Industry,
    CompanySize,
    Region,
    Tag,
}

/// Which opportunities a report looks at.
#[derive(Debug, Clone)]
pub struct Scope {
    pub visibility: Visibility,
    pub pipeline_id: Option<String>,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

impl Scope {
    /// True when the deals in scope are not simply "every deal of the pipeline": then
    /// queries must join the opportunity rows; otherwise the stage log alone (which
    /// carries `pipeline_id`) is enough.
    pub fn restricts_deals(&self) -> bool {
        self.owner_id.is_some() || self.team_id.is_some() || self.visibility != Visibility::All
    }

    /// Appends ` AND …` conditions on the opportunity alias `o` (pipeline, owner, team,
    /// visibility). Time conditions are each report's own.
    pub fn push_deal_filter(&self, q: &mut Sql) {
        self.push_filter_on(q, "o");
    }

    /// The same conditions on any alias with `pipeline_id` and `owner_id` columns (the
    /// report aggregates `deal_reach` and `stage_stays` carry both).
    pub fn push_filter_on(&self, q: &mut Sql, alias: &str) {
        if let Some(p) = &self.pipeline_id {
            q.push(&format!(" AND {alias}.pipeline_id = ")).id(p);
        }
        self.push_owner_filter(q, &format!("{alias}.owner_id"));
    }

    /// The conditions of [`Scope::push_filter_on`] and the range on the stays alias
    /// `alias`, for reading stays by entry time: without a pipeline, the condition names
    /// every pipeline, so that the index by pipeline and entry time is read as one range
    /// per pipeline instead of whole.
    pub fn push_entries_on(&self, q: &mut Sql, alias: &str) {
        if self.pipeline_id.is_none() {
            q.push(&format!(
                " AND {alias}.pipeline_id IN (SELECT p.id FROM pipelines p)"
            ));
        }
        if let Some(p) = &self.pipeline_id {
            q.push(&format!(" AND {alias}.pipeline_id = ")).id(p);
        }
        // On SQLite the unary `+` keeps the planner on that index: by the owner index, a
        // team's stays are hundreds of thousands of scattered row reads.
        let owner = match q.backend {
            Backend::Sqlite => format!("+{alias}.owner_id"),
            Backend::Postgres => format!("{alias}.owner_id"),
        };
        self.push_owner_filter(q, &owner);
        self.push_range(q, &format!("{alias}.entered_at"));
    }

    /// True when a time range was asked for.
    pub fn has_range(&self) -> bool {
        self.from.is_some() || self.to.is_some()
    }

    /// Appends ` AND …` conditions on an owner column: the owner and team asked for, and
    /// what the caller may see.
    pub fn push_owner_filter(&self, q: &mut Sql, column: &str) {
        if let Some(owner) = &self.owner_id {
            q.push(&format!(" AND {column} = ")).id(owner);
        }
        if let Some(team) = &self.team_id {
            q.push(&format!(
                " AND {column} IN (SELECT u.id FROM users u WHERE u.team_id = "
            ))
            .id(team)
            .push(")");
        }
        match &self.visibility {
            Visibility::All => {}
            Visibility::Own(user) => {
                q.push(&format!(" AND {column} = ")).id(user);
            }
            Visibility::Team { members, .. } => {
                q.push(&format!(" AND {column} IN ")).in_ids(members);
            }
        }
    }

    /// Appends ` AND column >= from AND column < to` for the given timestamp column.
    pub fn push_range(&self, q: &mut Sql, column: &str) {
        if let Some(from) = self.from {
            q.push(&format!(" AND {column} >= ")).ts(from);
        }
        if let Some(to) = self.to {
            q.push(&format!(" AND {column} < ")).ts(to);
        }
    }
}

/// Segments a report lists at most; the others are summed up as one `other` segment, so
/// that a `group_by` over free-form values (tags) cannot make an answer of thousands.
pub const MAX_SEGMENTS: usize = 50;

/// The `segment` of the `other` segment in CSV.
pub const OTHER_SEGMENT: &str = "(other)";

/// The [`MAX_SEGMENTS`] largest keys by size (ties by key), or `None` when every key
/// fits.
pub fn largest_keys(sizes: impl IntoIterator<Item = (String, i64)>) -> Option<Vec<String>> {
    let mut sizes: Vec<(String, i64)> = sizes.into_iter().collect();
    if sizes.len() <= MAX_SEGMENTS {
        return None;
    }
    sizes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Some(
        sizes
            .into_iter()
            .take(MAX_SEGMENTS)
            .map(|(key, _)| key)
            .collect(),
    )
}

/// The segments kept by [`cap_segments`], and the rest summed up (how many, and their
/// numbers as one) when there were more.
pub type CappedSegments<T, R> = (BTreeMap<String, T>, Option<(i64, R)>);

/// Keeps the [`MAX_SEGMENTS`] largest segments of `by_key`. When there were more,
/// `rest` computes the others as one from the kept keys, and comes back with how many
/// segments it sums up.
pub fn cap_segments<T, R>(
    mut by_key: BTreeMap<String, T>,
    size: impl Fn(&T) -> i64,
    rest: impl FnOnce(&[String]) -> AppResult<R>,
) -> AppResult<CappedSegments<T, R>> {
    let Some(kept) = largest_keys(by_key.iter().map(|(k, v)| (k.clone(), size(v)))) else {
        return Ok((by_key, None));
    };
    let other = rest(&kept)?;
    let summed = (by_key.len() - kept.len()) as i64;
    by_key.retain(|k, _| kept.contains(k));
    Ok((by_key, Some((summed, other))))
}

/// What a grouped report query reads: the whole (one key `''`), one segment per key, or
/// every row outside the listed keys as one segment (key `''`), in which a deal or stay
/// that has several of those keys (tags) counts once.
#[derive(Debug, Clone, Copy)]
pub enum Segments<'a> {
    Whole,
    Each(GroupBy),
    /// Each key, and the whole in the same pass: every row says whether it counts for
    /// the whole and whether for its key ([`Segments::flags`]).
    EachAndWhole(GroupBy),
    Rest(GroupBy, &'a [String]),
}

impl Segments<'_> {
    pub fn group(&self) -> Option<GroupBy> {
        match *self {
            Segments::Whole => None,
            Segments::Each(g) | Segments::EachAndWhole(g) | Segments::Rest(g, _) => Some(g),
        }
    }

    /// The joins the key needs after the table of `alias`. Reading the whole alongside
    /// tags, the tags are joined outer (a deal without tags still counts in the whole)
    /// and numbered (a deal with several counts once in the whole, by its first).
    pub fn join(&self, backend: Backend, alias: &str) -> String {
        match (*self, backend) {
            (Segments::EachAndWhole(GroupBy::Tag), Backend::Postgres) => format!(
                " LEFT JOIN LATERAL json_array_elements_text({alias}.tags::json) WITH ORDINALITY AS tg(value, i) ON TRUE"
            ),
            (Segments::EachAndWhole(GroupBy::Tag), Backend::Sqlite) => {
                format!(" LEFT JOIN json_each({alias}.tags) tg")
            }
            _ => segment_join(backend, self.group(), alias),
        }
    }

    /// Two 0/1 expressions: does a row count for the whole, and for its key.
    pub fn flags(&self, backend: Backend) -> (&'static str, &'static str) {
        match (*self, backend) {
            (Segments::Whole, _) => ("1", "0"),
            (Segments::Each(_) | Segments::Rest(..), _) => ("0", "1"),
            (Segments::EachAndWhole(GroupBy::Tag), Backend::Postgres) => (
                "CASE WHEN tg.i IS NULL OR tg.i = 1 THEN 1 ELSE 0 END",
                "CASE WHEN tg.value IS NULL THEN 0 ELSE 1 END",
            ),
            (Segments::EachAndWhole(GroupBy::Tag), Backend::Sqlite) => (
                "CASE WHEN tg.key IS NULL OR tg.key = 0 THEN 1 ELSE 0 END",
                "CASE WHEN tg.value IS NULL THEN 0 ELSE 1 END",
            ),
            (Segments::EachAndWhole(_), _) => ("1", "1"),
        }
    }

    /// The key column's expression over `alias`, a row carrying the deal's segment
    /// columns (an opportunity, or a row of the report aggregates).
    pub fn key(&self, backend: Backend, alias: &str) -> String {
        match *self {
            Segments::Each(g) => segment_expr(g, backend, alias),
            Segments::EachAndWhole(g) => {
                format!("COALESCE({}, '')", segment_expr(g, backend, alias))
            }
            Segments::Whole | Segments::Rest(..) => "''".to_owned(),
        }
    }

    /// True when rows may repeat a deal and must be counted distinctly.
    pub fn merges(&self) -> bool {
        matches!(self, Segments::Rest(..))
    }

    /// Appends ` AND key NOT IN (…)` for the rest.
    pub fn push_filter(&self, q: &mut Sql, alias: &str) {
        if let Segments::Rest(g, keys) = *self {
            let key = segment_expr(g, q.backend, alias);
            q.push(&format!(" AND {key} NOT IN ")).in_texts(keys);
        }
    }
}

/// The SQL expression of a segment key over `alias`: a row with the deal's `owner_id`,
/// `source`, `industry`, `company_size`, `region` and `tags` (opportunities and both
/// report aggregates have them), and, for teams, `ou` (the owner's user row) and for tags
/// `tg` (one row per tag), both joined by [`segment_join`].
///
/// A key is text on both backends: on PostgreSQL, where ids are UUIDs, an owner or team
/// id is cast to its text form.
pub fn segment_expr(group: GroupBy, backend: Backend, alias: &str) -> String {
    match (group, backend) {
        (GroupBy::Owner, Backend::Sqlite) => format!("{alias}.owner_id"),
        (GroupBy::Owner, Backend::Postgres) => format!("CAST({alias}.owner_id AS TEXT)"),
        (GroupBy::Team, Backend::Sqlite) => "COALESCE(ou.team_id, '')".to_owned(),
        (GroupBy::Team, Backend::Postgres) => "COALESCE(CAST(ou.team_id AS TEXT), '')".to_owned(),
        (GroupBy::Source, _) => format!("COALESCE({alias}.source, '')"),
        (GroupBy::Industry, _) => format!("COALESCE({alias}.industry, '')"),
        (GroupBy::CompanySize, _) => format!("COALESCE({alias}.company_size, '')"),
        (GroupBy::Region, _) => format!("COALESCE({alias}.region, '')"),
        (GroupBy::Tag, _) => "tg.value".to_owned(),
    }
}

/// The joins a segment key needs after the table of `alias`.
pub fn segment_join(backend: Backend, group: Option<GroupBy>, alias: &str) -> String {
    match (group, backend) {
        (Some(GroupBy::Team), _) => format!(" LEFT JOIN users ou ON ou.id = {alias}.owner_id"),
        (Some(GroupBy::Tag), Backend::Postgres) => {
            format!(" CROSS JOIN LATERAL json_array_elements_text({alias}.tags::json) AS tg(value)")
        }
        (Some(GroupBy::Tag), Backend::Sqlite) => format!(" JOIN json_each({alias}.tags) tg"),
        _ => String::new(),
    }
}

/// The first and last instants a report bound may name. SQLite stores timestamps as
/// ISO text and compares them as text, so a bound must keep four-digit years: the day
/// after 9999-12-31 would be written `+10000-01-01` and sort before every real date.
fn bound_limits() -> (NaiveDateTime, NaiveDateTime) {
    let first = NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or(NaiveDate::MIN);
    let last = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or(NaiveDate::MAX);
    (
        first.and_hms_opt(0, 0, 0).unwrap_or_default(),
        last.and_hms_micro_opt(23, 59, 59, 999_999)
            .unwrap_or_default(),
    )
}

/// Reads a report bound: a date (`2026-03-01`, the start of that day in UTC; as `to`, the
/// end of it) or an RFC 3339 time with any offset (converted to UTC). Dates outside
/// 0001-01-01..9999-12-31 are refused; a bound that its offset or the end of its day
/// carries past those limits is clamped to them.
pub fn parse_bound(field: &str, text: &str, is_end: bool) -> AppResult<NaiveDateTime> {
    let refuse = |message: &str| AppError::BadRequest {
        code: ProblemCode::InvalidParameter,
        detail: format!("{field}: {message}"),
        errors: vec![crate::error::FieldError::new(field, "invalid", message)],
    };
    // The longest RFC 3339 time with nanoseconds and an offset has 35 characters; more
    // digits would be read and dropped.
    if text.len() > 40 {
        return Err(refuse("expected a date (YYYY-MM-DD) or an RFC 3339 time"));
    }
    let (first, last) = bound_limits();
    let (written, t) = if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if is_end { d.succ_opt().unwrap_or(d) } else { d };
        (d, day.and_hms_opt(0, 0, 0).unwrap_or_default())
    } else {
        let t = chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|_| refuse("expected a date (YYYY-MM-DD) or an RFC 3339 time"))?;
        (t.date_naive(), t.naive_utc())
    };
    if written < first.date() || written > last.date() {
        return Err(refuse("must be between 0001-01-01 and 9999-12-31"));
    }
    Ok(t.clamp(first, last))
}

/// The last day a bound given as the end of a range includes, for date columns.
pub fn last_day_before(end: NaiveDateTime) -> NaiveDate {
    (end - chrono::Duration::microseconds(1)).date()
}

#[derive(QueryableByName, Debug, Clone)]
pub struct StageInfo {
    #[diesel(sql_type = crate::storage::uid::Uid)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub position: i32,
    #[diesel(sql_type = Text)]
    pub kind: StageKind,
}

/// The stages of a pipeline in position order; 404 when the pipeline does not exist.
pub fn pipeline_stages(conn: &mut DbConn, pipeline_id: &str) -> AppResult<Vec<StageInfo>> {
    let stages = crate::storage::pipelines::stages_of(conn, &pipeline_id.into())?;
    if stages.is_empty() {
        return Err(AppError::NotFound);
    }
    Ok(stages
        .into_iter()
        .map(|s| StageInfo {
            id: s.id.into(),
            name: s.name,
            position: s.position,
            kind: s.kind,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_backend() {
        let mut pg = Sql::new(Backend::Postgres);
        pg.push("a = ")
            .text("x")
            .push(" AND b IN ")
            .in_texts(&["1".into(), "2".into()]);
        assert_eq!(pg.sql_text(), "a = $1 AND b IN ($2, $3)");
        let mut lite = Sql::new(Backend::Sqlite);
        lite.push("a = ")
            .text("x")
            .push(" AND t >= ")
            .ts(NaiveDateTime::default());
        assert_eq!(lite.sql_text(), "a = ? AND t >= ?");
        let mut empty = Sql::new(Backend::Sqlite);
        empty.push("b IN ").in_texts(&[]);
        assert_eq!(empty.sql_text(), "b IN (NULL)");
    }

    #[test]
    fn the_largest_segments_are_kept() {
        assert_eq!(largest_keys([("a".to_owned(), 1)]), None);
        let sizes = (0..60).map(|i| (format!("k{i:02}"), i64::from(i % 3)));
        let kept = largest_keys(sizes).unwrap();
        assert_eq!(kept.len(), MAX_SEGMENTS);
        assert_eq!(
            &kept[..3],
            ["k02", "k05", "k08"],
            "largest first, ties by key"
        );
        assert!(!kept.contains(&"k57".to_owned()), "k57 has size 0");
    }

    #[test]
    fn bounds_take_dates_and_offsets() {
        let day = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(
            parse_bound("from", "2026-03-01", false).unwrap(),
            day("2026-03-01 00:00:00")
        );
        assert_eq!(
            parse_bound("to", "2026-03-31", true).unwrap(),
            day("2026-04-01 00:00:00"),
            "to includes its day"
        );
        assert_eq!(
            parse_bound("from", "2026-03-01T08:00:00+08:00", false).unwrap(),
            day("2026-03-01 00:00:00"),
            "Beijing 08:00 is midnight UTC"
        );
        assert!(parse_bound("from", "March", false).is_err());
    }

    #[test]
    fn bounds_stay_within_the_years_1_to_9999() {
        let (first, last) = bound_limits();
        assert_eq!(parse_bound("to", "9999-12-31", true).unwrap(), last);
        assert_eq!(
            parse_bound("to", "9999-12-31T23:00:00-05:00", true).unwrap(),
            last
        );
        assert_eq!(
            parse_bound("from", "0001-01-01T00:00:00+08:00", false).unwrap(),
            first
        );
        assert_eq!(parse_bound("from", "0001-01-01", false).unwrap(), first);
        for (field, text) in [
            ("to", "10000-01-01"),
            ("to", "+10000-01-01"),
            ("from", "0000-12-31"),
            ("from", "0000-12-31T23:00:00Z"),
            ("from", "-0001-01-01"),
        ] {
            let err = parse_bound(field, text, field == "to").unwrap_err();
            assert_eq!(err.code(), "invalid_parameter", "{text}");
        }
        assert_eq!(
            last_day_before(parse_bound("to", "2026-03-31", true).unwrap()),
            NaiveDate::from_ymd_opt(2026, 3, 31).unwrap()
        );
        assert_eq!(last_day_before(last), last.date());
    }
}
