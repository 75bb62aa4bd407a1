//! Column types: the domain's text enums stored as TEXT on both backends. One macro
//! gives each enum what diesel needs to bind it and to read it back, so rows hold
//! `OpportunityStatus`, `StageKind`, … instead of strings, and a stored text the
//! service does not know is a read error (corrupt data), never a silent default.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, Queryable};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::{Nullable, Text};

use crate::domain::lead::{CompanySize, LeadSource, LeadStatus};
use crate::domain::opportunity::{ActivityType, Channel, OpportunityStatus};
use crate::domain::pipeline::StageKind;
use crate::domain::user::Role;

macro_rules! text_columns {
    ($($t:ty),* $(,)?) => {$(
        impl diesel::expression::AsExpression<Text> for $t {
            type Expression = diesel::internal::derives::as_expression::Bound<Text, Self>;
            fn as_expression(self) -> Self::Expression {
                diesel::internal::derives::as_expression::Bound::new(self)
            }
        }

        impl diesel::expression::AsExpression<Nullable<Text>> for $t {
            type Expression = diesel::internal::derives::as_expression::Bound<Nullable<Text>, Self>;
            fn as_expression(self) -> Self::Expression {
                diesel::internal::derives::as_expression::Bound::new(self)
            }
        }

        impl<'a> diesel::expression::AsExpression<Text> for &'a $t {
            type Expression = diesel::internal::derives::as_expression::Bound<Text, Self>;
            fn as_expression(self) -> Self::Expression {
                diesel::internal::derives::as_expression::Bound::new(self)
            }
        }

        impl<'a> diesel::expression::AsExpression<Nullable<Text>> for &'a $t {
            type Expression = diesel::internal::derives::as_expression::Bound<Nullable<Text>, Self>;
            fn as_expression(self) -> Self::Expression {
                diesel::internal::derives::as_expression::Bound::new(self)
            }
        }

        impl<B: Backend> ToSql<Text, B> for $t
        where
            str: ToSql<Text, B>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, B>) -> serialize::Result {
                <str as ToSql<Text, B>>::to_sql(self.as_str(), out)
            }
        }

        impl<B: Backend> ToSql<Nullable<Text>, B> for $t
        where
            str: ToSql<Text, B>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, B>) -> serialize::Result {
                <str as ToSql<Text, B>>::to_sql(self.as_str(), out)
            }
        }

        impl<B: Backend> FromSql<Text, B> for $t
        where
            String: FromSql<Text, B>,
        {
            fn from_sql(bytes: <B as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
                let text = <String as FromSql<Text, B>>::from_sql(bytes)?;
                <$t>::parse(&text).ok_or_else(|| {
                    format!("unknown {} {text:?} in the database", stringify!($t)).into()
                })
            }
        }

        impl<B: Backend> Queryable<Text, B> for $t
        where
            $t: FromSql<Text, B>,
        {
            type Row = Self;
            fn build(row: Self) -> deserialize::Result<Self> {
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
);
