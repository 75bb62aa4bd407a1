//! Pipelines and stages: the rules a stage definition must satisfy.

use serde::Deserialize;
use utoipa::ToSchema;

use super::lead::text_enum;
use super::{required_text, Problems};

text_enum!(StageKind {
    /// Work in progress.
    Open = "open",
    /// The deal closed won (exactly one per pipeline).
    Won = "won",
    /// The deal closed lost (at least one per pipeline).
    Lost = "lost",
});

/// Opportunity fields a stage may require before a deal enters it, under their API
/// names. `custom.<key>` names a member of the opportunity's `custom` object.
const REQUIRABLE: &[(&str, RequirableField)] = &[
    ("name", RequirableField::Name),
    ("amount", RequirableField::Amount),
    ("currency", RequirableField::Currency),
    ("probability", RequirableField::Probability),
    ("expected_close_date", RequirableField::ExpectedCloseDate),
    ("account_id", RequirableField::AccountId),
    ("contact_id", RequirableField::ContactId),
    ("lead_id", RequirableField::LeadId),
    ("owner_id", RequirableField::OwnerId),
    ("source", RequirableField::Source),
    ("industry", RequirableField::Industry),
    ("company_size", RequirableField::CompanySize),
    ("region", RequirableField::Region),
    ("tags", RequirableField::Tags),
    ("next_action", RequirableField::NextAction),
    ("external_id", RequirableField::ExternalId),
];

