//! One row of a file: its cells turned into the API's input (references by external
//! key resolved), the record it matches found, and the workflow layer called to create
//! or update it — or nothing, when it is unchanged.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::columns::{self, Column, Ref, Target, Ty};
use super::reader::Record;
use super::{Kind, MatchOn, Mode, Options, Outcome};
use crate::auth::Caller;
use crate::crm::opportunities::{self as deals, OpportunityInput, PastStage};
use crate::crm::records::Ops;
use crate::crm::{accounts, leads};
use crate::domain::opportunity::Channel;
use crate::domain::pipeline::StageKind;
use crate::error::{AppError, AppResult, FieldError, ProblemCode};
use crate::storage::imports::{self as store, KeyColumn, Keyed};
use crate::storage::pipelines::{self, StageRow};
use crate::storage::{self, users, DbConn, Stamped, Visible};

/// Where each column of a file goes, decided once per column name.
pub struct Columns {
    kind: Kind,
    known: HashMap<String, Option<Target>>,
    pub unknown: Vec<String>,
    pub ignored: Vec<String>,
}

impl Columns {
    /// The columns of a CSV header (NDJSON and JSON records name theirs as they come).
    pub fn of(kind: Kind, header: &[String]) -> Columns {
        let mut c = Columns {
            kind,
            known: HashMap::new(),
            unknown: Vec::new(),
            ignored: Vec::new(),
        };
        for name in header {
            c.target(name);
        }
        c
    }

    fn target(&mut self, name: &str) -> Option<Target> {
        if let Some(t) = self.known.get(name) {
            return t.clone();
        }
        let t = match columns::target(self.kind, name) {
            Column::Known(t) => Some(t),
            Column::ReadOnly => {
                self.ignored.push(name.to_owned());
                None
            }
            Column::Unknown => {
                if self.known.len() < 1000 {
                    self.unknown.push(name.to_owned());
                }
                None
            }
        };
        if self.known.len() < 1000 {
            self.known.insert(name.to_owned(), t.clone());
        }
        t
    }
}

/// A row read and checked, ready to write.
pub struct Parsed {
    id: Option<String>,
    fields: Map<String, Value>,
    stage: Option<String>,
    loss_reason_id: Option<String>,
    history: Option<String>,
    key: Option<(&'static str, String)>,
}

impl Parsed {
    /// The key the row is matched on, if it has one: `(column, value)`.
    pub fn key(&self) -> Option<(&'static str, &str)> {
        self.key.as_ref().map(|(c, v)| (*c, v.as_str()))
    }
}

/// What stays the same across the rows of one import.
pub struct Context<'a> {
    caller: &'a Caller,
    pub options: &'a Options,
    pub columns: Columns,
    owners: HashMap<String, String>,
    stages: HashMap<String, Vec<StageRow>>,
    pipelines: HashMap<String, String>,
    /// The records the batch's keys match, looked up in one go: `(column, key)` →
    /// `(id, owner_id)`. Keys of the batch missing here match nothing.
    matched: HashMap<(&'static str, String), (String, String)>,
    prefetched: bool,
    /// The batch being written must be on disk when it commits (the last one).
    pub durable: bool,
}

impl<'a> Context<'a> {
    pub fn new(caller: &'a Caller, options: &'a Options, columns: Columns) -> Self {
        Context {
            caller,
            options,
            columns,
            owners: HashMap::new(),
            stages: HashMap::new(),
            pipelines: HashMap::new(),
            matched: HashMap::new(),
            prefetched: false,
            durable: true,
        }
    }

    fn table(&self) -> Keyed {
        match self.options.kind {
            Kind::Leads => Keyed::Leads,
            Kind::Accounts => Keyed::Accounts,
            Kind::Contacts => Keyed::Contacts,
            Kind::Opportunities => Keyed::Opportunities,
        }
    }

    /// Whether new records of this kind can be buffered (see `storage::batch`).
    pub fn buffers_creates(&self) -> bool {
        matches!(self.options.kind, Kind::Leads | Kind::Opportunities)
    }

