//! Money: an integer of the currency's minor units, exchanged as a decimal string with
//! as many decimals as the currency has (its ISO 4217 exponent: JPY 0, CNY 2, KWD 3).
//! Storage keeps the integer, so sums stay exact; only the edges read and write text.

use std::fmt;

/// Largest accepted amount in units of any currency: ten trillion, far beyond any
/// single deal.
pub const MAX_UNITS: i64 = 10_000_000_000_000;

/// The largest amount in minor units of a two-decimal currency (CNY, USD, EUR).
pub const MAX_MINOR: i64 = MAX_UNITS * 100;

/// Amounts of different currencies meet in report sums as thousandths of a unit (the
/// finest minor unit among the currencies kept here), without exchange rates: a sum is
/// the plain total of the amounts as written, as it always was.
pub const THOUSANDTHS: u32 = 3;

/// Report sums are read from SQL in two parts, the amounts' thousandths above and below
/// this divisor, because one 64-bit SUM of amount × probability overflows after 92
/// deals at [`MAX_UNITS`]. Each part stays far inside 64 bits (at most 10^10 per deal
/// even weighted by 100), so a group may hold some 900 million deals before a part
/// could overflow; the parts are joined in 128 bits.
pub const SUM_SPLIT: i64 = 100_000_000;

/// Currencies with no minor unit (ISO 4217 exponent 0).
pub const NO_DECIMALS: [&str; 17] = [
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF",
];

/// Currencies with three decimals (ISO 4217 exponent 3).
pub const THREE_DECIMALS: [&str; 7] = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

/// Joins the two parts of a split sum (see [`SUM_SPLIT`]).
pub fn join_sum(high: i64, low: i64) -> i128 {
    i128::from(high) * i128::from(SUM_SPLIT) + i128::from(low)
}

/// An ISO 4217 style currency code: three upper-case ASCII letters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Stands in when a request's currency is invalid (that is reported on its own), so
    /// that its amount is still checked: the most common two-decimal form.
    pub const FALLBACK: Currency = Currency(*b"XXX");

    /// `"cny"` or `" CNY "` → `CNY`; anything but three ASCII letters is refused.
    pub fn parse(text: &str) -> Result<Currency, &'static str> {
        let t = text.trim().to_ascii_uppercase();
        match <[u8; 3]>::try_from(t.as_bytes()) {
            Ok(code) if code.iter().all(u8::is_ascii_uppercase) => Ok(Currency(code)),
            _ => Err("must be a three-letter ISO 4217 code such as CNY"),
        }
    }

    pub fn as_str(&self) -> &str {
        // Three ASCII letters, checked when the code was made.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// How many decimals an amount of this currency has: 0, 2 or 3.
    pub fn exponent(self) -> u32 {
        exponent_of(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The exponent of a stored currency code; codes not listed have two decimals.
pub fn exponent_of(code: &str) -> u32 {
    if NO_DECIMALS.contains(&code) {
        0
    } else if THREE_DECIMALS.contains(&code) {
        3
    } else {
        2
    }
}

/// An amount of one currency, in its minor units.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    /// Parses `"12500"`, `"12500.5"` or `"12500.00"` in `currency`. Negative amounts,
    /// exponents and separators are refused, and so are decimals the currency does not
    /// have, unless they are zeros (`"1000.00"` yen is 1000 yen; `"1000.50"` is refused).
    pub fn parse(text: &str, currency: Currency) -> Result<Money, &'static str> {
        parse_minor(text, currency.exponent()).map(|minor| Money { minor, currency })
    }

    /// The decimal text of the amount, with the currency's decimals.
    pub fn amount(&self) -> String {
        format_minor(self.minor, self.currency.exponent())
    }

    /// The amount in thousandths of a unit, the scale report sums use.
    pub fn thousandths(&self) -> i64 {
        to_thousandths(self.minor, self.currency.exponent())
    }
}

fn too_many_decimals(exponent: u32) -> &'static str {
    match exponent {
        0 => "must be a whole number: the currency has no decimals",
        1 => "must have at most one decimal",
        2 => "must have at most two decimals",
        _ => "must have at most three decimals",
    }
}

