//! Record ids in the database: native `uuid` on PostgreSQL (16 bytes in every row and
//! index entry, instead of 37 as text), TEXT on SQLite. The service handles ids as the
//! canonical text form (`0191f7a2-…`, lower case) everywhere; this column type converts
//! at the boundary, so the schema says `Uid` and the rest of the code is the same on
//! both backends.
//!
//! A text that is not a canonical id names no record. On SQLite it is compared as it is
//! and matches nothing; on PostgreSQL it is bound as the nil UUID, which no record has
//! (every id is a version 7 UUID made by `storage::new_id`), so it matches nothing
//! either. A path or filter with a malformed id is therefore "not found" on both
//! backends, never a bind error.

use std::io::Write;

use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{HasSqlType, Nullable, Text};
use diesel::sqlite::Sqlite;

use super::{MultiBackend, MultiRawValue};
use crate::domain::ids::Id as TypedId;

/// The SQL type of an id column.
#[derive(
    Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId,
)]
#[diesel(postgres_type(oid = 2950, array_oid = 2951))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Uid;

/// The UUID a canonical id spells; `None` for any other text (upper case included, so
/// that PostgreSQL matches exactly what SQLite's text comparison matches).
pub fn parse(text: &str) -> Option<uuid::Uuid> {
    if text.len() != 36 || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    uuid::Uuid::try_parse(text).ok()
}

/// Any id text bound to an id column: `uid(&text)`, `uids(&members)`. Rows hold typed
/// ids (`domain::ids`), which bind as they are; this wrapper is for text that names an
/// id without saying of what (a path segment, a cursor, a filter), since diesel's
/// `String` binds as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, diesel::expression::AsExpression)]
#[diesel(sql_type = Uid)]
pub struct Id(String);

/// The id `text` names, to bind in a query.
pub fn uid(text: impl AsRef<str>) -> Id {
    Id(text.as_ref().to_owned())
}

/// The id an optional text names, to bind to a nullable id column.
pub fn opt_uid(text: Option<impl AsRef<str>>) -> Option<Id> {
    text.map(uid)
}

/// Ids to bind in an `IN` list.
pub fn uids<S: AsRef<str>>(texts: &[S]) -> Vec<Id> {
    texts.iter().map(|t| uid(t.as_ref())).collect()
}

impl From<String> for Id {
    fn from(text: String) -> Id {
        Id(text)
    }
}

impl std::ops::Deref for Id {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl ToSql<Uid, Pg> for Id {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        write_pg(&self.0, out)
    }
}

/// The 16 bytes of the UUID `text` spells (the nil UUID for any other text).
fn write_pg(text: &str, out: &mut Output<'_, '_, Pg>) -> serialize::Result {
    out.write_all(parse(text).unwrap_or_default().as_bytes())?;
    Ok(IsNull::No)
}

impl ToSql<Uid, Sqlite> for Id {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        <str as ToSql<Text, Sqlite>>::to_sql(self.0.as_str(), out)
    }
}

impl ToSql<Uid, MultiBackend> for Id {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
        out.set_value((Uid, self));
        Ok(IsNull::No)
    }
}

impl FromSql<Uid, Pg> for String {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let id = uuid::Uuid::from_slice(value.as_bytes())?;
        Ok(id.hyphenated().to_string())
    }
}

impl FromSql<Uid, Sqlite> for String {
    fn from_sql(
        value: <Sqlite as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        <String as FromSql<Text, Sqlite>>::from_sql(value)
    }
}

impl FromSql<Uid, MultiBackend> for String {
    fn from_sql(value: MultiRawValue<'_>) -> deserialize::Result<Self> {
        value.from_sql::<String, Uid>()
    }
}

impl HasSqlType<Uid> for MultiBackend {
    fn metadata(lookup: &mut Self::MetadataLookup) -> Self::TypeMetadata {
        MultiBackend::lookup_sql_type::<Uid>(lookup)
    }
}

/// Typed ids (`domain::ids`) bind and read as the id column type, exactly as an [`Id`].
impl<K> diesel::expression::AsExpression<Uid> for TypedId<K> {
    type Expression = diesel::internal::derives::as_expression::Bound<Uid, Self>;
    fn as_expression(self) -> Self::Expression {
        diesel::internal::derives::as_expression::Bound::new(self)
    }
}

impl<K> diesel::expression::AsExpression<Uid> for &TypedId<K> {
    type Expression = diesel::internal::derives::as_expression::Bound<Uid, Self>;
    fn as_expression(self) -> Self::Expression {
        diesel::internal::derives::as_expression::Bound::new(self)
    }
}

impl<K> diesel::expression::AsExpression<Nullable<Uid>> for TypedId<K> {
    type Expression = diesel::internal::derives::as_expression::Bound<Nullable<Uid>, Self>;
    fn as_expression(self) -> Self::Expression {
        diesel::internal::derives::as_expression::Bound::new(self)
    }
}

impl<K> diesel::expression::AsExpression<Nullable<Uid>> for &TypedId<K> {
    type Expression = diesel::internal::derives::as_expression::Bound<Nullable<Uid>, Self>;
    fn as_expression(self) -> Self::Expression {
        diesel::internal::derives::as_expression::Bound::new(self)
    }
}

impl<K> ToSql<Uid, Pg> for TypedId<K> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        write_pg(self.as_str(), out)
    }
}

impl<K> ToSql<Uid, Sqlite> for TypedId<K> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        <str as ToSql<Text, Sqlite>>::to_sql(self.as_str(), out)
    }
}

impl<K: 'static> ToSql<Uid, MultiBackend> for TypedId<K> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
        out.set_value((Uid, self));
        Ok(IsNull::No)
    }
}

macro_rules! typed_id_sql {
    ($($backend:ty),*) => {$(
        impl<K> ToSql<Nullable<Uid>, $backend> for TypedId<K>
        where
            TypedId<K>: ToSql<Uid, $backend>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, $backend>) -> serialize::Result {
                <Self as ToSql<Uid, $backend>>::to_sql(self, out)
            }
        }

        impl<K> FromSql<Uid, $backend> for TypedId<K> {
            fn from_sql(
                value: <$backend as diesel::backend::Backend>::RawValue<'_>,
            ) -> deserialize::Result<Self> {
                <String as FromSql<Uid, $backend>>::from_sql(value).map(TypedId::from)
            }
        }

        impl<K> diesel::Queryable<Uid, $backend> for TypedId<K> {
            type Row = Self;
            fn build(row: Self) -> deserialize::Result<Self> {
                Ok(row)
            }
        }
    )*};
}

typed_id_sql!(Pg, Sqlite, MultiBackend);

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn only_the_canonical_text_of_a_uuid_names_a_record() {
        let id: String = crate::storage::new_id();
        assert_eq!(
            parse(&id).map(|u| u.hyphenated().to_string()),
            Some(id.clone())
        );
        assert_eq!(parse(&id.to_uppercase()), None);
        assert_eq!(parse(&id.replace('-', "")), None);
        assert_eq!(parse("x"), None);
        assert_eq!(parse(""), None);
    }
}
