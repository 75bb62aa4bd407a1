//! A SQL text with positional binds written for one backend: the builder report queries
//! and the maintained report aggregates share.

use chrono::NaiveDateTime;
use diesel::query_builder::BoxedSqlQuery;
use diesel::query_dsl::RunQueryDsl;
use diesel::sql_types::{BigInt, Text, Timestamp};
use diesel::QueryableByName;

use super::{Backend, Db, DbConn};
use crate::error::AppResult;

#[derive(Clone)]
enum Bind {
    Text(String),
    Id(super::uid::Id),
    Ts(NaiveDateTime),
    Int(i64),
}

/// A SQL text with positional binds, written for one backend.
pub struct Sql {
    pub backend: Backend,
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    pub fn new(backend: Backend) -> Sql {
        Sql {
            backend,
            text: String::new(),
            binds: Vec::new(),
        }
    }

    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.text.push_str(sql);
        self
    }

    fn placeholder(&mut self, bind: Bind) -> &mut Self {
        self.binds.push(bind);
        match self.backend {
            Backend::Postgres => {
                let n = self.binds.len();
                self.text.push_str(&format!("${n}"));
            }
            Backend::Sqlite => self.text.push('?'),
        }
        self
    }

    pub fn text(&mut self, v: &str) -> &mut Self {
        self.placeholder(Bind::Text(v.to_owned()))
    }

    /// A record id, compared with an id column (`Uid`).
    pub fn id(&mut self, v: &str) -> &mut Self {
        self.placeholder(Bind::Id(super::uid::uid(v)))
    }

    pub fn ts(&mut self, v: NaiveDateTime) -> &mut Self {
        // Casting keeps PostgreSQL from guessing the parameter's type from context.
        match self.backend {
            Backend::Postgres => {
                self.placeholder(Bind::Ts(v));
                self.text.push_str("::timestamp");
                self
            }
            Backend::Sqlite => self.placeholder(Bind::Ts(v)),
        }
    }

    pub fn int(&mut self, v: i64) -> &mut Self {
        self.placeholder(Bind::Int(v))
    }

    /// `IN (…)` over texts; an empty list matches nothing.
    pub fn in_texts(&mut self, values: &[String]) -> &mut Self {
        self.in_list(values, Sql::text)
    }

    /// `IN (…)` over record ids; an empty list matches nothing.
    pub fn in_ids<S: AsRef<str>>(&mut self, values: &[S]) -> &mut Self {
        self.in_list(values, Sql::id)
    }

    fn in_list<S: AsRef<str>>(
        &mut self,
        values: &[S],
        bind: for<'a> fn(&'a mut Sql, &str) -> &'a mut Sql,
    ) -> &mut Self {
        if values.is_empty() {
            return self.push("(NULL)");
        }
        self.push("(");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            bind(self, v.as_ref());
        }
        self.push(")")
    }

    /// Seconds between two timestamp expressions, as a double.
    pub fn seconds_between(&self, later: &str, earlier: &str) -> String {
        match self.backend {
            // date_part gives a double directly; EXTRACT computes in numeric, several
            // times slower over a million rows.
            Backend::Postgres => format!("date_part('epoch', {later} - {earlier})"),
            // julianday() carries some 40 µs of rounding error at today's dates:
            // milliseconds are exact.
            Backend::Sqlite => {
                format!("ROUND((julianday({later}) - julianday({earlier})) * 86400.0, 3)")
            }
        }
    }

    /// `YYYY-MM` or `YYYY-Qn` of a date or timestamp expression.
    pub fn period_key(&self, expr: &str, quarter: bool) -> String {
        match (self.backend, quarter) {
            (Backend::Postgres, false) => format!("to_char({expr}, 'YYYY-MM')"),
            (Backend::Postgres, true) => {
                format!("to_char({expr}, 'YYYY') || '-Q' || to_char({expr}, 'Q')")
            }
            (Backend::Sqlite, false) => format!("strftime('%Y-%m', {expr})"),
            (Backend::Sqlite, true) => {
                format!("strftime('%Y', {expr}) || '-Q' || ((CAST(strftime('%m', {expr}) AS INTEGER) + 2) / 3)")
            }
        }
    }

    pub fn sql_text(&self) -> &str {
        &self.text
    }

    fn boxed(&self) -> BoxedSqlQuery<'static, Db, diesel::query_builder::SqlQuery> {
        let mut q = diesel::sql_query(self.text.clone()).into_boxed::<Db>();
        for b in &self.binds {
            q = match b {
                Bind::Text(v) => q.bind::<Text, _>(v.clone()),
                Bind::Id(v) => q.bind::<super::uid::Uid, _>(v.clone()),
                Bind::Ts(v) => q.bind::<Timestamp, _>(*v),
                Bind::Int(v) => q.bind::<BigInt, _>(*v),
            };
        }
        q
    }

    pub fn load<R: QueryableByName<Db> + 'static>(&self, conn: &mut DbConn) -> AppResult<Vec<R>> {
        Ok(self.boxed().load::<R>(conn)?)
    }

    /// Runs the query and hands its rows out one at a time, without collecting them.
    pub fn load_iter<'a, R: QueryableByName<Db> + 'static>(
        &self,
        conn: &'a mut DbConn,
    ) -> AppResult<impl Iterator<Item = AppResult<R>> + 'a> {
        Ok(self
            .boxed()
            .load_iter::<R, diesel::connection::DefaultLoadingMode>(conn)?
            .map(|r| r.map_err(Into::into)))
    }

    /// Appends another query's text and binds (written for the same backend).
    pub fn append(&mut self, other: &Sql) -> &mut Self {
        // PostgreSQL numbers its placeholders: renumber the other query's after ours.
        let text = match self.backend {
            Backend::Sqlite => other.text.clone(),
            Backend::Postgres => renumber(&other.text, self.binds.len()),
        };
        self.text.push_str(&text);
        self.binds.extend(other.binds.iter().cloned());
        self
    }

    /// Runs a statement that returns no rows.
    pub fn execute(&self, conn: &mut DbConn) -> AppResult<usize> {
        Ok(self.boxed().execute(conn)?)
    }
}