/// Reads a non-negative decimal into minor units of a currency with `exponent` decimals
/// (see [`Money::parse`]). At most three decimals are written, and at most
/// [`MAX_UNITS`] units.
pub fn parse_minor(text: &str, exponent: u32) -> Result<i64, &'static str> {
    let t = text.trim();
    let (whole, frac) = match t.split_once('.') {
        Some((w, f)) => (w, f),
        None => (t, ""),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be a non-negative decimal string such as \"12500.00\"");
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (t.contains('.') && frac.is_empty()) {
        return Err("must be a decimal string such as \"12500.00\"");
    }
    let places = exponent as usize;
    let (kept, excess) = frac.split_at(frac.len().min(places));
    if frac.len() > places.max(THOUSANDTHS as usize) || excess.bytes().any(|b| b != b'0') {
        return Err(too_many_decimals(exponent));
    }
    if whole.len() > 14 {
        return Err("is too large");
    }
    let whole: i64 = whole.parse().map_err(|_| "is not a number")?;
    let kept: i64 = if places == 0 {
        0
    } else {
        format!("{kept:0<places$}")
            .parse()
            .map_err(|_| "is not a number")?
    };
    if whole > MAX_UNITS || (whole == MAX_UNITS && kept > 0) {
        return Err("is too large");
    }
    Ok(whole * 10_i64.pow(exponent) + kept)
}

/// Minor units of a currency with `exponent` decimals as a decimal string; totals may
/// exceed any single amount, hence 128 bits.
pub fn format_minor(minor: impl Into<i128>, exponent: u32) -> String {
    let minor: i128 = minor.into();
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    if exponent == 0 {
        return format!("{sign}{m}");
    }
    let unit = 10_u128.pow(exponent);
    let places = exponent as usize;
    format!("{sign}{}.{:0places$}", m / unit, m % unit)
}

/// Minor units of a currency with `exponent` decimals, in thousandths of a unit.
pub fn to_thousandths(minor: i64, exponent: u32) -> i64 {
    minor * 10_i64.pow(THOUSANDTHS.saturating_sub(exponent))
}

/// A sum in thousandths of a unit (amounts of several currencies added as written) as a
/// decimal string: two decimals, and the third only when a three-decimal amount needs
/// it, so sums of CNY or USD read as they always did.
pub fn format_thousandths(sum: i128) -> String {
    if sum % 10 == 0 {
        format_minor(sum / 10, 2)
    } else {
        format_minor(sum, THOUSANDTHS)
    }
}

/// Reads back a total written by [`format_minor`] for a currency with `exponent`
/// decimals (a frozen forecast), of any size up to 128 bits; `None` for anything else.
/// Totals frozen with two decimals before the currency's own exponent applied read as
/// its minor units, rounded half away from zero.
pub fn parse_total(text: &str, exponent: u32) -> Option<i128> {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    let (whole, frac) = match digits.split_once('.') {
        Some((w, f)) if !f.is_empty() => (w, f),
        None if exponent == 0 => (digits, ""),
        _ => return None,
    };
    if whole.is_empty()
        || frac.len() > 3
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let written = u32::try_from(frac.len()).ok()?;
    let whole: i128 = whole.parse().ok()?;
    let frac: i128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let at_written = whole.checked_mul(10_i128.pow(written))?.checked_add(frac)?;
    let minor = if written <= exponent {
        at_written.checked_mul(10_i128.pow(exponent - written))?
    } else {
        let div = 10_i128.pow(written - exponent);
        (at_written + div / 2) / div
    };
    Some(sign * minor)
}

