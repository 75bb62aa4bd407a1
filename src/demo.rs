//! Synthetic pipeline data for demos and benchmarks: teams of reps, three industry
//! pipelines, opportunities that walk their stages with skips, re-entries, losses with
//! reasons, reopens and wins, activities along the way, and leads by source. The stage
//! log it writes is what the API would have written for the same moves.

use crate::storage::uid::{opt_uid, uid};
use std::io::Write;
use std::time::Instant;

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::auth::password;
use crate::domain::ids::{OpportunityId, PipelineId, UserId};
use crate::domain::lead::{CompanySize, LeadSource, LeadStatus};
use crate::domain::opportunity::{ActivityType, Channel, OpportunityStatus};
use crate::domain::pipeline::{StageDraft, StageKind};
use crate::domain::templates::template;
use crate::domain::Problems;
use crate::error::{AppError, AppResult};
use crate::storage::activities::ActivityRow;
use crate::storage::leads::LeadRow;
use crate::storage::opportunities::{OpportunityRow, TransitionRow};
use crate::storage::pipelines::StageRow;
use crate::storage::schema::{activities, leads, opportunities, stage_transitions, teams, users};
use crate::storage::types::JsonText;
use crate::storage::{self, DbConn};

/// A small, fast, seedable generator (xorshift64*): the data is reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const SOURCES: &[LeadSource] = &[
    LeadSource::WebForm,
    LeadSource::Social,
    LeadSource::Ads,
    LeadSource::Event,
    LeadSource::Referral,
    LeadSource::Outbound,
    LeadSource::Import,
    LeadSource::Api,
    LeadSource::Other,
];
const INDUSTRIES: &[&str] = &[
    "software",
    "manufacturing",
    "retail",
    "healthcare",
    "education",
    "finance",
    "logistics",
    "energy",
];
const SIZES: &[CompanySize] = &[
    CompanySize::S1,
    CompanySize::S11,
    CompanySize::S51,
    CompanySize::S201,
    CompanySize::S1000,
];
const REGIONS: &[&str] = &["华东", "华南", "华北", "华中", "西南", "西北", "东北"];
const TAGS: &[&str] = &["vip", "renewal", "upsell", "partner", "tender"];
const REASONS: &[&str] = &[
    "budget",
    "decision_chain",
    "competitor",
    "need_changed",
    "late_follow_up",
    "other",
];
const ACTIVITY_TYPES: &[ActivityType] = &[
    ActivityType::Call,
    ActivityType::Email,
    ActivityType::Meeting,
    ActivityType::Demo,
    ActivityType::Proposal,
    ActivityType::Note,
    ActivityType::Task,
];

pub struct DemoOptions {
    pub opportunities: usize,
    pub seed: u64,
}

#[derive(Debug, Default)]
pub struct DemoSummary {
    pub users: usize,
    pub pipelines: usize,
    pub opportunities: usize,
    pub transitions: usize,
    pub activities: usize,
    pub leads: usize,
    pub won: usize,
    pub lost: usize,
    pub seconds: f64,
}

struct Pipe {
    id: PipelineId,
    open: Vec<StageRow>,
    won: StageRow,
    lost: StageRow,
}

/// The tables the generator fills in bulk.
const BULK_TABLES: &[&str] = &["opportunities", "stage_transitions", "activities", "leads"];

