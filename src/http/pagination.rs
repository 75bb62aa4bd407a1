//! Cursor pagination shared by every list endpoint: `limit` (1–500, default 50),
//! an opaque `cursor`, and `sort` as `field` or `-field`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ProblemCode;
use crate::error::{AppError, AppResult};
use crate::storage::{invalid_cursor, After, Page, PageRequest};

pub const DEFAULT_LIMIT: usize = 50;

/// The fields each list sorts by, by path: the handlers page with them and the OpenAPI
/// document offers them (and their `-` descending forms) as the `sort` values.
pub const SORTS: &[(&str, &[&str])] = &[
    ("/api/v1/accounts", &["created_at", "name"]),
    ("/api/v1/contacts", &["created_at"]),
    ("/api/v1/activities", &["created_at"]),
    ("/api/v1/leads", &["created_at", "updated_at", "score"]),
    (
        "/api/v1/opportunities",
        &[
            "created_at",
            "updated_at",
            "name",
            "amount",
            "stage_entered_at",
        ],
    ),
    ("/api/v1/pipelines", &["created_at", "name", "updated_at"]),
    ("/api/v1/teams", &["name"]),
    ("/api/v1/users", &["created_at", "email"]),
];

/// The sort fields of the list at `path` (none for an unknown path).
pub fn sorts(path: &str) -> &'static [&'static str] {
    SORTS
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(&[], |(_, fields)| fields)
}
pub const MAX_LIMIT: usize = 500;

/// A page of results. `next_cursor` is null on the last page.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageOut<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct CursorBody {
    s: String,
    v: String,
    i: String,
}

/// Checks `limit`, `sort` (one of `allowed`, optionally prefixed with `-`) and decodes
/// `cursor`, which must have been issued for the same sort.
pub fn page_request(
    limit: Option<usize>,
    cursor: Option<&str>,
    sort: Option<&str>,
    allowed: &[&str],
    default_sort: &str,
) -> AppResult<PageRequest> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::BadRequest {
            code: ProblemCode::InvalidParameter,
            detail: format!("limit must be between 1 and {MAX_LIMIT}"),
            errors: vec![crate::error::FieldError::new(
                "limit",
                "out_of_range",
                format!("must be between 1 and {MAX_LIMIT}"),
            )],
        });
    }
    let sort_text = sort.unwrap_or(default_sort);
    let (desc, field) = match sort_text.strip_prefix('-') {
        Some(f) => (true, f),
        None => (false, sort_text),
    };
    if !allowed.contains(&field) {
        return Err(AppError::BadRequest {
            code: ProblemCode::InvalidParameter,
            detail: format!(
                "sort must be one of {} (prefix - for descending)",
                allowed.join(", ")
            ),
            errors: vec![crate::error::FieldError::new(
                "sort",
                "unknown_value",
                "unsupported sort field",
            )],
        });
    }
    let after = match cursor.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => {
            let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad_cursor())?;
            let body: CursorBody = serde_json::from_slice(&bytes).map_err(|_| bad_cursor())?;
            if body.s != sort_text {
                return Err(bad_cursor());
            }
            Some(After {
                value: body.v,
                id: body.i,
            })
        }
    };
    Ok(PageRequest {
        limit,
        sort: field.to_owned(),
        desc,
        after,
    })
}

/// 400 `invalid_cursor`.
pub fn bad_cursor() -> AppError {
    match invalid_cursor() {
        AppError::Validation(errors) => AppError::BadRequest {
            code: ProblemCode::InvalidCursor,
            detail: "The cursor is malformed or was issued for another sort order.".into(),
            errors,
        },
        other => other,
    }
}

/// Shapes a storage page for the wire, encoding the next cursor.
pub fn page_out<T, U>(page: Page<T>, req: &PageRequest, f: impl FnMut(T) -> U) -> PageOut<U> {
    let sort = if req.desc {
        format!("-{}", req.sort)
    } else {
        req.sort.clone()
    };
    let next_cursor = page.next.as_ref().map(|a| {
        let body = CursorBody {
            s: sort.clone(),
            v: a.value.clone(),
            i: a.id.clone(),
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).unwrap_or_default())
    });
    PageOut {
        data: page.items.into_iter().map(f).collect(),
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_sorts_are_checked() {
        assert!(page_request(Some(0), None, None, &["created_at"], "created_at").is_err());
        assert!(page_request(Some(501), None, None, &["created_at"], "created_at").is_err());
        assert!(page_request(None, None, Some("-secret"), &["created_at"], "created_at").is_err());
        let p = page_request(
            Some(10),
            None,
            Some("-created_at"),
            &["created_at"],
            "created_at",
        )
        .unwrap();
        assert!(p.desc && p.limit == 10 && p.sort == "created_at");
    }

    #[test]
    fn cursors_round_trip_and_are_tied_to_their_sort() {
        let req =
            page_request(Some(1), None, Some("name"), &["name", "created_at"], "name").unwrap();
        let page = Page {
            items: vec![1],
            next: Some(After {
                value: "b".into(),
                id: "2".into(),
            }),
        };
        let out = page_out(page, &req, |x| x);
        let c = out.next_cursor.unwrap();
        let again = page_request(
            Some(1),
            Some(&c),
            Some("name"),
            &["name", "created_at"],
            "name",
        )
        .unwrap();
        assert_eq!(
            again.after,
            Some(After {
                value: "b".into(),
                id: "2".into()
            })
        );
        assert!(page_request(Some(1), Some(&c), Some("-name"), &["name"], "name").is_err());
        assert!(page_request(Some(1), Some("%%%"), None, &["name"], "name").is_err());
    }
}
