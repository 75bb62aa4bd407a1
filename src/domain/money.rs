//! Money as an integer of minor units (1/100), exchanged as a decimal string.

/// Largest accepted amount: 10^13 units (ten trillion), far beyond any single deal.
pub const MAX_MINOR: i64 = 1_000_000_000_000_000;

/// Report sums are read from SQL in two parts, the amounts' minor units above and below
/// this divisor, because one 64-bit SUM of amount × probability overflows after 93
/// deals at [`MAX_MINOR`]. Each part stays far inside 64 bits (below 10^10 per deal
/// even weighted by 100), so a group may hold some 900 million deals before a part
/// could overflow; the parts are joined in 128 bits.
pub const SUM_SPLIT: i64 = 100_000_000;

/// Joins the two parts of a split sum (see [`SUM_SPLIT`]).
pub fn join_sum(high: i64, low: i64) -> i128 {
    i128::from(high) * i128::from(SUM_SPLIT) + i128::from(low)
}

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

/// Minor units as a decimal string; totals may exceed any single amount, hence 128 bits.
pub fn format_amount(minor: impl Into<i128>) -> String {
    let minor: i128 = minor.into();
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    format!("{sign}{}.{:02}", m / 100, m % 100)
}

/// Reads back a total written by [`format_amount`] (a frozen forecast), of any size up
/// to 128 bits; `None` for anything else.
pub fn parse_total(text: &str) -> Option<i128> {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    let (whole, frac) = digits.split_once('.')?;
    if whole.is_empty()
        || frac.len() != 2
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i128 = whole.parse().ok()?;
    let frac: i128 = frac.parse().ok()?;
    whole.checked_mul(100)?.checked_add(frac).map(|m| sign * m)
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
    fn the_largest_amount_is_ten_trillion() {
        assert_eq!(parse_amount("10000000000000"), Ok(MAX_MINOR));
        assert_eq!(parse_amount("10000000000000.00"), Ok(MAX_MINOR));
        assert!(parse_amount("10000000000000.01").is_err());
    }

    #[test]
    fn split_sums_stay_exact_beyond_64_bits() {
        // 10 million deals at the maximum, weighted by 100: 10^24 hundredths.
        let n: i64 = 10_000_000;
        let (high, low) = (MAX_MINOR / SUM_SPLIT * 100, MAX_MINOR % SUM_SPLIT * 100);
        let total = join_sum(high * n, low * n);
        assert_eq!(total, i128::from(MAX_MINOR) * 100 * i128::from(n));
        assert_eq!(format_amount(total / 100), "100000000000000000000.00");
        assert_eq!(join_sum(123, 45_678), 12_300_045_678);
    }

    #[test]
    fn totals_read_back_exactly() {
        for minor in [0_i128, 7, -120, 100_000_000_000_000_000_000] {
            assert_eq!(parse_total(&format_amount(minor)), Some(minor));
        }
        for bad in ["", "1", "1.5", "-", "1.234", "a.00", ".00", "1e5.00"] {
            assert_eq!(parse_total(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn currencies_are_three_letters() {
        assert_eq!(parse_currency("cny").unwrap(), "CNY");
        assert!(parse_currency("RMB1").is_err());
        assert!(parse_currency("€").is_err());
    }
}
