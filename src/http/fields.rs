//! Input helpers shared by the CRM resources: PATCH as JSON merge patch over the
//! writable representation, owners, optional texts, tags and custom fields.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use super::extract::from_value;
use crate::auth::Caller;
use crate::domain::user::Email;
use crate::domain::Problems;
use crate::error::{AppError, AppResult};
use crate::storage::{users, DbConn};

/// RFC 7396 JSON merge patch: objects merge recursively, `null` removes a member.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Applies a PATCH body to the writable representation `current` and parses the result
/// as a whole, so a PATCH is checked by exactly the rules of a create. Members that are
/// not writable (`id`, `version`, `status`, …) are refused as unknown fields.
pub fn patched<T: Serialize + DeserializeOwned>(current: &T, patch: &Value) -> AppResult<T> {
    if !patch.is_object() {
        return Err(AppError::field(
            "",
            "invalid_type",
            "the body must be a JSON object",
        ));
    }
    let mut value = serde_json::to_value(current).map_err(AppError::internal)?;
    merge_patch(&mut value, patch);
    from_value(value)
}

/// The documented body of a PATCH: a JSON merge patch over the writable representation
/// `I` that [`patched`] applies. The schema is derived from `I`'s, so it lists exactly
/// the members the handler accepts, with their types, and cannot drift from them: none is
/// required, and each member a create may omit is nullable, since `null` clears it. A
/// member a create requires stays non-null: clearing it is refused like omitting it.
pub struct MergePatch<I>(PhantomData<I>);

impl<I: ToSchema> PartialSchema for MergePatch<I> {
    fn schema() -> RefOr<Schema> {
        let RefOr::T(Schema::Object(mut object)) = I::schema() else {
            return I::schema();
        };
        let required = std::mem::take(&mut object.required);
        for (name, member) in object.properties.iter_mut() {
            if !required.contains(name) {
                nullable(member);
            }
        }
        object.description = Some(format!(
            "A JSON merge patch (RFC 7396) of `{}`: members sent replace the stored ones, \
             `null` clears one, nested objects merge. The result is checked like a create.",
            I::name()
        ));
        RefOr::T(Schema::Object(object))
    }
}

impl<I: ToSchema> ToSchema for MergePatch<I> {
    fn name() -> Cow<'static, str> {
        let input = I::name();
        Cow::Owned(format!(
            "{}Patch",
            input.strip_suffix("Input").unwrap_or(&input)
        ))
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        I::schemas(schemas);
    }
}

fn with_null(t: &mut SchemaType) {
    *t = match std::mem::replace(t, SchemaType::AnyValue) {
        SchemaType::Type(Type::Null) => SchemaType::Type(Type::Null),
        SchemaType::Type(one) => SchemaType::Array(vec![one, Type::Null]),
        SchemaType::Array(mut many) => {
            if !many.contains(&Type::Null) {
                many.push(Type::Null);
            }
            SchemaType::Array(many)
        }
        SchemaType::AnyValue => SchemaType::AnyValue,
    };
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null))
}

/// Lets a member schema also be `null`.
fn nullable(member: &mut RefOr<Schema>) {
    match member {
        RefOr::T(Schema::Object(o)) => with_null(&mut o.schema_type),
        RefOr::T(Schema::Array(a)) => with_null(&mut a.schema_type),
        RefOr::T(Schema::OneOf(one)) if one.items.iter().any(is_null) => {}
        other => {
            let inner = std::mem::replace(other, RefOr::T(Schema::default()));
            *other = OneOfBuilder::new()
                .item(inner)
                .item(ObjectBuilder::new().schema_type(Type::Null))
                .into();
        }
    }
}

/// A trimmed optional text: empty becomes `None`, longer than `max` is an error.
pub fn opt_text(
    p: &mut Problems,
    field: &str,
    value: &Option<String>,
    max: usize,
) -> Option<String> {
    let v = value.as_deref().map(str::trim).filter(|v| !v.is_empty())?;
    if v.chars().count() > max {
        p.add(
            field,
            "too_long",
            format!("must be at most {max} characters"),
        );
    }
    Some(v.to_owned())
}

pub fn opt_email(p: &mut Problems, field: &str, value: &Option<String>) -> Option<String> {
    let v = value.as_deref().map(str::trim).filter(|v| !v.is_empty())?;
    match Email::parse(v) {
        Ok(e) => Some(e.into_inner()),
        Err(m) => {
            p.add(field, "invalid", m);
            None
        }
    }
}

/// Tags: trimmed, unique, at most 50 of at most 50 characters; stored as a JSON array.
pub fn tags_json(p: &mut Problems, tags: &[String]) -> String {
    let mut out: Vec<String> = Vec::new();
    for (i, t) in tags.iter().enumerate() {
        let t = t.trim();
        if t.is_empty() || t.chars().count() > 50 {
            p.add(
                format!("tags[{i}]"),
                "invalid",
                "a tag has 1 to 50 characters",
            );
        } else if !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
    }
    if out.len() > 50 {
        p.add("tags", "too_many", "at most 50 tags");
    }
    serde_json::to_string(&out).unwrap_or_else(|_| "[]".into())
}

/// Custom fields: a flat-or-nested JSON object of at most 16 KiB.
pub fn custom_json(p: &mut Problems, custom: &Option<Map<String, Value>>) -> String {
    let text =
        serde_json::to_string(&custom.clone().unwrap_or_default()).unwrap_or_else(|_| "{}".into());
    if text.len() > 16 * 1024 {
        p.add("custom", "too_large", "custom fields are limited to 16 KiB");
    }
    text
}

pub fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

pub fn json_object(text: &str) -> Map<String, Value> {
    serde_json::from_str(text).unwrap_or_default()
}

/// The owner of a record being written: the caller by default; otherwise an active user
/// the caller may see (a rep can only own records themselves).
pub fn resolve_owner(
    conn: &mut DbConn,
    p: &mut Problems,
    caller: &Caller,
    requested: &Option<String>,
) -> AppResult<String> {
    let Some(owner) = requested.as_deref() else {
        return Ok(caller.user_id.clone());
    };
    if !crate::domain::is_id(owner) {
        crate::domain::optional_id(p, "owner_id", Some(owner));
        return Ok(caller.user_id.clone());
    }
    if owner == caller.user_id {
        return Ok(owner.to_owned());
    }
    let ok =
        caller.visibility().allows(owner) && users::find(conn, owner)?.is_some_and(|u| u.active);
    if !ok {
        p.add(
            "owner_id",
            "not_found",
            "no such active user among those you may assign to",
        );
    }
    Ok(owner.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc7396() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "t": [1]});
        merge_patch(
            &mut doc,
            &json!({"a": "z", "c": {"f": null}, "t": [2, 3], "n": 1}),
        );
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}, "t": [2, 3], "n": 1}));
    }
}