    /// Looks up, in one query per key column, the records the batch's rows match.
    pub fn prefetch<'p>(
        &mut self,
        conn: &mut DbConn,
        rows: impl Iterator<Item = &'p Parsed>,
    ) -> AppResult<()> {
        let mut by_column: HashMap<&'static str, Vec<String>> = HashMap::new();
        for p in rows {
            if let Some((column, value)) = p.key() {
                by_column
                    .entry(column)
                    .or_default()
                    .push(norm(column, value));
            }
        }
        self.matched.clear();
        for (column, values) in by_column {
            let key_column = key_column(column);
            if key_column == KeyColumn::Email
                && !matches!(self.options.kind, Kind::Leads | Kind::Contacts)
            {
                continue;
            }
            for (id, owner, key) in store::find_keys(conn, self.table(), key_column, &values)? {
                self.matched
                    .insert((column, norm(column, &key)), (id, owner));
            }
        }
        self.prefetched = true;
        Ok(())
    }

    /// Whether the row matches no existing record (known after [`Context::prefetch`]).
    pub fn is_new(&self, parsed: &Parsed) -> bool {
        match parsed.key() {
            None => true,
            Some((column, value)) => {
                self.prefetched && !self.matched.contains_key(&(column, norm(column, value)))
            }
        }
    }

    /// Converts the cells, resolves references and finds the match key.
    pub fn parse(&mut self, conn: &mut DbConn, rec: &Record) -> AppResult<Parsed> {
        let mut errors: Vec<FieldError> = Vec::new();
        let mut parsed = Parsed {
            id: None,
            fields: Map::new(),
            stage: None,
            loss_reason_id: None,
            history: None,
            key: None,
        };
        let mut refs: Vec<(Ref, String)> = Vec::new();
        for (name, value) in &rec.cells {
            let Some(target) = self.columns.target(name) else {
                continue;
            };
            match target {
                Target::Field(field, ty) => match columns::convert(field, ty, value) {
                    Ok(v) => {
                        parsed.fields.insert(field.to_owned(), v);
                    }
                    Err(e) => errors.push(e),
                },
                Target::Bant(part) => match columns::convert(part, Ty::Text, value) {
                    Ok(Value::Null) => {}
                    Ok(v) => columns::set_member(&mut parsed.fields, "bant", part, v),
                    Err(e) => errors.push(e),
                },
                Target::Custom(key) => match value {
                    Value::String(_) | Value::Null => match columns::text(name, value) {
                        Ok(Some(t)) => columns::set_member(
                            &mut parsed.fields,
                            "custom",
                            &key,
                            Value::String(t),
                        ),
                        Ok(None) => {}
                        Err(e) => errors.push(e),
                    },
                    other => columns::set_member(&mut parsed.fields, "custom", &key, other.clone()),
                },
                Target::Id => match columns::text("id", value) {
                    Ok(v) => parsed.id = v,
                    Err(e) => errors.push(e),
                },
                Target::StageHistory => match columns::text("stage_history", value) {
                    Ok(v) => parsed.history = v,
                    Err(e) => errors.push(e),
                },
                Target::Ref(r) => match columns::text(ref_name(r), value) {
                    Ok(Some(v)) => refs.push((r, v)),
                    Ok(None) => {}
                    Err(e) => errors.push(e),
                },
            }
        }
        if !errors.is_empty() {
            return Err(AppError::Validation(errors));
        }
        for (r, value) in refs {
            if let Err(e) = self.resolve(conn, &mut parsed, r, &value) {
                errors.push(e);
            }
        }
        if !errors.is_empty() {
            return Err(AppError::Validation(errors));
        }
        parsed.key = match (&parsed.id, self.options.match_on) {
            (Some(id), _) => Some(("id", id.clone())),
            // Leads and contacts without an external id match on their email.
            (None, MatchOn::ExternalId) => text_of(&parsed.fields, "external_id")
                .map(|v| ("external_id", v))
                .or_else(|| match self.options.kind {
                    Kind::Leads | Kind::Contacts => {
                        text_of(&parsed.fields, "email").map(|v| ("email", v))
                    }
                    _ => None,
                }),
            (None, MatchOn::Email) => text_of(&parsed.fields, "email").map(|v| ("email", v)),
        };
        Ok(parsed)
    }

