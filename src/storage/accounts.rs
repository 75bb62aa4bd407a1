//! Accounts and contacts repositories.

use crate::domain::ids::{AccountId, ContactId, UserId};
use crate::storage::uid::uid;
use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::prelude::*;

use crate::domain::lead::CompanySize;
use diesel::sql_types::Text;

use super::schema::{accounts, contacts, opportunities};
use super::{contains_pattern, parse_ts_key, ts_key, After, DbConn, Page, PageRequest};
use crate::error::ProblemCode;
use crate::error::{AppError, AppResult};
use crate::storage::visibility::{owner_filter, Visibility};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = accounts, treat_none_as_null = true)]
pub struct AccountRow {
    pub id: AccountId,
    pub name: String,
    pub industry: Option<String>,
    pub company_size: Option<CompanySize>,
    pub region: Option<String>,
    pub website: Option<String>,
    pub owner_id: UserId,
    #[diesel(skip_update)]
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub created_by: Option<UserId>,
    pub updated_by: Option<UserId>,
    pub external_id: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = contacts, treat_none_as_null = true)]
pub struct ContactRow {
    pub id: ContactId,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub account_id: Option<AccountId>,
    pub owner_id: UserId,
    #[diesel(skip_update)]
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub created_by: Option<UserId>,
    pub updated_by: Option<UserId>,
    pub external_id: Option<String>,
}

/// A visible account with this name (case-insensitive), for conversion.
pub fn visible_account_named(
    conn: &mut DbConn,
    vis: &Visibility,
    name: &str,
) -> AppResult<Option<AccountRow>> {
    Ok(accounts::table
        .filter(owner_filter(vis, accounts::owner_id))
        .filter(sql::<Text>("lower(accounts.name)").eq(name.trim().to_lowercase()))
        .order(accounts::created_at.asc())
        .select(AccountRow::as_select())
        .first(conn)
        .optional()?)
}

/// A visible contact with this email, for conversion.
pub fn visible_contact_with_email(
    conn: &mut DbConn,
    vis: &Visibility,
    email: &str,
) -> AppResult<Option<ContactRow>> {
    Ok(contacts::table
        .filter(owner_filter(vis, contacts::owner_id))
        .filter(contacts::email.eq(email))
        .order(contacts::created_at.asc())
        .select(ContactRow::as_select())
        .first(conn)
        .optional()?)
}

/// Refuses to delete an account that deals or contacts still point at.
pub fn ensure_account_unused(conn: &mut DbConn, id: &str) -> AppResult<()> {
    let deals: i64 = opportunities::table
        .filter(opportunities::account_id.eq(uid(id)))
        .count()
        .get_result(conn)?;
    let people: i64 = contacts::table
        .filter(contacts::account_id.eq(uid(id)))
        .count()
        .get_result(conn)?;
    if deals + people > 0 {
        return Err(AppError::Conflict {
            code: ProblemCode::AccountInUse,
            detail: "Opportunities or contacts still belong to the account.".into(),
            existing_id: None,
        });
    }
    Ok(())
}

pub fn ensure_contact_unused(conn: &mut DbConn, id: &str) -> AppResult<()> {
    let deals: i64 = opportunities::table
        .filter(opportunities::contact_id.eq(uid(id)))
        .count()
        .get_result(conn)?;
    if deals > 0 {
        return Err(AppError::Conflict {
            code: ProblemCode::ContactInUse,
            detail: "Opportunities still name this contact.".into(),
            existing_id: None,
        });
    }
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct AccountFilter {
    pub q: Option<String>,
    pub owner_id: Option<String>,
    pub industry: Option<String>,
    pub region: Option<String>,
}

pub fn list_accounts(
    conn: &mut DbConn,
    vis: &Visibility,
    f: &AccountFilter,
    page: &PageRequest,
) -> AppResult<Page<AccountRow>> {
    let mut q = accounts::table
        .filter(owner_filter(vis, accounts::owner_id))
        .select(AccountRow::as_select())
        .into_boxed();
    if let Some(v) = &f.owner_id {
        q = q.filter(accounts::owner_id.eq(uid(v)));
    }
    if let Some(v) = &f.industry {
        q = q.filter(accounts::industry.eq(v.clone()));
    }
    if let Some(v) = &f.region {
        q = q.filter(accounts::region.eq(v.clone()));
    }
    if let Some(text) = &f.q {
        q = q.filter(
            sql::<Text>("lower(accounts.name)")
                .like(contains_pattern(text))
                .escape('\\'),
        );
    }
    let after = page.after.as_ref().map(|a| (a.value.clone(), a.id.clone()));
    let q = if page.sort == "name" {
        crate::keyset!(q, accounts::name, accounts::id, page.desc, after)
    } else {
        let after = after
            .map(|(v, id)| Ok::<_, AppError>((parse_ts_key(&v)?, id)))
            .transpose()?;
        crate::keyset!(q, accounts::created_at, accounts::id, page.desc, after)
    };
    let rows = q.limit(page.limit as i64 + 1).load(conn)?;
    let by_name = page.sort == "name";
    Ok(Page::from_rows(rows, page.limit, |a: &AccountRow| After {
        value: if by_name {
            a.name.clone()
        } else {
            ts_key(&a.created_at)
        },
        id: a.id.to_string(),
    }))
}

#[derive(Debug, Default, Clone)]
pub struct ContactFilter {
    pub q: Option<String>,
    pub owner_id: Option<String>,
    pub account_id: Option<String>,
    pub email: Option<String>,
}

pub fn list_contacts(
    conn: &mut DbConn,
    vis: &Visibility,
    f: &ContactFilter,
    page: &PageRequest,
) -> AppResult<Page<ContactRow>> {
    let mut q = contacts::table
        .filter(owner_filter(vis, contacts::owner_id))
        .select(ContactRow::as_select())
        .into_boxed();
    if let Some(v) = &f.owner_id {
        q = q.filter(contacts::owner_id.eq(uid(v)));
    }
    if let Some(v) = &f.account_id {
        q = q.filter(contacts::account_id.eq(uid(v)));
    }
    if let Some(v) = &f.email {
        q = q.filter(contacts::email.eq(v.to_lowercase()));
    }
    if let Some(text) = &f.q {
        let searchable = "lower(coalesce(contacts.first_name, '') || ' ' || coalesce(contacts.last_name, '') || ' ' || coalesce(contacts.email, ''))";
        q = q.filter(
            sql::<Text>(searchable)
                .like(contains_pattern(text))
                .escape('\\'),
        );
    }
    let after = page
        .after
        .as_ref()
        .map(|a| Ok::<_, AppError>((parse_ts_key(&a.value)?, a.id.clone())))
        .transpose()?;
    let rows = crate::keyset!(q, contacts::created_at, contacts::id, page.desc, after)
        .limit(page.limit as i64 + 1)
        .load(conn)?;
    Ok(Page::from_rows(rows, page.limit, |c: &ContactRow| After {
        value: ts_key(&c.created_at),
        id: c.id.to_string(),
    }))
}