/// The names of the fixed requirable fields, for messages.
pub fn requirable_field_names() -> String {
    REQUIRABLE
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn is_requirable_field(name: &str) -> bool {
    REQUIRABLE.iter().any(|(n, _)| *n == name)
        || name.strip_prefix("custom.").is_some_and(|key| {
            !key.is_empty()
                && key.len() <= 64
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// One entry of a stage's `required_fields`, typed: the gate asks the deal about each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequirableField {
    Name,
    Amount,
    Currency,
    Probability,
    ExpectedCloseDate,
    AccountId,
    ContactId,
    LeadId,
    OwnerId,
    Source,
    Industry,
    CompanySize,
    Region,
    Tags,
    NextAction,
    ExternalId,
    /// `custom.<key>`: a member of the deal's `custom` object.
    Custom(String),
}

impl RequirableField {
    /// Reads the stored or submitted name; `None` for a name the gate does not know.
    pub fn parse(name: &str) -> Option<RequirableField> {
        if let Some((_, field)) = REQUIRABLE.iter().find(|(n, _)| *n == name) {
            return Some(field.clone());
        }
        let key = name.strip_prefix("custom.")?;
        is_requirable_field(name).then(|| RequirableField::Custom(key.to_owned()))
    }

    /// The API name: the opportunity field, or `custom.<key>`.
    pub fn name(&self) -> String {
        match self {
            RequirableField::Custom(key) => format!("custom.{key}"),
            fixed => REQUIRABLE
                .iter()
                .find(|(_, f)| f == fixed)
                .map(|(n, _)| (*n).to_owned())
                .unwrap_or_default(),
        }
    }
}

pub const MAX_STAGES: usize = 30;
const MAX_LIST_ITEMS: usize = 30;
const MAX_ITEM_CHARS: usize = 500;
const MAX_STALLED_DAYS: i32 = 3650;

/// A stage as a client writes it (create, or the full definition in a pipeline).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageInput {
    #[schema(example = "方案设计")]
    pub name: String,
    /// Win probability 0–100. Required for `open` stages; `won` is always 100, `lost` 0.
    #[schema(example = 40, minimum = 0, maximum = 100)]
    pub probability: Option<i32>,
    /// Defaults to `open`.
    pub kind: Option<StageKind>,
    /// A deal sitting longer than this in the stage counts as stalled.
    #[schema(example = 14, minimum = 1)]
    pub stalled_after_days: Option<i32>,
    /// Opportunity fields that must be set before a deal may enter this stage.
    #[serde(default)]
    #[schema(example = json!(["amount", "expected_close_date"]))]
    pub required_fields: Vec<String>,
    #[serde(default)]
    pub exit_criteria: Vec<String>,
    #[serde(default)]
    pub suggested_actions: Vec<String>,
    /// When a deal enters the stage its next action is due this many days later.
    #[schema(example = 3, minimum = 0)]
    pub next_action_within_days: Option<i32>,
    /// Only when adding a stage to an existing pipeline: its 0-based position (default:
    /// just before the first won/lost stage). Not allowed inside a pipeline's `stages`.
    pub position: Option<i32>,
}

/// A checked stage definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageDraft {
    pub name: String,
    pub probability: i32,
    pub kind: StageKind,
    pub stalled_after_days: Option<i32>,
    pub required_fields: Vec<String>,
    pub exit_criteria: Vec<String>,
    pub suggested_actions: Vec<String>,
    pub next_action_within_days: Option<i32>,
}

impl StageDraft {
    /// Checks one stage; `at` is the field prefix (`""` or `stages[3].`).
    pub fn check(input: &StageInput, at: &str, p: &mut Problems) -> StageDraft {
        let kind = input.kind.unwrap_or(StageKind::Open);
        let name = required_text(p, &format!("{at}name"), &input.name, 100);
        let probability = check_probability(p, at, kind, input.probability);
        if let Some(days) = input.stalled_after_days {
            if !(1..=MAX_STALLED_DAYS).contains(&days) {
                p.add(
                    format!("{at}stalled_after_days"),
                    "out_of_range",
                    format!("must be between 1 and {MAX_STALLED_DAYS}"),
                );
            }
        }
        if let Some(days) = input.next_action_within_days {
            if !(0..=365).contains(&days) {
                p.add(
                    format!("{at}next_action_within_days"),
                    "out_of_range",
                    "must be between 0 and 365",
                );
            }
        }
        let required_fields = check_required_fields(p, at, &input.required_fields);
        let exit_criteria = check_texts(p, &format!("{at}exit_criteria"), &input.exit_criteria);
        let suggested_actions = check_texts(
            p,
            &format!("{at}suggested_actions"),
            &input.suggested_actions,
        );
        StageDraft {
            name,
            probability,
            kind,
            stalled_after_days: input.stalled_after_days,
            required_fields,
            exit_criteria,
            suggested_actions,
            next_action_within_days: input.next_action_within_days,
        }
    }
}

pub fn check_probability(p: &mut Problems, at: &str, kind: StageKind, value: Option<i32>) -> i32 {
    let field = format!("{at}probability");
    match (kind, value) {
        (StageKind::Won, None | Some(100)) => 100,
        (StageKind::Won, Some(_)) => {
            p.add(field, "invalid", "a won stage has probability 100");
            100
        }
        (StageKind::Lost, None | Some(0)) => 0,
        (StageKind::Lost, Some(_)) => {
            p.add(field, "invalid", "a lost stage has probability 0");
            0
        }
        (StageKind::Open, None) => {
            p.add(
                field,
                "required",
                "an open stage needs a probability (0–100)",
            );
            0
        }
        (StageKind::Open, Some(v)) => {
            if !(0..=100).contains(&v) {
                p.add(field, "out_of_range", "must be between 0 and 100");
            }
            v
        }
    }
}

pub fn check_required_fields(p: &mut Problems, at: &str, fields: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        let f = f.trim();
        if !is_requirable_field(f) {
            p.add(
                format!("{at}required_fields[{i}]"),
                "unknown_field",
                format!(
                    "{f:?} is not an opportunity field; use one of {} or custom.<key>",
                    requirable_field_names()
                ),
            );
        } else if !out.iter().any(|o| o == f) {
            out.push(f.to_owned());
        }
    }
    out
}