    fn resolve(
        &mut self,
        conn: &mut DbConn,
        parsed: &mut Parsed,
        r: Ref,
        value: &str,
    ) -> Result<(), FieldError> {
        let field = ref_name(r);
        let not_found =
            |what: &str| FieldError::new(field, "not_found", format!("no {what} {value:?}"));
        let internal = |e: AppError| FieldError::new(field, "unreadable", e.to_string());
        match r {
            Ref::OwnerEmail => {
                let key = value.trim().to_lowercase();
                let id = match self.owners.get(&key) {
                    Some(id) => id.clone(),
                    None => {
                        let user = users::find_by_email(conn, &key)
                            .map_err(internal)?
                            .ok_or_else(|| not_found("user with the email"))?;
                        self.owners.insert(key, user.id.to_string());
                        user.id.into()
                    }
                };
                parsed.fields.insert("owner_id".into(), Value::String(id));
            }
            Ref::AccountExternalId | Ref::ContactExternalId | Ref::LeadExternalId => {
                let (table, member, what) = match r {
                    Ref::AccountExternalId => (Keyed::Accounts, "account_id", "account"),
                    Ref::ContactExternalId => (Keyed::Contacts, "contact_id", "contact"),
                    _ => (Keyed::Leads, "lead_id", "lead"),
                };
                let (id, owner) = store::find_key(conn, table, KeyColumn::ExternalId, value)
                    .map_err(internal)?
                    .ok_or_else(|| not_found(&format!("{what} with the external id")))?;
                if !self.caller.visibility().allows(&owner) {
                    return Err(not_found(&format!("{what} with the external id")));
                }
                parsed.fields.insert(member.into(), Value::String(id));
            }
            Ref::Pipeline => {
                let key = value.trim().to_lowercase();
                let id = match self.pipelines.get(&key) {
                    Some(id) => id.clone(),
                    None => {
                        let found = match store::pipelines_named(conn, value).map_err(internal)? {
                            ids if ids.len() == 1 => ids[0].clone(),
                            ids if ids.len() > 1 => {
                                return Err(FieldError::new(
                                    field,
                                    "ambiguous",
                                    format!(
                                        "several pipelines are named {value:?}; use pipeline_id"
                                    ),
                                ))
                            }
                            _ => {
                                let exists = pipelines::find(conn, &value.trim().into()).is_ok();
                                if !exists {
                                    return Err(not_found("pipeline named"));
                                }
                                value.trim().to_owned()
                            }
                        };
                        self.pipelines.insert(key, found.clone());
                        found
                    }
                };
                parsed
                    .fields
                    .insert("pipeline_id".into(), Value::String(id));
            }
            Ref::Stage => parsed.stage = Some(value.trim().to_owned()),
            Ref::LossReason => {
                parsed.loss_reason_id = Some(
                    store::loss_reason_named(conn, value)
                        .map_err(internal)?
                        .ok_or_else(|| not_found("loss reason"))?,
                )
            }
        }
        Ok(())
    }

    /// Writes the row (inside its savepoint).
    pub fn write(&mut self, conn: &mut DbConn, parsed: &Parsed) -> AppResult<Outcome> {
        let kind = self.options.kind;
        let existing = self.existing(conn, parsed)?;
        let mode = self.options.mode;
        let caller = self.caller;
        match kind {
            Kind::Leads => simple(
                conn,
                caller,
                mode,
                parsed,
                existing,
                &leads::ops(),
                leads::create,
            ),
            Kind::Accounts => simple(
                conn,
                caller,
                mode,
                parsed,
                existing,
                &accounts::account_ops(),
                accounts::create_account,
            ),
            Kind::Contacts => simple(
                conn,
                caller,
                mode,
                parsed,
                existing,
                &accounts::contact_ops(),
                accounts::create_contact,
            ),
            Kind::Opportunities => self.deal(conn, parsed, existing),
        }
    }

    /// The id of the visible record the row matches, if any.
    fn existing(&self, conn: &mut DbConn, parsed: &Parsed) -> AppResult<Option<String>> {
        let Some((column, value)) = parsed.key() else {
            return Ok(None);
        };
        let key_column = key_column(column);
        if key_column == KeyColumn::Email
            && !matches!(self.options.kind, Kind::Leads | Kind::Contacts)
        {
            return Err(AppError::field(
                "match_on",
                "not_supported",
                "only leads and contacts match on email",
            ));
        }
        let found = match self.prefetched {
            true => self.matched.get(&(column, norm(column, value))).cloned(),
            false => store::find_key(conn, self.table(), key_column, value)?,
        };
        match found {
            Some((id, owner)) if self.caller.visibility().allows(&owner) => Ok(Some(id)),
            Some(_) if key_column == KeyColumn::Id => Err(AppError::NotFound),
            Some(_) => Err(AppError::Conflict {
                code: ProblemCode::Conflict,
                detail: format!("This {column} is already taken."),
                existing_id: None,
            }),
            None if key_column == KeyColumn::Id => Err(AppError::NotFound),
            None => Ok(None),
        }
    }