/// `amount` (minor units of the currency in the column `currency`) in thousandths of a
/// unit, the scale on which amounts of different currencies are summed, compared and
/// sorted (see `domain::money::THOUSANDTHS`). The codes are the service's own
/// constants, never input.
pub fn thousandths(amount: &str, currency: &str) -> String {
    use crate::domain::money::{to_thousandths, NO_DECIMALS, THREE_DECIMALS};
    let list = |codes: &[&str]| {
        codes
            .iter()
            .map(|c| format!("'{c}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "(({amount}) * CASE WHEN {currency} IN ({}) THEN {} WHEN {currency} IN ({}) THEN {} ELSE {} END)",
        list(&NO_DECIMALS),
        to_thousandths(1, 0),
        list(&THREE_DECIMALS),
        to_thousandths(1, 3),
        to_thousandths(1, 2),
    )
}

/// A bound id for an equality lookup (`id = key(…)`), written `CAST(? AS TEXT)` on
/// SQLite and as a plain UUID parameter on PostgreSQL.
///
/// SQLite (built with STAT4, whose samples `ANALYZE` keeps) marks a bare `?` compared
/// with an indexed column as a value that may change the plan, and re-prepares the
/// statement every time a new value is bound: a cached primary-key lookup was parsed
/// and planned again on every call. Behind the cast the value is not looked at while
/// planning, so the statement stays prepared; the index is used all the same (the plan
/// of a unique-key lookup never depended on the value). PostgreSQL prepares a bound
/// parameter once either way.
///
/// A bound `LIMIT ?` has the same effect, so such lookups end in `get_result` (a key
/// matches one row at most) rather than `first`, which binds its `LIMIT 1`.
pub fn key(value: &str) -> Key {
    Key(super::uid::uid(value))
}

#[derive(Debug, Clone)]
pub struct Key(super::uid::Id);

impl diesel::expression::Expression for Key {
    type SqlType = super::uid::Uid;
}

impl<QS> diesel::expression::AppearsOnTable<QS> for Key {}

impl<QS> diesel::expression::SelectableExpression<QS> for Key {}

impl<GB> diesel::expression::ValidGrouping<GB> for Key {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl diesel::query_builder::QueryId for Key {
    type QueryId = Key;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Key {
    fn walk<'b, DB>(
        &'b self,
        sqlite: bool,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> diesel::QueryResult<()>
    where
        DB: diesel::backend::Backend + diesel::sql_types::HasSqlType<super::uid::Uid>,
        super::uid::Id: diesel::serialize::ToSql<super::uid::Uid, DB>,
    {
        if sqlite {
            out.push_sql("CAST(");
        }
        out.push_bind_param::<super::uid::Uid, _>(&self.0)?;
        if sqlite {
            out.push_sql(" AS TEXT)");
        }
        Ok(())
    }
}

impl diesel::query_builder::QueryFragment<Db> for Key {
    fn walk_ast<'b>(
        &'b self,
        out: diesel::query_builder::AstPass<'_, 'b, Db>,
    ) -> diesel::QueryResult<()> {
        let sqlite = matches!(out.backend(), super::MultiBackend::Sqlite(_));
        self.walk(sqlite, out)
    }
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for Key {
    fn walk_ast<'b>(
        &'b self,
        out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        self.walk(false, out)
    }
}

impl diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite> for Key {
    fn walk_ast<'b>(
        &'b self,
        out: diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> diesel::QueryResult<()> {
        self.walk(true, out)
    }
}

/// `$n` placeholders shifted by `by` (`$1` → `$(1 + by)`).
fn renumber(text: &str, by: usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '$' {
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        match digits.parse::<usize>() {
            Ok(n) => out.push_str(&(n + by).to_string()),
            Err(_) => out.push_str(&digits),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_appended_query_keeps_its_binds_in_order() {
        let mut inner = Sql::new(Backend::Postgres);
        inner.push("a = ").text("x").push(" AND b = ").text("y");
        let mut outer = Sql::new(Backend::Postgres);
        outer.push("c = ").text("z").push(" AND (");
        outer.append(&inner).push(")");
        assert_eq!(outer.sql_text(), "c = $1 AND (a = $2 AND b = $3)");
        assert_eq!(outer.binds.len(), 3);
        let mut lite = Sql::new(Backend::Sqlite);
        lite.push("c = ").text("z").push(" AND ");
        let mut inner = Sql::new(Backend::Sqlite);
        inner.push("a = ").text("x");
        lite.append(&inner);
        assert_eq!(lite.sql_text(), "c = ? AND a = ?");
    }
}
