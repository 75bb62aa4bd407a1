//! What a report answers in: JSON or CSV by `Accept`, the funnel picture's language by
//! `Accept-Language`, and the one CSV writer (formula-neutralised cells).

use super::*;

pub(super) fn wants_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(prefers_csv)
}

/// The ranges of an `Accept` or `Accept-Language` header with their weights
/// (RFC 9110 §12.4.2), lower-cased, in the header's order; `q` defaults to 1.
pub(super) fn weighted(header: &str) -> impl Iterator<Item = (String, f32)> + '_ {
    header.split(',').map(|range| {
        let mut parts = range.split(';');
        let value = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        (value, q)
    })
}

/// Content negotiation between JSON (the default) and CSV by `Accept` q-values
/// (RFC 9110 §12.5.1): CSV only when it is preferred strictly over JSON.
pub(super) fn prefers_csv(accept: &str) -> bool {
    let quality = |wanted: &str| -> f32 {
        let (kind, _) = wanted.split_once('/').unwrap_or((wanted, ""));
        let mut best: Option<(u8, f32)> = None;
        for (media, q) in weighted(accept) {
            // The most specific matching range decides (exact, then type/*, then */*).
            let specificity = if media == wanted {
                3
            } else if media == format!("{kind}/*") {
                2
            } else if media == "*/*" {
                1
            } else {
                continue;
            };
            if best.is_none_or(|(s, _)| specificity > s) {
                best = Some((specificity, q));
            }
        }
        best.map_or(0.0, |(_, q)| q)
    };
    let csv = quality("text/csv");
    csv > 0.0 && csv > quality("application/json")
}

/// The picture's language by `Accept-Language` (RFC 9110 §12.5.4): the highest-weighted
/// range naming `zh` or `en` (`*` means `en`); equal weights keep the header's order.
/// English when nothing matches.
pub(super) fn preferred_lang(accept_language: Option<&str>) -> Lang {
    let mut best: Option<(f32, Lang)> = None;
    for (tag, q) in weighted(accept_language.unwrap_or("")) {
        let Some(lang) = Lang::of_tag(&tag) else {
            continue;
        };
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, lang));
        }
    }
    best.map_or(Lang::En, |(_, lang)| lang)
}

/// True for the numbers the reports write (`12`, `-12.00`, `0.6667`).
pub(super) fn is_number(cell: &str) -> bool {
    let digits = cell.strip_prefix('-').unwrap_or(cell);
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !whole.is_empty()
        && !frac.is_empty()
        && whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
}

/// A spreadsheet runs a cell starting with `=`, `+`, `-` or `@` (or tab or CR before
/// one) as a formula, and names, regions and tags are typed by reps: such text gets a
/// leading `'` (OWASP, CSV injection). Numbers keep their sign.
pub(super) fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) && !is_number(cell) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// RFC 4180 CSV with a header row; text that a spreadsheet would run is neutralised.
pub fn to_csv(rows: &[Vec<String>]) -> AppResult<String> {
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .flexible(true)
        .from_writer(Vec::new());
    for row in rows {
        out.write_record(row.iter().map(|cell| neutralise(cell).into_owned()))
            .map_err(AppError::internal)?;
    }
    let bytes = out.into_inner().map_err(AppError::internal)?;
    String::from_utf8(bytes).map_err(AppError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_q_values_choose_the_format() {
        assert!(prefers_csv("text/csv"));
        assert!(prefers_csv("text/csv, application/json;q=0.5"));
        assert!(!prefers_csv("application/json, text/csv;q=0.1"));
        assert!(!prefers_csv("*/*"));
        assert!(!prefers_csv("application/json"));
        assert!(!prefers_csv("text/csv;q=0"));
        assert!(prefers_csv("text/*, application/json;q=0.9"));
        assert!(!prefers_csv("text/html, */*;q=0.8"));
    }

    #[test]
    fn accept_language_picks_the_picture_language() {
        assert_eq!(preferred_lang(None), Lang::En);
        assert_eq!(preferred_lang(Some("zh-CN,zh;q=0.9,en;q=0.8")), Lang::Zh);
        assert_eq!(preferred_lang(Some("en-US,zh;q=0.5")), Lang::En);
        assert_eq!(preferred_lang(Some("fr-FR, zh-TW;q=0.7")), Lang::Zh);
        assert_eq!(preferred_lang(Some("de")), Lang::En);
        assert_eq!(preferred_lang(Some("zh;q=0, en;q=0.1")), Lang::En);
        assert_eq!(preferred_lang(Some("fr, *;q=0.2, zh;q=0.1")), Lang::En);
    }

    #[test]
    fn csv_cells_that_would_run_as_formulas_get_a_quote() {
        let rows = vec![vec![
            "=HYPERLINK(\"http://x\",\"y\")".to_owned(),
            "+1".into(),
            "-1+2".into(),
            "@SUM(A1)".into(),
            "\t=1".into(),
            "\r=1".into(),
            "-".into(),
        ]];
        assert_eq!(
            to_csv(&rows).unwrap(),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",'+1,'-1+2,'@SUM(A1),'\t=1,\"'\r=1\",'-\r\n"
        );
    }

    #[test]
    fn csv_numbers_and_plain_text_stay_as_they_are() {
        let rows = vec![vec![
            "-12.00".to_owned(),
            "-3".into(),
            "0.6667".into(),
            "12500.00".into(),
            "华东".into(),
            "a=b".into(),
            "".into(),
        ]];
        assert_eq!(
            to_csv(&rows).unwrap(),
            "-12.00,-3,0.6667,12500.00,华东,a=b,\r\n"
        );
    }
}
