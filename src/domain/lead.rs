//! Leads: the vocabulary of their fields and transparent BANT scoring.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An enum with one text per variant: its wire and stored form, `as_str`/`parse`, serde
/// and the OpenAPI enum, all from one list. Variants may carry doc comments.
macro_rules! text_enum {
    ($(#[doc = $doc:literal])* $name:ident {
        $($(#[doc = $vdoc:literal])* $variant:ident = $text:literal),+ $(,)?
    }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[doc = $vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        // Written out rather than derived: the schema's values must be the wire texts
        // above, which the derive cannot read through this macro.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let doc: &[&str] = &[$($doc),*];
                let description = doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some(Self::ALL.iter().copied()))
                    .description((!description.is_empty()).then_some(description))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
    };
}
pub(crate) use text_enum;

text_enum!(
    /// Where a lead came from.
    LeadSource {
        WebForm = "web_form", Social = "social", Ads = "ads", Event = "event",
        Referral = "referral", Outbound = "outbound", Import = "import", Api = "api", Other = "other",
    }
);

text_enum!(
    /// Lifecycle of a lead. `converted` and `disqualified` are reached only through
    /// their own endpoints.
    LeadStatus {
        New = "new", Contacted = "contacted", Nurturing = "nurturing", Qualified = "qualified",
        Disqualified = "disqualified", Converted = "converted",
    }
);

text_enum!(
    /// Head count band of the company.
    CompanySize { S1 = "1-10", S11 = "11-50", S51 = "51-200", S201 = "201-1000", S1000 = "1000+" }
);

text_enum!(
    /// B — is there money for it?
    Budget { Unknown = "unknown", None = "none", Planned = "planned", Approved = "approved" }
);

text_enum!(
    /// A — how much say does the contact have?
    Authority { Unknown = "unknown", EndUser = "end_user", Influencer = "influencer", DecisionMaker = "decision_maker" }
);

text_enum!(
    /// N — how strong is the need?
    Need { Unknown = "unknown", None = "none", Low = "low", Medium = "medium", High = "high" }
);

text_enum!(
    /// T — when will they buy?
    Timeline {
        Unknown = "unknown", Within3Months = "within_3_months", Within6Months = "within_6_months",
        Within12Months = "within_12_months", Later = "later",
    }
);

/// Budget, authority, need, timeline. Each defaults to `unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bant {
    #[serde(default = "unknown_budget")]
    pub budget: Budget,
    #[serde(default = "unknown_authority")]
    pub authority: Authority,
    #[serde(default = "unknown_need")]
    pub need: Need,
    #[serde(default = "unknown_timeline")]
    pub timeline: Timeline,
}

fn unknown_budget() -> Budget {
    Budget::Unknown
}
fn unknown_authority() -> Authority {
    Authority::Unknown
}
fn unknown_need() -> Need {
    Need::Unknown
}
fn unknown_timeline() -> Timeline {
    Timeline::Unknown
}

impl Default for Bant {
    fn default() -> Self {
        Bant {
            budget: Budget::Unknown,
            authority: Authority::Unknown,
            need: Need::Unknown,
            timeline: Timeline::Unknown,
        }
    }
}

/// The lead facts that scoring rules may look at.
#[derive(Debug, Clone, Default)]
pub struct LeadFacts {
    pub bant: Bant,
    pub source: Option<String>,
    pub industry: Option<String>,
    pub company_size: Option<String>,
    pub region: Option<String>,
    pub country: Option<String>,
    pub tags: Vec<String>,
    pub has_email: bool,
    pub has_phone: bool,
}

/// Fields a scoring rule may test, and the values each accepts (`None`: free text).
pub fn rule_field_values(field: &str) -> Option<Option<&'static [&'static str]>> {
    match field {
        "bant.budget" => Some(Some(Budget::ALL)),
        "bant.authority" => Some(Some(Authority::ALL)),
        "bant.need" => Some(Some(Need::ALL)),
        "bant.timeline" => Some(Some(Timeline::ALL)),
        "source" => Some(Some(LeadSource::ALL)),
        "company_size" => Some(Some(CompanySize::ALL)),
        "has_email" | "has_phone" => Some(Some(&["true", "false"])),
        "industry" | "region" | "country" | "tag" => Some(None),
        _ => None,
    }
}

