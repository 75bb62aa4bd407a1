//! What a captured post says: the lead fields a source's field map picks out of a form
//! or a JSON body, and the signs of a bot (a filled honeypot, a form sent faster than a
//! person types). No database here; `crm::capture` does the writing.

use serde_json::{Map, Value};

/// Lead fields a source may fill; `custom.<name>` fills a custom field.
pub const LEAD_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "job_title",
    "industry",
    "company_size",
    "region",
    "country",
    "source_detail",
    "interest",
    "external_id",
    "tags",
];

/// The keys a source may de-duplicate on.
pub const DEDUPE_KEYS: &[&str] = &["email", "phone", "external_id"];

/// The form field that carries when the page was shown (Unix seconds), for
/// `min_submit_seconds`.
pub const STARTED_FIELD: &str = "_ts";

/// Whether `target` is a field a source may fill.
pub fn is_target(target: &str) -> bool {
    LEAD_FIELDS.contains(&target)
        || target
            .strip_prefix("custom.")
            .is_some_and(|k| !k.is_empty() && k.len() <= 64)
}

/// A post's body.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Form fields in order (urlencoded or multipart); a name may repeat.
    Form(Vec<(String, String)>),
    Json(Value),
}

impl Payload {
    /// The value at `spec`: a JSON Pointer (`/contact/email`) or a top-level name.
    fn get(&self, spec: &str) -> Option<Value> {
        match self {
            Payload::Form(fields) => {
                let mut values: Vec<Value> = fields
                    .iter()
                    .filter(|(k, _)| k == spec)
                    .map(|(_, v)| Value::String(v.clone()))
                    .collect();
                match values.len() {
                    0 => None,
                    1 => values.pop(),
                    _ => Some(Value::Array(values)),
                }
            }
            Payload::Json(v) if spec.starts_with('/') => v.pointer(spec).cloned(),
            Payload::Json(v) => v.get(spec).cloned(),
        }
    }

