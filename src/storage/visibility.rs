//! Who may see which records: admin everything, a manager the records owned by members
//! of their team, a rep their own. Applied inside queries, so an invisible record is
//! simply not found (404), never fetched and then hidden.

use diesel::dsl::sql;
use diesel::expression::{AppearsOnTable, Expression};
use diesel::prelude::*;
use diesel::query_builder::QueryFragment;
use diesel::sql_types::{Bool, Text};

use super::Db;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    All,
    /// Records owned by any member of this team (ids resolved when the caller is
    /// authenticated, so the filter needs no join).
    Team {
        team_id: String,
        members: Vec<String>,
    },
    /// Records owned by this user.
    Own(String),
}

impl Visibility {
    /// True when a record owned by `owner_id` is visible.
    pub fn allows(&self, owner_id: &str) -> bool {
        match self {
            Visibility::All => true,
            Visibility::Team { members, .. } => members.iter().any(|m| m == owner_id),
            Visibility::Own(user) => owner_id == user,
        }
    }
}

pub type Filter<'a, QS> = Box<dyn BoxableExpression<QS, Db, SqlType = Bool> + 'a>;

/// The filter that keeps the rows whose `owner` column names a user the caller may see.
pub fn owner_filter<'a, QS, C>(vis: &Visibility, owner: C) -> Filter<'a, QS>
where
    QS: 'a,
    C: Expression<SqlType = Text>
        + AppearsOnTable<QS>
        + SelectableExpression<QS>
        + QueryFragment<Db>
        + QueryFragment<diesel::pg::Pg>
        + QueryFragment<diesel::sqlite::Sqlite>
        + diesel::expression::ValidGrouping<(), IsAggregate = diesel::expression::is_aggregate::No>
        + Send
        + 'a,
{
    match vis {
        Visibility::All => Box::new(sql::<Bool>("1 = 1")),
        Visibility::Own(user) => Box::new(owner.eq(user.clone())),
        Visibility::Team { members, .. } => Box::new(owner.eq_any(members.clone())),
    }
}