/// Generates the data set. `progress` receives a line now and then.
pub fn generate(
    conn: &mut DbConn,
    opts: &DemoOptions,
    progress: &mut dyn Write,
) -> AppResult<DemoSummary> {
    let started = Instant::now();
    let mut rng = Rng::new(opts.seed);
    let now = storage::now();
    let (owners, users_made) = people(conn)?;
    let pipes = pipelines(conn, &owners[0])?;
    let mut summary = DemoSummary {
        users: users_made,
        pipelines: pipes.len(),
        ..Default::default()
    };
    // The bulk tables' secondary indexes are built once at the end rather than kept up
    // row by row (a start after an interrupted load builds them too).
    storage::write_tx(conn, |c| {
        storage::aggregates::set_indexes_aside(c, BULK_TABLES)
    })?;
    let batch = 20_000;
    let mut done = 0;
    let mut converted: Vec<OpportunityId> = Vec::new();
    while done < opts.opportunities {
        let n = batch.min(opts.opportunities - done);
        let mut opps = Vec::with_capacity(n);
        let mut log = Vec::with_capacity(n * 5);
        let mut acts = Vec::with_capacity(n);
        for _ in 0..n {
            let pipe = rng.pick(&pipes);
            let owner = rng.pick(&owners).clone();
            let (opp, entries, activities) = walk(&mut rng, pipe, owner, now);
            match opp.status {
                OpportunityStatus::Won => summary.won += 1,
                OpportunityStatus::Lost => summary.lost += 1,
                OpportunityStatus::Open => {}
            }
            if converted.len() < opts.opportunities / 8 && rng.unit() < 0.15 {
                converted.push(opp.id.clone());
            }
            opps.push(opp);
            log.extend(entries);
            acts.extend(activities);
        }
        storage::write_tx(conn, |c| -> AppResult<()> {
            bulk_opportunities(c, &opps)?;
            bulk_transitions(c, &log)?;
            bulk_activities(c, &acts)
        })?;
        summary.opportunities += opps.len();
        summary.transitions += log.len();
        summary.activities += acts.len();
        done += n;
        let _ = writeln!(
            progress,
            "  {done} opportunities, {} transitions, {:.0} s",
            summary.transitions,
            started.elapsed().as_secs_f64()
        );
    }
    summary.leads = make_leads(
        conn,
        &mut rng,
        &owners,
        &converted,
        opts.opportunities / 4,
        now,
    )?;
    let _ = writeln!(
        progress,
        "  indexing, {:.0} s",
        started.elapsed().as_secs_f64()
    );
    storage::write_tx(conn, storage::aggregates::restore_indexes)?;
    let _ = writeln!(
        progress,
        "  summarising for reports, {:.0} s",
        started.elapsed().as_secs_f64()
    );
    storage::write_tx(conn, storage::aggregates::rebuild)?;
    // Fresh planner statistics (the report queries are planned on them) and visibility.
    storage::aggregates::settle(conn, &[])?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// 5 teams of 10 reps with a manager each; reused when they exist already.
fn people(conn: &mut DbConn) -> AppResult<(Vec<UserId>, usize)> {
    let existing: Vec<UserId> = users::table
        .select(users::id)
        .filter(users::email.like("rep%@demo.example"))
        .order(users::email.asc())
        .load(conn)?;
    if !existing.is_empty() {
        return Ok((existing, 0));
    }
    let hash = password::hash("demo-password-123")?;
    let now = storage::now();
    let mut reps = Vec::new();
    storage::write_tx(conn, |c| -> AppResult<()> {
        for t in 0..5 {
            let manager: String = storage::new_id();
            let team: String = storage::new_id();
            user(
                c,
                &manager,
                &format!("manager{t}@demo.example"),
                &format!("经理{t}"),
                "manager",
                None,
                &hash,
                now,
            )?;
            diesel::insert_into(teams::table)
                .values((
                    teams::id.eq(uid(&team)),
                    teams::name.eq(format!("销售{t}组")),
                    teams::manager_id.eq(uid(&manager)),
                    teams::version.eq(1),
                    teams::created_at.eq(now),
                    teams::updated_at.eq(now),
                ))
                .execute(c)?;
            diesel::update(users::table.find(uid(&manager)))
                .set(users::team_id.eq(uid(&team)))
                .execute(c)?;
            for r in 0..10 {
                let id: String = storage::new_id();
                let n = t * 10 + r;
                user(
                    c,
                    &id,
                    &format!("rep{n:02}@demo.example"),
                    &format!("销售{n:02}"),
                    "rep",
                    Some(&team),
                    &hash,
                    now,
                )?;
                reps.push(UserId::from(id));
            }
        }
        Ok(())
    })?;
    Ok((reps, 55))
}

#[allow(clippy::too_many_arguments)]
fn user(
    c: &mut DbConn,
    id: &str,
    email: &str,
    name: &str,
    role: &str,
    team: Option<&str>,
    hash: &str,
    now: NaiveDateTime,
) -> AppResult<()> {
    diesel::insert_into(users::table)
        .values((
            users::id.eq(uid(id)),
            users::email.eq(email),
            users::name.eq(name),
            users::password_hash.eq(hash),
            users::role.eq(role),
            users::team_id.eq(opt_uid(team)),
            users::active.eq(true),
            users::version.eq(1),
            users::created_at.eq(now),
            users::updated_at.eq(now),
        ))
        .execute(c)?;
    Ok(())
}

fn pipelines(conn: &mut DbConn, actor: &UserId) -> AppResult<Vec<Pipe>> {
    let mut out = Vec::new();
    for key in ["standard", "saas", "medical_devices"] {
        let t = template(key).ok_or_else(|| AppError::internal("template"))?;
        let mut p = Problems::default();
        let drafts: Vec<StageDraft> = t
            .stages
            .iter()
            .map(|s| StageDraft::check(s, "", &mut p))
            .collect();
        p.into_result()?;
        let name = format!("{} (demo)", t.default_name);
        let created = storage::write_tx(conn, |c| {
            storage::pipelines::create(c, &name, Some(t.description), &drafts, actor)
        })?;
        let kind = |s: &StageRow| Some(s.kind);
        out.push(Pipe {
            id: created.pipeline.id.clone(),
            open: created
                .stages
                .iter()
                .filter(|s| kind(s) == Some(StageKind::Open))
                .cloned()
                .collect(),
            won: created
                .stages
                .iter()
                .find(|s| kind(s) == Some(StageKind::Won))
                .cloned()
                .ok_or_else(|| AppError::internal("won"))?,
            lost: created
                .stages
                .iter()
                .find(|s| kind(s) == Some(StageKind::Lost))
                .cloned()
                .ok_or_else(|| AppError::internal("lost"))?,
        });
    }
    Ok(out)
}

/// One deal's life: from the first open stage, each step advances (sometimes skipping a
/// stage), steps back, loses (then maybe flows back), wins after the last open stage,
/// or stops while still open.
fn walk(
    rng: &mut Rng,
    pipe: &Pipe,
    owner: UserId,
    now: NaiveDateTime,
) -> (OpportunityRow, Vec<TransitionRow>, Vec<ActivityRow>) {
    let id: OpportunityId = storage::new_id();
    let created = now - Duration::minutes(60 + rng.below(730 * 24 * 60) as i64);
    let mut t = created;
    let mut log: Vec<TransitionRow> = Vec::new();
    let mut acts: Vec<ActivityRow> = Vec::new();
    let enter = |log: &mut Vec<TransitionRow>,
                 from: Option<&StageRow>,
                 to: &StageRow,
                 at: NaiveDateTime| {
        log.push(TransitionRow {
            id: storage::new_id(),
            opportunity_id: id.clone(),
            pipeline_id: pipe.id.clone(),
            from_stage_id: from.map(|s| s.id.clone()),
            to_stage_id: to.id.clone(),
            entered_at: at,
            actor_id: Some(owner.clone()),
            channel: Channel::Api,
            note: None,
        });
    };
    let mut pos = 0usize;
    let mut current = pipe.open[0].clone();
    enter(&mut log, None, &current, t);
    let (mut status, mut reason, mut last_activity) =
        (OpportunityStatus::Open, None, None::<NaiveDateTime>);
    for _ in 0..14 {
        let gap = Duration::minutes(60 * 6 + rng.below(60 * 24 * 20) as i64);
        if rng.unit() < 0.4 {
            let at = t + Duration::minutes(rng.below(gap.num_minutes().max(1) as usize) as i64);
            if at < now {
                acts.push(activity(rng, &id, &owner, at));
                last_activity = Some(at);
            }
        }
        let next_t = t + gap;
        if next_t >= now {
            break;
        }
        let r = rng.unit();
        let target = if status == OpportunityStatus::Lost {
            if r < 0.12 {
                let back = rng.below(pos + 1);
                status = OpportunityStatus::Open;
                reason = None;
                pos = back;
                pipe.open[back].clone()
            } else {
                break;
            }
        } else if r < 0.12 {
            status = OpportunityStatus::Lost;
            reason = Some(rng.pick(REASONS).to_string());
            pipe.lost.clone()
        } else if r < 0.22 {
            break;
        } else if r < 0.40 && pos > 0 {
            pos -= 1;
            pipe.open[pos].clone()
        } else {
            pos += if rng.unit() < 0.1 { 2 } else { 1 };
            if pos >= pipe.open.len() {
                status = OpportunityStatus::Won;
                pipe.won.clone()
            } else {
                pipe.open[pos].clone()
            }
        };
        enter(&mut log, Some(&current), &target, next_t);
        current = target;
        t = next_t;
        if status == OpportunityStatus::Won {
            break;
        }
    }
    // 500.00 to 1,000,000.00 in steps of 500.00 (minor units).
    let amount = (rng.below(2_000) as i64 + 1) * 50_000;
    let opp = OpportunityRow {
        id: id.clone(),
        name: format!("商机 {}", &id[24..]),
        pipeline_id: pipe.id.clone(),
        stage_id: current.id.clone(),
        status,
        amount_minor: Some(amount),
        currency: "CNY".into(),
        probability: None,
        expected_close_date: Some((t + Duration::days(rng.below(120) as i64)).date()),
        account_id: None,
        contact_id: None,
        lead_id: None,
        owner_id: owner.clone(),
        source: Some(*rng.pick(SOURCES)),
        industry: Some(rng.pick(INDUSTRIES).to_string()),
        company_size: Some(*rng.pick(SIZES)),
        region: Some(rng.pick(REGIONS).to_string()),
        // A list of one tag always serialises; the default (empty) is never used.
        tags: if rng.unit() < 0.3 {
            JsonText::new(vec![rng.pick(TAGS).to_string()]).unwrap_or_default()
        } else {
            JsonText::default()
        },
        next_action_text: None,
        next_action_due_at: None,
        lost_reason_id: reason,
        lost_note: None,
        stage_entered_at: t,
        last_activity_at: last_activity,
        closed_at: (status != OpportunityStatus::Open).then_some(t),
        external_id: None,
        custom: JsonText::default(),
        version: log.len() as i32,
        created_at: created,
        updated_at: t,
        created_by: Some(owner.clone()),
        updated_by: Some(owner),
    };
    (opp, log, acts)
}

fn activity(rng: &mut Rng, opp: &OpportunityId, owner: &UserId, at: NaiveDateTime) -> ActivityRow {
    ActivityRow {
        id: storage::new_id(),
        type_: *rng.pick(ACTIVITY_TYPES),
        subject: "跟进".into(),
        body: None,
        lead_id: None,
        opportunity_id: Some(opp.clone()),
        due_at: None,
        completed_at: Some(at),
        outcome: None,
        owner_id: owner.clone(),
        version: 1,
        created_at: at,
        updated_at: at,
        created_by: Some(owner.clone()),
        updated_by: Some(owner.clone()),
    }
}

fn make_leads(
    conn: &mut DbConn,
    rng: &mut Rng,
    owners: &[UserId],
    converted: &[OpportunityId],
    n: usize,
    now: NaiveDateTime,
) -> AppResult<usize> {
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let created = now - Duration::minutes(rng.below(730 * 24 * 60) as i64);
        let (status, opp) = match converted.get(i) {
            Some(o) => (LeadStatus::Converted, Some(o.to_string())),
            None => (
                *rng.pick(&[
                    LeadStatus::New,
                    LeadStatus::Contacted,
                    LeadStatus::Nurturing,
                    LeadStatus::Qualified,
                    LeadStatus::Qualified,
                    LeadStatus::Disqualified,
                ]),
                None,
            ),
        };
        rows.push(LeadRow {
            id: storage::new_id(),
            first_name: None,
            last_name: Some(format!("客户{i}")),
            email: None,
            phone: None,
            company: Some(format!("公司{i}")),
            job_title: None,
            industry: Some(rng.pick(INDUSTRIES).to_string()),
            company_size: Some(*rng.pick(SIZES)),
            region: Some(rng.pick(REGIONS).to_string()),
            country: Some("CN".into()),
            source: *rng.pick(SOURCES),
            source_detail: None,
            interest: None,
            status,
            bant: JsonText::default(),
            score: 0,
            score_breakdown: JsonText::default(),
            tags: JsonText::default(),
            owner_id: rng.pick(owners).to_string().into(),
            next_follow_up_at: None,
            last_activity_at: None,
            external_id: None,
            custom: JsonText::default(),
            converted_at: opp.as_ref().map(|_| created),
            converted_opportunity_id: opp.map(Into::into),
            disqualified_reason: (status == LeadStatus::Disqualified).then(|| "无预算".to_owned()),
            version: 1,
            created_at: created,
            updated_at: created,
            created_by: None,
            updated_by: None,
        });
    }
    for chunk in rows.chunks(20_000) {
        storage::write_tx(conn, |c| -> AppResult<()> {
            match c {
                DbConn::Pg(pg) => {
                    for part in chunk.chunks(1_000) {
                        diesel::insert_into(leads::table)
                            .values(part.to_vec())
                            .execute(pg)?;
                    }
                }
                DbConn::Sqlite(lite) => {
                    for part in chunk.chunks(900) {
                        diesel::insert_into(leads::table)
                            .values(part.to_vec())
                            .execute(lite)?;
                    }
                }
            }
            Ok(())
        })?;
    }
    Ok(n)
}