    fn text(&self, spec: &str) -> Option<String> {
        match self.get(spec)? {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// A filled honeypot field: only a bot fills a field a person cannot see.
    pub fn honeypot_filled(&self, field: Option<&str>) -> bool {
        fn filled(v: &Value) -> bool {
            match v {
                Value::Null => false,
                Value::String(s) => !s.trim().is_empty(),
                Value::Array(a) => a.iter().any(filled),
                _ => true,
            }
        }
        field.and_then(|f| self.get(f)).is_some_and(|v| filled(&v))
    }

    /// Sent sooner than `min_secs` after the page was shown, or without saying when it
    /// was shown (a source that asks for a minimum time needs pages that set `_ts`).
    pub fn too_fast(&self, min_secs: i32, now_unix: i64) -> bool {
        if min_secs <= 0 {
            return false;
        }
        self.text(STARTED_FIELD)
            .and_then(|t| t.trim().parse::<i64>().ok())
            .is_none_or(|shown| {
                now_unix
                    .checked_sub(shown)
                    .is_none_or(|age| age < i64::from(min_secs))
            })
    }
}

/// A captured value as a lead field takes it: trimmed text (numbers as text), tags as a
/// list (repeated fields, a JSON array, or text split on commas and semicolons); empty
/// values count as absent.
fn normalise(target: &str, value: Value) -> Option<Value> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    if target == "tags" {
        let items: Vec<Value> = match &value {
            Value::Array(a) => a.iter().filter_map(text).map(Value::String).collect(),
            v => text(v)
                .map(|s| {
                    s.split([',', ';'])
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(|t| Value::String(t.to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
        };
        return (!items.is_empty()).then_some(Value::Array(items));
    }
    match &value {
        Value::Array(a) => a.first().and_then(text).map(Value::String),
        v => text(v).map(Value::String),
    }
}

/// The lead fields of a post: for each target, the value at its spec in `field_map`
/// (else a field of the target's own name), then `defaults` where nothing was posted,
/// then `constants` over everything. Custom fields go under `custom`.
pub fn lead_fields(
    payload: &Payload,
    field_map: &Map<String, Value>,
    defaults: &Map<String, Value>,
    constants: &Map<String, Value>,
) -> Map<String, Value> {
    let mut flat = Map::new();
    let targets = LEAD_FIELDS.iter().map(|t| (*t).to_owned()).chain(
        field_map
            .keys()
            .filter(|k| k.starts_with("custom."))
            .cloned(),
    );
    for target in targets {
        let spec = field_map
            .get(&target)
            .and_then(Value::as_str)
            .unwrap_or(&target)
            .to_owned();
        if spec.starts_with('_') {
            continue;
        }
        if let Some(v) = payload.get(&spec).and_then(|v| normalise(&target, v)) {
            flat.insert(target, v);
        }
    }
    for (k, v) in defaults {
        if !flat.contains_key(k) {
            if let Some(v) = normalise(k, v.clone()) {
                flat.insert(k.clone(), v);
            }
        }
    }
    for (k, v) in constants {
        if let Some(v) = normalise(k, v.clone()) {
            flat.insert(k.clone(), v);
        }
    }
    let mut out = Map::new();
    let mut custom = Map::new();
    for (k, v) in flat {
        match k.strip_prefix("custom.") {
            Some(name) => {
                custom.insert(name.to_owned(), v);
            }
            None => {
                out.insert(k, v);
            }
        }
    }
    if !custom.is_empty() {
        out.insert("custom".into(), Value::Object(custom));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn form_fields_map_by_name_and_alias() {
        let p = Payload::Form(vec![
            ("your-email".into(), " Li@Example.com ".into()),
            ("first_name".into(), "Li".into()),
            ("tags".into(), "expo".into()),
            ("tags".into(), "vip".into()),
            ("budget".into(), "50万".into()),
            ("_hp".into(), "".into()),
        ]);
        let fields = lead_fields(
            &p,
            &map(json!({"email": "your-email", "custom.budget": "budget"})),
            &map(json!({"region": "华东"})),
            &map(json!({"industry": "制造业"})),
        );
        assert_eq!(
            Value::Object(fields),
            json!({"email": "Li@Example.com", "first_name": "Li", "tags": ["expo", "vip"],
                   "region": "华东", "industry": "制造业", "custom": {"budget": "50万"}})
        );
        assert!(!p.honeypot_filled(Some("_hp")));
    }

    #[test]
    fn json_bodies_map_by_pointer() {
        let p = Payload::Json(
            json!({"contact": {"mail": "a@b.cn", "tel": 13800000000_i64},
                                     "company": "  ", "tags": "a; b"}),
        );
        let fields = lead_fields(
            &p,
            &map(json!({"email": "/contact/mail", "phone": "/contact/tel"})),
            &Map::new(),
            &Map::new(),
        );
        assert_eq!(
            Value::Object(fields),
            json!({"email": "a@b.cn", "phone": "13800000000", "tags": ["a", "b"]})
        );
    }

    #[test]
    fn bots_are_recognised() {
        let p = Payload::Form(vec![
            ("website".into(), "http://spam".into()),
            ("_ts".into(), "1000".into()),
        ]);
        assert!(p.honeypot_filled(Some("website")));
        assert!(!p.honeypot_filled(None));
        assert!(p.too_fast(3, 1002));
        assert!(!p.too_fast(3, 1003));
        assert!(!p.too_fast(0, 1000));
        assert!(
            Payload::Form(vec![]).too_fast(3, 1000),
            "no _ts: not a person's page"
        );
        assert!(!Payload::Form(vec![]).too_fast(0, 1000));
        let twice = Payload::Form(vec![
            ("website".into(), "x".into()),
            ("website".into(), "".into()),
        ]);
        assert!(
            twice.honeypot_filled(Some("website")),
            "a repeated field is filled too"
        );
        let minus = Payload::Form(vec![("_ts".into(), i64::MIN.to_string())]);
        assert!(minus.too_fast(3, 1000), "no overflow");
    }

    #[test]
    fn targets_are_lead_fields_or_custom() {
        assert!(is_target("email"));
        assert!(is_target("custom.budget"));
        assert!(!is_target("custom."));
        assert!(!is_target("owner_id"));
        assert!(!is_target("score"));
    }
}