pub fn check_texts(p: &mut Problems, field: &str, items: &[String]) -> Vec<String> {
    if items.len() > MAX_LIST_ITEMS {
        p.add(field, "too_many", format!("at most {MAX_LIST_ITEMS} items"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, t)| required_text(p, &format!("{field}[{i}]"), t, MAX_ITEM_CHARS))
        .collect()
}

/// The rules that hold for a pipeline's stages taken together.
pub fn check_stage_set<'a>(
    p: &mut Problems,
    field: &str,
    stages: impl IntoIterator<Item = (&'a str, StageKind)>,
) {
    let (mut won, mut lost, mut open, mut count) = (0, 0, 0, 0);
    let mut names: Vec<String> = Vec::new();
    for (name, kind) in stages {
        count += 1;
        match kind {
            StageKind::Won => won += 1,
            StageKind::Lost => lost += 1,
            StageKind::Open => open += 1,
        }
        let key = name.trim().to_lowercase();
        if names.contains(&key) {
            p.add(
                field,
                "duplicate_name",
                format!("two stages are named {name:?}"),
            );
        }
        names.push(key);
    }
    if count > MAX_STAGES {
        p.add(
            field,
            "too_many",
            format!("a pipeline has at most {MAX_STAGES} stages"),
        );
    }
    if won != 1 {
        p.add(
            field,
            "won_stage_count",
            format!("a pipeline needs exactly one won stage (found {won})"),
        );
    }
    if lost < 1 {
        p.add(
            field,
            "lost_stage_missing",
            "a pipeline needs at least one lost stage",
        );
    }
    if open < 1 {
        p.add(
            field,
            "open_stage_missing",
            "a pipeline needs at least one open stage",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(name: &str, kind: StageKind, probability: Option<i32>) -> StageInput {
        StageInput {
            name: name.into(),
            kind: Some(kind),
            probability,
            ..Default::default()
        }
    }

    #[test]
    fn outcome_probabilities_are_fixed() {
        let mut p = Problems::default();
        let won = StageDraft::check(&stage("Won", StageKind::Won, None), "", &mut p);
        let lost = StageDraft::check(&stage("Lost", StageKind::Lost, None), "", &mut p);
        assert_eq!((won.probability, lost.probability), (100, 0));
        assert!(p.0.is_empty());
        StageDraft::check(
            &stage("Won", StageKind::Won, Some(90)),
            "stages[1].",
            &mut p,
        );
        assert_eq!(p.0[0].pointer, "/stages/1/probability");
    }

    #[test]
    fn every_requirable_field_has_its_variant() {
        for (name, field) in REQUIRABLE {
            assert_eq!(RequirableField::parse(name).as_ref(), Some(field));
            assert_eq!(field.name(), *name);
        }
        assert_eq!(RequirableField::Custom("po".into()).name(), "custom.po");
        assert_eq!(
            RequirableField::parse("custom.po_number"),
            Some(RequirableField::Custom("po_number".into()))
        );
        for bad in ["custom.", "custom.a b", "status", "Amount", ""] {
            assert_eq!(RequirableField::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn required_fields_must_be_opportunity_fields() {
        let mut p = Problems::default();
        let fields = vec![
            "amount".into(),
            "custom.po_number".into(),
            "budget".into(),
            "amount".into(),
        ];
        let out = check_required_fields(&mut p, "", &fields);
        assert_eq!(out, vec!["amount", "custom.po_number"]);
        assert_eq!(p.0.len(), 1);
        assert_eq!(p.0[0].field, "required_fields[2]");
        assert_eq!(p.0[0].code, "unknown_field");
    }

    #[test]
    fn a_pipeline_needs_one_won_and_a_lost_stage() {
        let mut p = Problems::default();
        check_stage_set(
            &mut p,
            "stages",
            [("A", StageKind::Open), ("B", StageKind::Won)],
        );
        assert_eq!(
            p.0.iter().map(|e| e.code.as_str()).collect::<Vec<_>>(),
            ["lost_stage_missing"]
        );
        let mut p = Problems::default();
        check_stage_set(
            &mut p,
            "stages",
            [
                ("A", StageKind::Open),
                ("a", StageKind::Won),
                ("W", StageKind::Won),
                ("L", StageKind::Lost),
            ],
        );
        let codes: Vec<_> = p.0.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, ["duplicate_name", "won_stage_count"]);
    }
}