pub const RULE_FIELDS: &[&str] = &[
    "bant.budget",
    "bant.authority",
    "bant.need",
    "bant.timeline",
    "source",
    "company_size",
    "industry",
    "region",
    "country",
    "tag",
    "has_email",
    "has_phone",
];

/// One scoring rule: when `field` equals `value`, add `points` (may be negative).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScoringRule {
    pub id: String,
    #[schema(example = "bant.budget")]
    pub field: String,
    #[schema(example = "approved")]
    pub value: String,
    #[schema(example = 25)]
    pub points: i32,
    #[schema(example = "预算已批准")]
    pub label: String,
}

/// What one rule contributed to a score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScoreItem {
    pub rule_id: String,
    pub label: String,
    pub field: String,
    pub value: String,
    pub points: i32,
}

impl ScoringRule {
    pub fn matches(&self, facts: &LeadFacts) -> bool {
        let eq = |v: Option<&str>| v.is_some_and(|v| v.eq_ignore_ascii_case(&self.value));
        let flag = |b: bool| self.value == if b { "true" } else { "false" };
        match self.field.as_str() {
            "bant.budget" => eq(Some(facts.bant.budget.as_str())),
            "bant.authority" => eq(Some(facts.bant.authority.as_str())),
            "bant.need" => eq(Some(facts.bant.need.as_str())),
            "bant.timeline" => eq(Some(facts.bant.timeline.as_str())),
            "source" => eq(facts.source.as_deref()),
            "industry" => eq(facts.industry.as_deref()),
            "company_size" => eq(facts.company_size.as_deref()),
            "region" => eq(facts.region.as_deref()),
            "country" => eq(facts.country.as_deref()),
            "tag" => facts
                .tags
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&self.value)),
            "has_email" => flag(facts.has_email),
            "has_phone" => flag(facts.has_phone),
            _ => false,
        }
    }
}

/// The score (sum of matching rules' points, clamped to 0–100) and what made it up.
pub fn score(facts: &LeadFacts, rules: &[ScoringRule]) -> (i32, Vec<ScoreItem>) {
    let items: Vec<ScoreItem> = rules
        .iter()
        .filter(|r| r.matches(facts))
        .map(|r| ScoreItem {
            rule_id: r.id.clone(),
            label: r.label.clone(),
            field: r.field.clone(),
            value: r.value.clone(),
            points: r.points,
        })
        .collect();
    let total: i32 = items.iter().map(|i| i.points).sum();
    (total.clamp(0, 100), items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, field: &str, value: &str, points: i32) -> ScoringRule {
        ScoringRule {
            id: id.into(),
            field: field.into(),
            value: value.into(),
            points,
            label: id.into(),
        }
    }

    #[test]
    fn score_sums_matching_rules_and_clamps() {
        let rules = vec![
            rule("b", "bant.budget", "approved", 40),
            rule("a", "bant.authority", "decision_maker", 40),
            rule("n", "bant.need", "high", 40),
            rule("ref", "source", "referral", 10),
            rule("spam", "tag", "competitor", -50),
        ];
        let mut facts = LeadFacts {
            bant: Bant {
                budget: Budget::Approved,
                ..Bant::default()
            },
            source: Some("referral".into()),
            ..LeadFacts::default()
        };
        let (s, items) = score(&facts, &rules);
        assert_eq!(s, 50);
        assert_eq!(
            items.iter().map(|i| i.rule_id.as_str()).collect::<Vec<_>>(),
            ["b", "ref"]
        );
        facts.bant.authority = Authority::DecisionMaker;
        facts.bant.need = Need::High;
        assert_eq!(score(&facts, &rules).0, 100, "clamped at 100");
        facts.bant = Bant::default();
        facts.source = None;
        facts.tags = vec!["Competitor".into()];
        let (s, items) = score(&facts, &rules);
        assert_eq!(
            (s, items.len()),
            (0, 1),
            "clamped at 0, the rule still shows"
        );
    }

    #[test]
    fn rule_fields_know_their_values() {
        assert_eq!(rule_field_values("bant.need"), Some(Some(Need::ALL)));
        assert_eq!(rule_field_values("industry"), Some(None));
        assert_eq!(rule_field_values("salary"), None);
    }
}