/// Opportunities go in with one binary `COPY` per batch on PostgreSQL: the columns are
/// those the row type inserts, so a new column needs no change here.
fn bulk_opportunities(c: &mut DbConn, rows: &[OpportunityRow]) -> AppResult<()> {
    match c {
        DbConn::Pg(pg) => {
            diesel::copy_from(opportunities::table)
                .from_insertable(rows.to_vec())
                .execute(pg)?;
        }
        DbConn::Sqlite(lite) => {
            for part in rows.chunks(900) {
                diesel::insert_into(opportunities::table)
                    .values(part.to_vec())
                    .execute(lite)?;
            }
        }
    }
    Ok(())
}

fn bulk_transitions(c: &mut DbConn, rows: &[TransitionRow]) -> AppResult<()> {
    match c {
        DbConn::Pg(pg) => {
            diesel::copy_from(stage_transitions::table)
                .from_insertable(rows.to_vec())
                .execute(pg)?;
        }
        DbConn::Sqlite(lite) => {
            for part in rows.chunks(3_000) {
                diesel::insert_into(stage_transitions::table)
                    .values(part.to_vec())
                    .execute(lite)?;
            }
        }
    }
    Ok(())
}

fn bulk_activities(c: &mut DbConn, rows: &[ActivityRow]) -> AppResult<()> {
    match c {
        DbConn::Pg(pg) => {
            diesel::copy_from(activities::table)
                .from_insertable(rows.to_vec())
                .execute(pg)?;
        }
        DbConn::Sqlite(lite) => {
            for part in rows.chunks(2_000) {
                diesel::insert_into(activities::table)
                    .values(part.to_vec())
                    .execute(lite)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_reproducible_and_uniform_enough() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut r = Rng::new(1);
        let mean: f64 = (0..10_000).map(|_| r.unit()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02);
    }
}
