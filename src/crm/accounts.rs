//! Accounts (companies) and contacts (people at them): their writable fields and how a
//! row is built from them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::fields::{opt_email, opt_text, resolve_owner};
use super::records::{save_whole, stamp_new_or_next, Ops};
use crate::auth::Caller;
use crate::domain::lead::CompanySize;
use crate::domain::{required_text, Problems};
use crate::error::AppResult;
use crate::storage::accounts::{AccountRow, ContactRow};
use crate::storage::{DbConn, Repo, Visible};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    #[schema(example = "杭州云启科技有限公司")]
    pub name: String,
    pub industry: Option<String>,
    pub company_size: Option<CompanySize>,
    pub region: Option<String>,
    pub website: Option<String>,
    /// Defaults to the caller.
    pub owner_id: Option<String>,
    /// The key another system knows this record by; unique.
    pub external_id: Option<String>,
}

impl From<&AccountRow> for AccountInput {
    fn from(a: &AccountRow) -> Self {
        AccountInput {
            name: a.name.clone(),
            industry: a.industry.clone(),
            company_size: a.company_size,
            region: a.region.clone(),
            website: a.website.clone(),
            owner_id: Some(a.owner_id.to_string()),
            external_id: a.external_id.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub account_id: Option<String>,
    /// Defaults to the caller.
    pub owner_id: Option<String>,
    /// The key another system knows this record by; unique.
    pub external_id: Option<String>,
}

impl From<&ContactRow> for ContactInput {
    fn from(c: &ContactRow) -> Self {
        ContactInput {
            first_name: c.first_name.clone(),
            last_name: c.last_name.clone(),
            email: c.email.clone(),
            phone: c.phone.clone(),
            account_id: c.account_id.clone().map(String::from),
            owner_id: Some(c.owner_id.to_string()),
            external_id: c.external_id.clone(),
        }
    }
}

/// Builds the row to store from checked input; `base` is the stored row on update.
pub fn account_row(
    conn: &mut DbConn,
    caller: &Caller,
    input: &AccountInput,
    base: Option<&AccountRow>,
) -> AppResult<AccountRow> {
    let mut p = Problems::default();
    let name = required_text(&mut p, "name", &input.name, 200);
    let owner_id = resolve_owner(conn, &mut p, caller, input.owner_id.as_deref())?;
    let row = AccountRow {
        name,
        industry: opt_text(&mut p, "industry", &input.industry, 100),
        company_size: input.company_size,
        region: opt_text(&mut p, "region", &input.region, 100),
        website: opt_text(&mut p, "website", &input.website, 300),
        owner_id,
        external_id: opt_text(&mut p, "external_id", &input.external_id, 200),
        ..stamp_new_or_next(base.cloned(), caller, |id, now| AccountRow {
            id: id.into(),
            name: String::new(),
            industry: None,
            company_size: None,
            region: None,
            website: None,
            owner_id: String::new().into(),
            version: 1,
            created_at: now,
            updated_at: now,
            created_by: Some(caller.user_id.clone()),
            updated_by: Some(caller.user_id.clone()),
            external_id: None,
        })
    };
    p.into_result()?;
    Ok(row)
}

pub fn contact_row(
    conn: &mut DbConn,
    caller: &Caller,
    input: &ContactInput,
    base: Option<&ContactRow>,
) -> AppResult<ContactRow> {
    let mut p = Problems::default();
    let first_name = opt_text(&mut p, "first_name", &input.first_name, 100);
    let last_name = opt_text(&mut p, "last_name", &input.last_name, 100);
    let email = opt_email(&mut p, "email", &input.email);
    if first_name.is_none() && last_name.is_none() && email.is_none() {
        p.add(
            "last_name",
            "required",
            "a contact needs a name or an email",
        );
    }
    let owner_id = resolve_owner(conn, &mut p, caller, input.owner_id.as_deref())?;
    if let Some(account_id) = &input.account_id {
        if AccountRow::find_visible(conn, &caller.visibility(), account_id).is_err() {
            p.add("account_id", "not_found", "no such account");
        }
    }
    let row = ContactRow {
        first_name,
        last_name,
        email,
        phone: opt_text(&mut p, "phone", &input.phone, 50),
        account_id: input.account_id.clone().map(Into::into),
        owner_id,
        external_id: opt_text(&mut p, "external_id", &input.external_id, 200),
        ..stamp_new_or_next(base.cloned(), caller, |id, now| ContactRow {
            id: id.into(),
            first_name: None,
            last_name: None,
            email: None,
            phone: None,
            account_id: None,
            owner_id: String::new().into(),
            version: 1,
            created_at: now,
            updated_at: now,
            created_by: Some(caller.user_id.clone()),
            updated_by: Some(caller.user_id.clone()),
            external_id: None,
        })
    };
    p.into_result()?;
    Ok(row)
}

/// How an account is locked, shown as input, rebuilt and saved on update.
pub fn account_ops() -> Ops<AccountRow, AccountInput> {
    Ops {
        input_of: |r| AccountInput::from(r),
        build: account_row,
        save: save_whole,
    }
}

/// How a contact is locked, shown as input, rebuilt and saved on update.
pub fn contact_ops() -> Ops<ContactRow, ContactInput> {
    Ops {
        input_of: |r| ContactInput::from(r),
        build: contact_row,
        save: save_whole,
    }
}

/// Creates an account.
pub fn create_account(
    conn: &mut DbConn,
    caller: &Caller,
    input: &AccountInput,
) -> AppResult<AccountRow> {
    let row = account_row(conn, caller, input, None)?;
    row.insert_row(conn)?;
    Ok(row)
}

/// Creates a contact.
pub fn create_contact(
    conn: &mut DbConn,
    caller: &Caller,
    input: &ContactInput,
) -> AppResult<ContactRow> {
    let row = contact_row(conn, caller, input, None)?;
    row.insert_row(conn)?;
    Ok(row)
}
