//! Column types: the domain's text enums stored as TEXT on both backends. One macro
//! gives each enum what diesel needs to bind it and to read it back, so rows hold
//! `OpportunityStatus`, `StageKind`, … instead of strings, and a stored text the
//! service does not know is a read error (corrupt data), never a silent default.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, Queryable};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::domain::import::{Format, JobState, Kind as ImportKind};
use crate::domain::integration::{CaptureKind, DeliveryStatus, EventType};
use crate::domain::lead::{CompanySize, LeadSource, LeadStatus};
use crate::domain::opportunity::{ActivityType, Channel, OpportunityStatus};
use crate::domain::pipeline::StageKind;
use crate::domain::user::Role;

macro_rules! text_columns {
    ($($t:ty),* $(,)?) => {$(
        impl diesel::expression::AsExpression<diesel::sql_types::Text> for $t {
            type Expression = diesel::internal::derives::as_expression::Bound<diesel::sql_types::Text, Self>;
            fn as_expression(self) -> Self::Expression {
                diesel::internal::derives::as_expression::Bound::new(self)
            }
        }

        impl diesel::expression::AsExpression<diesel::sql_types::Nullable<diesel::sql_types::Text>> for $t {
            type Expression = diesel::internal::derives::as_expression::Bound<diesel::sql_types::Nullable<diesel::sql_types::Text>, Self>;
            fn as_expression(self) -> Self::Expression {
                diesel::internal::derives::as_expression::Bound::new(self)
            }
        }

        impl<'a> diesel::expression::AsExpression<diesel::sql_types::Text> for &'a $t {
            type Expression = diesel::internal::derives::as_expression::Bound<diesel::sql_types::Text, Self>;
            fn as_expression(self) -> Self::Expression {
                diesel::internal::derives::as_expression::Bound::new(self)
            }
        }

        impl<'a> diesel::expression::AsExpression<diesel::sql_types::Nullable<diesel::sql_types::Text>> for &'a $t {
            type Expression = diesel::internal::derives::as_expression::Bound<diesel::sql_types::Nullable<diesel::sql_types::Text>, Self>;
            fn as_expression(self) -> Self::Expression {
                diesel::internal::derives::as_expression::Bound::new(self)
            }
        }

        impl<B: diesel::backend::Backend> diesel::serialize::ToSql<diesel::sql_types::Text, B> for $t
        where
            str: diesel::serialize::ToSql<diesel::sql_types::Text, B>,
        {
            fn to_sql<'b>(&'b self, out: &mut diesel::serialize::Output<'b, '_, B>) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, B>>::to_sql(self.as_str(), out)
            }
        }

        impl<B: diesel::backend::Backend> diesel::serialize::ToSql<diesel::sql_types::Nullable<diesel::sql_types::Text>, B> for $t
        where
            str: diesel::serialize::ToSql<diesel::sql_types::Text, B>,
        {
            fn to_sql<'b>(&'b self, out: &mut diesel::serialize::Output<'b, '_, B>) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, B>>::to_sql(self.as_str(), out)
            }
        }

        impl<B: diesel::backend::Backend> diesel::deserialize::FromSql<diesel::sql_types::Text, B> for $t
        where
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, B>,
        {
            fn from_sql(bytes: <B as diesel::backend::Backend>::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                let text = <String as diesel::deserialize::FromSql<diesel::sql_types::Text, B>>::from_sql(bytes)?;
                <$t>::parse(&text).ok_or_else(|| {
                    format!("unknown {} {text:?} in the database", stringify!($t)).into()
                })
            }
        }

        impl<B: diesel::backend::Backend> diesel::deserialize::Queryable<diesel::sql_types::Text, B> for $t
        where
            $t: diesel::deserialize::FromSql<diesel::sql_types::Text, B>,
        {
            type Row = Self;
            fn build(row: Self) -> diesel::deserialize::Result<Self> {
                Ok(row)
            }
        }
    )*};
}

text_columns!(
    OpportunityStatus,
    Channel,
    ActivityType,
    StageKind,
    LeadStatus,
    LeadSource,
    CompanySize,
    Role,
    CaptureKind,
    EventType,
    DeliveryStatus,
    ImportKind,
    Format,
    JobState,
);

// For column types defined above storage (the report layer's periods).
pub(crate) use text_columns;

/// A JSON document stored as TEXT (lists of tags or criteria, custom fields, BANT). The
/// text is written once, when the value is made, and read back into `T`: a stored
/// document that does not parse as `T` is a read error, so corrupt data stops the
/// request that meets it instead of turning into an empty list (which, for a stage's
/// required fields, would quietly open its gate).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonText<T> {
    value: T,
    text: String,
}

impl<T: Serialize> JsonText<T> {
    pub fn new(value: T) -> Result<Self, serde_json::Error> {
        let text = serde_json::to_string(&value)?;
        Ok(JsonText { value, text })
    }

    /// A value as the JSON text its column stores; a value that cannot be written as
    /// JSON (a map with non-text keys) is the service's own error.
    pub fn encode(value: T) -> crate::error::AppResult<Self> {
        Self::new(value).map_err(crate::error::AppError::internal)
    }
}

impl<T> JsonText<T> {
    /// The stored text.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> std::ops::Deref for JsonText<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> diesel::expression::AsExpression<Text> for JsonText<T> {
    type Expression = diesel::internal::derives::as_expression::Bound<Text, Self>;
    fn as_expression(self) -> Self::Expression {
        diesel::internal::derives::as_expression::Bound::new(self)
    }
}

impl<T> diesel::expression::AsExpression<Text> for &JsonText<T> {
    type Expression = diesel::internal::derives::as_expression::Bound<Text, Self>;
    fn as_expression(self) -> Self::Expression {
        diesel::internal::derives::as_expression::Bound::new(self)
    }
}

impl<T: std::fmt::Debug, B: Backend> ToSql<Text, B> for JsonText<T>
where
    str: ToSql<Text, B>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, B>) -> serialize::Result {
        <str as ToSql<Text, B>>::to_sql(self.text.as_str(), out)
    }
}

impl<T: DeserializeOwned, B: Backend> FromSql<Text, B> for JsonText<T>
where
    String: FromSql<Text, B>,
{
    fn from_sql(bytes: <B as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, B>>::from_sql(bytes)?;
        let value = serde_json::from_str(&text)
            .map_err(|e| format!("unreadable JSON in the database ({e}): {text:?}"))?;
        Ok(JsonText { value, text })
    }
}

impl<T, B: Backend> Queryable<Text, B> for JsonText<T>
where
    JsonText<T>: FromSql<Text, B>,
{
    type Row = Self;
    fn build(row: Self) -> deserialize::Result<Self> {
        Ok(row)
    }
}

impl<T: Default + Serialize> Default for JsonText<T> {
    /// The empty list, object or default value. Serialising such a value cannot fail;
    /// were it ever to, the stored `null` would be refused on reading, not taken as empty.
    fn default() -> Self {
        let value = T::default();
        let text = serde_json::to_string(&value).unwrap_or_else(|_| "null".to_owned());
        JsonText { value, text }
    }
}