    fn stages_of(&mut self, conn: &mut DbConn, pipeline_id: &str) -> AppResult<Vec<StageRow>> {
        if let Some(s) = self.stages.get(pipeline_id) {
            return Ok(s.clone());
        }
        let stages = pipelines::stages_of(conn, &pipeline_id.into())?;
        if self.stages.len() < 100 {
            self.stages.insert(pipeline_id.to_owned(), stages.clone());
        }
        Ok(stages)
    }

    fn deal(
        &mut self,
        conn: &mut DbConn,
        parsed: &Parsed,
        existing: Option<String>,
    ) -> AppResult<Outcome> {
        let caller = self.caller;
        let currency = self.options.default_currency.clone();
        let mut fields = parsed.fields.clone();
        // The stage is set through the stage path, not as a field.
        let stage_field = fields
            .remove("stage_id")
            .and_then(|v| v.as_str().map(str::to_owned));
        let stage_ref = parsed.stage.clone().or(stage_field);
        match existing {
            Some(id) => {
                let pipeline_id = deals::pipeline_of(conn, caller, &id)?;
                let stages = self.stages_of(conn, &pipeline_id)?;
                let to = stage_ref
                    .map(|s| stage_named(&stages, &s, "stage"))
                    .transpose()?;
                if let Some(h) = &parsed.history {
                    // The same history again (a re-posted file) is fine; another one
                    // cannot be written into a log that only grows.
                    let past = history(&stages, h)?;
                    if !deals::log_starts_with(conn, &id.as_str().into(), &past)? {
                        return Err(AppError::field(
                            "stage_history",
                            "not_supported",
                            "the deal's logged history differs; history is imported when a deal is created",
                        ));
                    }
                }
                let edit = |current: OpportunityInput| merged(&current, &fields);
                let changed = deals::update_if_changed(
                    conn,
                    caller,
                    &currency,
                    &id,
                    edit,
                    to,
                    parsed.loss_reason_id.clone(),
                    Channel::Import,
                    self.options.mode == Mode::Upsert,
                )?;
                Ok(if changed {
                    Outcome::Updated
                } else {
                    Outcome::Unchanged
                })
            }
            None => {
                let input: OpportunityInput = from_fields(&fields)?;
                let stages = self.stages_of(conn, &input.pipeline_id)?;
                if stages.is_empty() {
                    return Err(AppError::field("pipeline", "not_found", "no such pipeline"));
                }
                let past = match &parsed.history {
                    Some(h) => history(&stages, h)?,
                    None => Vec::new(),
                };
                let to = stage_ref
                    .map(|s| stage_named(&stages, &s, "stage"))
                    .transpose()?;
                deals::create_with_history(
                    conn,
                    caller,
                    &currency,
                    &input,
                    &past,
                    to,
                    parsed.loss_reason_id.clone(),
                )?;
                Ok(Outcome::Created)
            }
        }
    }
}

fn key_column(column: &str) -> KeyColumn {
    match column {
        "id" => KeyColumn::Id,
        "email" => KeyColumn::Email,
        _ => KeyColumn::ExternalId,
    }
}

/// A key as compared: emails in lower case, others trimmed.
fn norm(column: &str, value: &str) -> String {
    match column {
        "email" => value.trim().to_lowercase(),
        _ => value.trim().to_owned(),
    }
}

/// The request-member name of a reference column.
fn ref_name(r: Ref) -> &'static str {
    match r {
        Ref::OwnerEmail => "owner_email",
        Ref::AccountExternalId => "account_external_id",
        Ref::ContactExternalId => "contact_external_id",
        Ref::LeadExternalId => "lead_external_id",
        Ref::Pipeline => "pipeline",
        Ref::Stage => "stage",
        Ref::LossReason => "loss_reason",
    }
}