/// A stored amount (minor units of the stored currency code) as its decimal text.
pub fn amount_text(minor: i64, currency: &str) -> String {
    format_minor(minor, exponent_of(currency))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(code: &str) -> Currency {
        Currency::parse(code).expect("a currency")
    }

    fn parse(text: &str, code: &str) -> Result<i64, &'static str> {
        Money::parse(text, cur(code)).map(|m| m.minor)
    }

    #[test]
    fn amounts_round_trip_exactly() {
        assert_eq!(parse("12500.00", "CNY"), Ok(1_250_000));
        assert_eq!(parse("12500.5", "CNY"), Ok(1_250_050));
        assert_eq!(parse("0.07", "USD"), Ok(7));
        assert_eq!(parse(" 42 ", "EUR"), Ok(4200));
        assert_eq!(format_minor(1_250_050, 2), "12500.50");
        assert_eq!(format_minor(7, 2), "0.07");
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
            assert!(parse(bad, "CNY").is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn each_currency_has_its_own_decimals() {
        assert_eq!(cur("jpy").exponent(), 0);
        assert_eq!(cur("KWD").exponent(), 3);
        assert_eq!(cur("CNY").exponent(), 2);
        assert_eq!(parse("1000", "JPY"), Ok(1000));
        // Zeros past the currency's decimals change nothing, so they are accepted.
        assert_eq!(parse("1000.00", "JPY"), Ok(1000));
        assert_eq!(
            parse("1000.5", "JPY"),
            Err("must be a whole number: the currency has no decimals")
        );
        assert_eq!(parse("1.234", "KWD"), Ok(1234));
        assert_eq!(parse("1.2", "KWD"), Ok(1200));
        assert_eq!(
            parse("1.2345", "KWD"),
            Err("must have at most three decimals")
        );
        let yen = Money::parse("1000", cur("JPY")).unwrap();
        assert_eq!(yen.amount(), "1000");
        assert_eq!(yen.thousandths(), 1_000_000);
        let dinar = Money::parse("1.5", cur("KWD")).unwrap();
        assert_eq!(dinar.amount(), "1.500");
        assert_eq!(dinar.thousandths(), 1500);
        assert_eq!(
            Money::parse("12.5", cur("CNY")).unwrap().thousandths(),
            12_500
        );
    }

    #[test]
    fn the_largest_amount_is_ten_trillion_units_in_every_currency() {
        assert_eq!(parse("10000000000000", "CNY"), Ok(MAX_MINOR));
        assert_eq!(parse("10000000000000.00", "CNY"), Ok(MAX_MINOR));
        assert!(parse("10000000000000.01", "CNY").is_err());
        assert_eq!(parse("10000000000000", "JPY"), Ok(MAX_UNITS));
        assert!(parse("10000000000001", "JPY").is_err());
        assert_eq!(parse("10000000000000.000", "KWD"), Ok(MAX_UNITS * 1000));
        assert!(parse("10000000000000.001", "KWD").is_err());
    }

    #[test]
    fn split_sums_stay_exact_beyond_64_bits() {
        // 10 million deals at the maximum in thousandths, weighted by 100.
        let max = MAX_UNITS * 1000;
        let n: i64 = 10_000_000;
        let (high, low) = (max / SUM_SPLIT * 100, max % SUM_SPLIT * 100);
        let total = join_sum(high * n, low * n);
        assert_eq!(total, i128::from(max) * 100 * i128::from(n));
        assert_eq!(format_thousandths(total / 100), "100000000000000000000.00");
        assert_eq!(join_sum(123, 45_678), 12_300_045_678);
    }

    #[test]
    fn sums_of_thousandths_show_a_third_decimal_only_when_needed() {
        assert_eq!(format_thousandths(12_500_000), "12500.00");
        assert_eq!(format_thousandths(1_234), "1.234");
        assert_eq!(format_thousandths(0), "0.00");
        assert_eq!(to_thousandths(7, 2), 70);
        assert_eq!(to_thousandths(7, 0), 7000);
        assert_eq!(to_thousandths(7, 3), 7);
    }

    #[test]
    fn totals_read_back_exactly() {
        for exponent in [0, 2, 3] {
            for minor in [0_i128, 7, -120, 100_000_000_000_000_000_000] {
                assert_eq!(
                    parse_total(&format_minor(minor, exponent), exponent),
                    Some(minor)
                );
            }
        }
        // A yen total frozen with two decimals reads as yen.
        assert_eq!(parse_total("1000.00", 0), Some(1000));
        assert_eq!(parse_total("1000.50", 0), Some(1001));
        assert_eq!(parse_total("1.5", 2), Some(150));
        for bad in ["", "1", "-", "1.2345", "a.00", ".00", "1e5.00", "1."] {
            assert_eq!(parse_total(bad, 2), None, "{bad:?}");
        }
    }

    #[test]
    fn currencies_are_three_letters() {
        assert_eq!(cur("cny").as_str(), "CNY");
        assert!(Currency::parse("RMB1").is_err());
        assert!(Currency::parse("€").is_err());
        assert!(Currency::parse("€A").is_err());
    }
}
