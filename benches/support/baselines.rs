//! Hand-written SQL for each report variant, over the tables its endpoint reads, with
//! the numbers both must agree on: the report benchmark checks them once, outside the
//! timed runs, and times the SQL beside the endpoint.
//!
//! Each statement returns one text column `v`, one line per number group; the same lines
//! are read off the endpoint's JSON. Funnels compare the deals and the entries of every
//! stage per segment; durations the closed stays' count and longest stay and the running
//! stays' count (and on PostgreSQL the median) per segment and stage; the leaderboard won
//! deals and advances per owner; reactivation its five counts; loss reasons the count per
//! stage and reason; effectiveness the stays and advances per stage.

use serde_json::Value;

/// Who a variant runs as: the owners the SQL must keep.
pub enum Who {
    Admin,
    Team(String),
    Rep(String),
}

impl Who {
    fn on(&self, column: &str) -> String {
        match self {
            Who::Admin => String::new(),
            Who::Team(team) => {
                format!(" AND {column} IN (SELECT id FROM users WHERE team_id = '{team}')")
            }
            Who::Rep(rep) => format!(" AND {column} = '{rep}'"),
        }
    }
}

/// One variant: which report, in which mode, over the range or not, split how.
pub struct Variant<'a> {
    pub report: &'a str,
    pub mode: &'a str,
    pub range: bool,
    pub group: &'a str,
}

/// Reads the lines of numbers off an endpoint's JSON answer.
pub type Numbers = Box<dyn Fn(&Value) -> Vec<String>>;

/// The statements, and the lines of the endpoint's answer they must reproduce.
pub struct Baseline {
    pub statements: Vec<String>,
    pub numbers: Numbers,
}

const FROM: &str = "2026-01-01 00:00:00";
const TO: &str = "2026-07-01 00:00:00";

fn range(on: bool, column: &str) -> String {
    if on {
        format!(" AND {column} >= '{FROM}' AND {column} < '{TO}'")
    } else {
        String::new()
    }
}

/// The segment key over alias `a`, and the join it needs.
fn key(group: &str, a: &str, pg: bool) -> (String, String) {
    match group {
        "" => ("''".into(), String::new()),
        "owner" => (format!("{a}.owner_id"), String::new()),
        "team" => (
            "COALESCE(CAST(ou.team_id AS TEXT), '')".into(),
            format!(" LEFT JOIN users ou ON ou.id = {a}.owner_id"),
        ),
        "tag" if pg => (
            "tg.tag".into(),
            format!(" CROSS JOIN LATERAL json_array_elements_text({a}.tags::json) tg(tag)"),
        ),
        "tag" => ("tg.value".into(), format!(" JOIN json_each({a}.tags) tg")),
        column => (format!("COALESCE({a}.{column}, '')"), String::new()),
    }
}

/// ` GROUP BY` the key (when it is a column) and `rest`; PostgreSQL refuses a constant.
fn group_by(k: &str, rest: &str) -> String {
    let keys: Vec<&str> = [k, rest]
        .into_iter()
        .filter(|c| !c.is_empty() && *c != "''")
        .collect();
    if keys.is_empty() {
        " HAVING COUNT(*) > 0".into()
    } else {
        format!(" GROUP BY {}", keys.join(", "))
    }
}

fn text(expr: &str) -> String {
    format!("CAST({expr} AS TEXT)")
}

fn int(v: &Value) -> String {
    v.as_i64().map(|n| n.to_string()).unwrap_or_default()
}

/// The segments of a grouped answer with the whole (key ""), for reports with `stages`.
fn parts(r: &Value) -> Vec<(String, &Value)> {
    let mut out = vec![(String::new(), r)];
    for s in r["segments"].as_array().into_iter().flatten() {
        out.push((s["key"].as_str().unwrap_or_default().to_owned(), s));
    }
    out
}