fn text_of(fields: &Map<String, Value>, name: &str) -> Option<String> {
    fields
        .get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A stage of the pipeline by name (case-insensitive) or id.
fn stage_named(stages: &[StageRow], name: &str, field: &str) -> AppResult<StageRow> {
    let lower = name.trim().to_lowercase();
    stages
        .iter()
        .find(|s| s.id == name.trim() || s.name.to_lowercase() == lower)
        .cloned()
        .ok_or_else(|| {
            AppError::field(
                field,
                "not_found",
                format!(
                    "no stage {name:?} in this pipeline (its stages: {})",
                    stages
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
}

/// `stage:time;stage:time…`, in order, of stages of the pipeline, none in the future.
fn history(stages: &[StageRow], text: &str) -> AppResult<Vec<PastStage>> {
    let now = storage::now();
    let mut past: Vec<PastStage> = Vec::new();
    let bad = |message: String| AppError::field("stage_history", "invalid", message);
    for (i, entry) in text
        .split(';')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .enumerate()
    {
        let (name, at) = entry
            .split_once(':')
            .ok_or_else(|| bad(format!("entry {} must be stage:time", i + 1)))?;
        let stage = stage_named(stages, name, "stage_history")?;
        let at = columns::datetime(at.trim())
            .ok_or_else(|| {
                bad(format!(
                    "entry {}: {at:?} is not a time (RFC 3339 or YYYY-MM-DD)",
                    i + 1
                ))
            })?
            .naive_utc();
        if at > now {
            return Err(bad(format!("entry {} is in the future", i + 1)));
        }
        if let Some(prev) = past.last() {
            if at <= prev.at {
                return Err(bad(format!(
                    "entry {} is not later than the one before",
                    i + 1
                )));
            }
            if prev.stage.id == stage.id {
                return Err(bad(format!("entry {} repeats the stage before it", i + 1)));
            }
        } else if stage.kind != StageKind::Open {
            return Err(bad("a deal's history starts in an open stage".into()));
        }
        past.push(PastStage { stage, at });
    }
    Ok(past)
}

/// The current input with the row's fields laid over it.
fn merged<I: Serialize + DeserializeOwned>(
    current: &I,
    fields: &Map<String, Value>,
) -> AppResult<I> {
    let mut base = match serde_json::to_value(current).map_err(AppError::internal)? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    for (k, v) in fields {
        base.insert(k.clone(), v.clone());
    }
    from_fields(&base)
}

/// An input from its members, with serde's complaints as field errors.
fn from_fields<I: DeserializeOwned>(fields: &Map<String, Value>) -> AppResult<I> {
    let value = Value::Object(fields.clone());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        if let Some(rest) = message.strip_prefix("missing field `") {
            let field = rest.split('`').next().unwrap_or("").to_owned();
            return AppError::field(&field, "required", "this column is required");
        }
        let code = if message.starts_with("unknown variant") {
            "unknown_value"
        } else {
            "invalid"
        };
        let field = if path == "." { "row".to_owned() } else { path };
        AppError::field(&field, code, message)
    })
}

/// Creates, updates or leaves a lead, account or contact.
fn simple<R: Stamped + Visible, I: Serialize + DeserializeOwned>(
    conn: &mut DbConn,
    caller: &Caller,
    mode: Mode,
    parsed: &Parsed,
    existing: Option<String>,
    ops: &Ops<R, I>,
    create: fn(&mut DbConn, &Caller, &I) -> AppResult<R>,
) -> AppResult<Outcome> {
    let Some(id) = existing else {
        let input: I = from_fields(&parsed.fields)?;
        create(conn, caller, &input)?;
        return Ok(Outcome::Created);
    };
    let current = R::lock_visible(conn, &caller.visibility(), &id)?;
    let before = (ops.input_of)(&current);
    let input = merged(&before, &parsed.fields)?;
    let row = (ops.build)(conn, caller, &input, Some(&current))?;
    let same =
        serde_json::to_value((ops.input_of)(&row)).ok() == serde_json::to_value(&before).ok();
    if same {
        return Ok(Outcome::Unchanged);
    }
    if mode == Mode::Create {
        return Err(exists());
    }
    (ops.save)(conn, caller, &current, &row)?;
    Ok(Outcome::Updated)
}

/// A create-mode row that matches a different record.
pub fn exists() -> AppError {
    AppError::Conflict {
        code: ProblemCode::Conflict,
        detail: "A record with this key exists and differs; import with mode=upsert to update it."
            .into(),
        existing_id: None,
    }
}
