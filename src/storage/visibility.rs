//! Who may see which records: admin everything, a manager the records owned by members
//! of their team, a rep their own. Applied inside queries, so an invisible record is
//! simply not found (404), never fetched and then hidden.

use diesel::backend::Backend;
use diesel::expression::{is_aggregate, AppearsOnTable, Expression, ValidGrouping};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::Bool;

use super::uid::{uid, uids, Uid};
use super::Db;
use crate::domain::ids::{TeamId, UserId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    All,
    /// Records owned by any member of this team (ids resolved when the caller is
    /// authenticated, so the filter needs no join).
    Team {
        team_id: TeamId,
        members: Vec<UserId>,
    },
    /// Records owned by this user.
    Own(UserId),
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

/// The filter of `Visibility::All`: a fixed `1 = 1`. Unlike a `sql("…")` literal, which
/// diesel must treat as unknown text, it leaves the statement cacheable, so an admin's
/// queries stay prepared on the connection instead of being parsed and planned each time.
#[derive(Debug, Clone, Copy)]
pub struct Everything;

impl Expression for Everything {
    type SqlType = Bool;
}

impl<QS> AppearsOnTable<QS> for Everything {}

impl<QS> SelectableExpression<QS> for Everything {}

impl ValidGrouping<()> for Everything {
    type IsAggregate = is_aggregate::No;
}

impl QueryId for Everything {
    type QueryId = Everything;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB: Backend> QueryFragment<DB> for Everything {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("1 = 1");
        Ok(())
    }
}

pub type Filter<'a, QS> = Box<dyn BoxableExpression<QS, Db, SqlType = Bool> + 'a>;

/// The filter that keeps the rows whose `owner` column names a user the caller may see.
pub fn owner_filter<'a, QS, C>(vis: &Visibility, owner: C) -> Filter<'a, QS>
where
    QS: 'a,
    C: Expression<SqlType = Uid>
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
        Visibility::All => Box::new(Everything),
        Visibility::Own(user) => Box::new(owner.eq(uid(user))),
        Visibility::Team { members, .. } => Box::new(owner.eq_any(uids(members))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::schema::opportunities as o;

    /// An admin's lookup must stay a prepared statement (a `sql("…")` filter made every
    /// admin query be parsed and planned again).
    #[test]
    fn every_filter_keeps_the_statement_cacheable_on_postgres() {
        for vis in [
            Visibility::All,
            Visibility::Own("u".into()),
            Visibility::Team {
                team_id: "t".into(),
                members: vec!["u".into(), "v".into()],
            },
        ] {
            let query = o::table
                .find(uid("x"))
                .filter(owner_filter::<o::table, _>(&vis, o::owner_id))
                .select(o::id);
            let backend = crate::storage::MultiBackend::Pg(diesel::pg::Pg);
            assert!(
                QueryFragment::<Db>::is_safe_to_cache_prepared(&query, &backend).unwrap(),
                "{vis:?}"
            );
        }
    }
}