/// The baseline of `v` for pipeline `p`, whose stages are `(id, position, kind)`;
/// `scoped`: the variant names the pipeline (reports where it is optional).
pub fn baseline(
    pg: bool,
    p: &str,
    stages: &[(String, i32, String)],
    v: &Variant,
    scoped: bool,
    who: &Who,
) -> Option<Baseline> {
    let groups: Vec<&str> = if v.group.is_empty() {
        vec![""]
    } else {
        vec!["", v.group]
    };
    let pipeline = |a: &str| {
        if scoped {
            format!(" AND {a}.pipeline_id = '{p}'")
        } else {
            String::new()
        }
    };
    match v.report {
        "funnel" => {
            // Funnel steps: lost stages are not steps.
            let stages: Vec<(String, i32)> = stages
                .iter()
                .filter(|(_, _, kind)| kind != "lost")
                .map(|(id, pos, _)| (id.clone(), *pos))
                .collect();
            let statements = groups
                .iter()
                .map(|g| {
                    if v.mode == "period" && v.range {
                        // Entries in the range, from the stays.
                        let (k, join) = key(g, "st", pg);
                        let entered: String = stages
                            .iter()
                            .map(|(id, _)| {
                                format!(" || '|' || {}", text(&format!("COUNT(DISTINCT CASE WHEN st.stage_id = '{id}' THEN st.opportunity_id END)")))
                            })
                            .collect();
                        format!(
                            "SELECT {k} || '|' || {}{entered} AS v FROM stage_stays st{join} \
                             WHERE st.pipeline_id = '{p}'{}{}{}",
                            text("COUNT(DISTINCT st.opportunity_id)"),
                            range(true, "st.entered_at"),
                            who.on("st.owner_id"),
                            group_by(&k, "")
                        )
                    } else {
                        // Every entry of the deals (created in the range for a cohort).
                        let (k, join) = key(g, "r", pg);
                        let entered: String = stages
                            .iter()
                            .map(|(_, pos)| format!(" || '|' || {}", text(&format!("SUM((r.entered_mask >> {pos}) & 1)"))))
                            .collect();
                        format!(
                            "SELECT {k} || '|' || {}{entered} AS v FROM deal_reach r{join} \
                             WHERE r.pipeline_id = '{p}'{}{}{}",
                            text("COUNT(*)"),
                            range(v.range, "r.created_at"),
                            who.on("r.owner_id"),
                            group_by(&k, "")
                        )
                    }
                })
                .collect();
            Some(Baseline {
                statements,
                numbers: Box::new(move |r: &Value| {
                    parts(r)
                        .into_iter()
                        .filter(|(_, s)| s["total"].as_i64().unwrap_or(0) > 0)
                        .map(|(k, s)| {
                            let mut line = format!("{k}|{}", int(&s["total"]));
                            for (id, _) in &stages {
                                let entered = s["stages"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .find(|x| x["stage_id"] == id.as_str())
                                    .map(|x| int(&x["entered"]))
                                    .unwrap_or_default();
                                line.push_str(&format!("|{entered}"));
                            }
                            line
                        })
                        .collect()
                }),
            })
        }
        "stage-durations" => {
            let median = |column: &str| {
                if pg {
                    format!(
                        " || '|' || CAST(CAST(ROUND(CAST(percentile_cont(0.5) WITHIN GROUP (ORDER BY {column}) AS NUMERIC)) AS BIGINT) AS TEXT)"
                    )
                } else {
                    String::new()
                }
            };
            let mut statements = Vec::new();
            for g in &groups {
                let (k, join) = key(g, "st", pg);
                statements.push(format!(
                    "SELECT 'c|' || {k} || '|' || st.stage_id || '|' || {} || '|' || {}{} AS v FROM stage_stays st{join} \
                     WHERE st.pipeline_id = '{p}' AND st.seconds IS NOT NULL{}{}{}",
                    text("COUNT(*)"),
                    text("CAST(ROUND(MAX(st.seconds)) AS BIGINT)"),
                    median("st.seconds"),
                    range(v.range, "st.entered_at"),
                    who.on("st.owner_id"),
                    group_by(&k, "st.stage_id")
                ));
                let (k, join) = key(g, "o", pg);
                statements.push(format!(
                    "SELECT 'o|' || {k} || '|' || o.stage_id || '|' || {} AS v FROM opportunities o \
                     JOIN stages s ON s.id = o.stage_id AND s.kind = 'open'{join} \
                     WHERE o.pipeline_id = '{p}' AND o.status = 'open'{}{}",
                    text("COUNT(*)"),
                    who.on("o.owner_id"),
                    group_by(&k, "o.stage_id")
                ));
            }
            Some(Baseline {
                statements,
                numbers: Box::new(move |r: &Value| {
                    let mut out = Vec::new();
                    for (k, s) in parts(r) {
                        for st in s["stages"].as_array().into_iter().flatten() {
                            let id = st["stage_id"].as_str().unwrap_or_default();
                            if st["count"].as_i64().unwrap_or(0) > 0 {
                                let mut line = format!(
                                    "c|{k}|{id}|{}|{}",
                                    int(&st["count"]),
                                    st["max"].as_f64().unwrap_or(0.0).round() as i64
                                );
                                if pg {
                                    let median = st["median"].as_f64().unwrap_or(0.0).round() as i64;
                                    line.push_str(&format!("|{median}"));
                                }
                                out.push(line);
                            }
                            if st["open_count"].as_i64().unwrap_or(0) > 0 {
                                out.push(format!("o|{k}|{id}|{}", int(&st["open_count"])));
                            }
                        }
                    }
                    out
                }),
            })
        }
        "leaderboard" => {
            let advances = if v.range {
                format!(
                    "SELECT 'a|' || st.owner_id || '|' || {} AS v FROM stage_stays st WHERE st.advance_in = 1{}{}{} GROUP BY st.owner_id",
                    text("COUNT(*)"),
                    pipeline("st"),
                    range(true, "st.entered_at"),
                    who.on("st.owner_id")
                )
            } else {
                format!(
                    "SELECT 'a|' || r.owner_id || '|' || {} AS v FROM deal_reach r WHERE r.advances > 0{}{} GROUP BY r.owner_id",
                    text("SUM(r.advances)"),
                    pipeline("r"),
                    who.on("r.owner_id")
                )
            };
            let won = format!(
                "SELECT 'w|' || r.owner_id || '|' || {} AS v FROM deal_reach r WHERE r.status = 'won'{}{}{} GROUP BY r.owner_id",
                text("COUNT(*)"),
                pipeline("r"),
                range(v.range, "r.closed_at"),
                who.on("r.owner_id")
            );
            Some(Baseline {
                statements: vec![advances, won],
                numbers: Box::new(|r: &Value| {
                    let mut out = Vec::new();
                    for e in r["data"].as_array().into_iter().flatten() {
                        let owner = e["owner_id"].as_str().unwrap_or_default();
                        for (tag, field) in [("a", "stage_advances"), ("w", "won_count")] {
                            if e[field].as_i64().unwrap_or(0) > 0 {
                                out.push(format!("{tag}|{owner}|{}", int(&e[field])));
                            }
                        }
                    }
                    out
                }),
            })
        }
        "reactivation" => {
            let lost_in_range = if v.range {
                format!(
                    " AND r.opportunity_id IN (SELECT st.opportunity_id FROM stage_stays st WHERE st.stage_kind = 'lost'{})",
                    range(true, "st.entered_at")
                )
            } else {
                String::new()
            };
            let count = |cond: &str| text(&format!("COALESCE(SUM(CASE WHEN {cond} THEN 1 ELSE 0 END), 0)"));
            Some(Baseline {
                statements: vec![format!(
                    "SELECT {} || '|' || {} || '|' || {} || '|' || {} || '|' || {} AS v FROM deal_reach r \
                     WHERE r.was_lost = 1{lost_in_range}{}{}",
                    text("COUNT(*)"),
                    count("r.reopened = 1"),
                    count("r.reopened = 1 AND r.status = 'won'"),
                    count("r.reopened = 1 AND r.status = 'open'"),
                    count("r.reopened = 1 AND r.status = 'lost'"),
                    pipeline("r"),
                    who.on("r.owner_id")
                )],
                numbers: Box::new(|r: &Value| {
                    vec![["lost", "reopened", "won_after_reopen", "open_after_reopen", "lost_again"]
                        .iter()
                        .map(|f| int(&r[*f]))
                        .collect::<Vec<_>>()
                        .join("|")]
                }),
            })
        }
        "loss-reasons" => Some(Baseline {
            statements: vec![format!(
                "SELECT COALESCE(CAST(r.lost_from_stage_id AS TEXT), '-') || '|' || COALESCE(r.lost_reason_id, '-') || '|' || {} AS v \
                 FROM deal_reach r WHERE r.status = 'lost'{}{}{} GROUP BY r.lost_from_stage_id, r.lost_reason_id",
                text("COUNT(*)"),
                pipeline("r"),
                range(v.range, "r.closed_at"),
                who.on("r.owner_id")
            )],
            numbers: Box::new(|r: &Value| {
                r["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        format!(
                            "{}|{}|{}",
                            e["stage_id"].as_str().unwrap_or("-"),
                            e["loss_reason_id"].as_str().unwrap_or("-"),
                            int(&e["count"])
                        )
                    })
                    .collect()
            }),
        }),
        "activity-effectiveness" => Some(Baseline {
            statements: vec![format!(
                "SELECT st.stage_id || '|' || {} || '|' || {} AS v FROM stage_stays st \
                 WHERE st.pipeline_id = '{p}' AND st.stage_kind = 'open'{}{} GROUP BY st.stage_id",
                text("COUNT(*)"),
                text("SUM(CASE WHEN st.advanced = 1 AND st.seconds <= 1209600 THEN 1 ELSE 0 END)"),
                range(v.range, "st.entered_at"),
                who.on("st.owner_id")
            )],
            numbers: Box::new(|r: &Value| {
                let mut out: Vec<String> = r["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|e| e["activity_type"] == "call")
                    .map(|e| {
                        let stays = e["stays_with"].as_i64().unwrap_or(0) + e["stays_without"].as_i64().unwrap_or(0);
                        let advanced =
                            e["advanced_with"].as_i64().unwrap_or(0) + e["advanced_without"].as_i64().unwrap_or(0);
                        format!("{}|{stays}|{advanced}", e["stage_id"].as_str().unwrap_or_default())
                    })
                    .filter(|l| !l.ends_with("|0|0"))
                    .collect();
                out.sort();
                out
            }),
        }),
        _ => None,
    }
}
