//! Money as an integer of minor units (1/100), exchanged as a decimal string.

/// Largest accepted amount: 10^13 units (ten trillion), far beyond any single deal.
const MAX_MINOR: i64 = 1_000_000_000_000_000;

/// Parses `"12500"`, `"12500.5"` or `"12500.00"` into minor units. Negative amounts,
/// more than two decimals, exponents and separators are refused.
pub fn parse_amount(text: &str) -> Result<i64, &'static str> {
    let t = text.trim();
    let (whole, frac) = match t.split_once('.') {
        Some((w, f)) => (w, f),
        None => (t, ""),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be a non-negative decimal string such as \"12500.00\"");
    }
    if frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (t.contains('.') && frac.is_empty())
    {
        return Err("must have at most two decimals");
    }
    if whole.len() > 14 {
        return Err("is too large");
    }
    let whole: i64 = whole.parse().map_err(|_| "is not a number")?;
    let frac: i64 = format!("{frac:0<2}")
        .parse()
        .map_err(|_| "is not a number")?;
    let minor = whole * 100 + frac;
    if minor > MAX_MINOR {
        return Err("is too large");
    }
    Ok(minor)
}

pub fn format_amount(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    format!("{sign}{}.{:02}", m / 100, m % 100)
}

/// ISO 4217 style: three upper-case ASCII letters.
pub fn parse_currency(text: &str) -> Result<String, &'static str> {
    let t = text.trim().to_ascii_uppercase();
    if t.len() == 3 && t.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(t)
    } else {
        Err("must be a three-letter ISO 4217 code such as CNY")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_exactly() {
        assert_eq!(parse_amount("12500.00"), Ok(1_250_000));
        assert_eq!(parse_amount("12500.5"), Ok(1_250_050));
        assert_eq!(parse_amount("0.07"), Ok(7));
        assert_eq!(parse_amount(" 42 "), Ok(4200));
        assert_eq!(format_amount(1_250_050), "12500.50");
        assert_eq!(format_amount(7), "0.07");
        for bad in [
            "",
            "-1",
            "1.234",
            "1e5",
            "1,000",
            "abc",
            ".5",
            "5.",
            "99999999999999999",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn currencies_are_three_letters() {
        assert_eq!(parse_currency("cny").unwrap(), "CNY");
        assert!(parse_currency("RMB1").is_err());
        assert!(parse_currency("€").is_err());
    }
}
