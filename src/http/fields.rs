//! PATCH as JSON merge patch (RFC 7396) over a resource's writable representation, and
//! the schema of such a patch.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use super::extract::from_value;
use crate::error::{AppError, AppResult};

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
