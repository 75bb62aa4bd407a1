//! Laws of the pure functions, checked on generated input: money text round trips and
//! its range, JSON merge patch (RFC 7396), `percentile_cont`, and the funnel's counts.

use proptest::prelude::*;
use serde_json::{Map, Value};
use stageflow::analytics::funnel::{add_deals, assemble, Counts};
use stageflow::analytics::math::percentile_cont;
use stageflow::analytics::StageInfo;
use stageflow::domain::money::{format_minor, Currency, Money, MAX_MINOR, MAX_UNITS};
use stageflow::domain::pipeline::StageKind;
use stageflow::http::fields::merge_patch;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // A failure prints its shrunk input; cases worth keeping become unit tests.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---- money -------------------------------------------------------------------------

/// One currency of each number of decimals.
fn currency() -> impl Strategy<Value = Currency> {
    prop_oneof![
        Just("JPY"),
        Just("CNY"),
        Just("USD"),
        Just("KWD"),
        Just("BHD")
    ]
    .prop_map(|c| Currency::parse(c).expect("a currency"))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn formatted_amounts_parse_back_to_the_same_minor_units(
        currency in currency(),
        units in 0..=MAX_UNITS,
        frac in 0..1000_i64,
    ) {
        let unit = 10_i64.pow(currency.exponent());
        let minor = (units * unit + frac % unit).min(MAX_UNITS * unit);
        let money = Money { minor, currency };
        prop_assert_eq!(Money::parse(&money.amount(), currency), Ok(money));
        prop_assert_eq!(i128::from(money.thousandths()), i128::from(minor) * 1000 / i128::from(unit));
    }

    #[test]
    fn a_currency_takes_its_own_decimals_and_zeros_beyond_them(
        currency in currency(),
        whole in 0..=MAX_UNITS,
        digits in "[0-9]{1,3}",
    ) {
        let places = currency.exponent() as usize;
        let text = format!("{whole}.{digits}");
        let kept: i64 = format!("{:0<places$}", &digits[..digits.len().min(places)])
            .parse()
            .unwrap_or(0);
        let excess_is_zero = digits.bytes().skip(places).all(|b| b == b'0');
        let minor = whole * 10_i64.pow(places as u32) + kept;
        let in_range = whole < MAX_UNITS || kept == 0;
        if excess_is_zero && in_range {
            prop_assert_eq!(Money::parse(&text, currency).map(|m| m.minor), Ok(minor));
        } else {
            prop_assert!(Money::parse(&text, currency).is_err(), "{} accepted", text);
        }
    }

    #[test]
    fn amounts_above_the_maximum_are_refused(currency in currency(), units in MAX_UNITS + 1..=i64::MAX / 10_000) {
        prop_assert!(Money::parse(&units.to_string(), currency).is_err());
    }

    #[test]
    fn negative_amounts_are_refused(currency in currency(), minor in 1..=MAX_MINOR) {
        prop_assert!(Money::parse(&format_minor(-minor, currency.exponent()), currency).is_err());
    }

    #[test]
    fn more_than_three_decimals_are_refused(currency in currency(), whole in 0..1_000_000_i64, frac in "[0-9]{4,6}") {
        let text = format!("{whole}.{frac}");
        prop_assert!(Money::parse(&text, currency).is_err(), "{} accepted", text);
    }
}

// ---- JSON merge patch --------------------------------------------------------------

/// JSON values over a few member names, so patches often touch members the target has.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1000_i64..1000).prop_map(Value::from),
        "[a-z]{0,4}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-d]", json_value(), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn patched(target: &Value, patch: &Value) -> Value {
    let mut out = target.clone();
    merge_patch(&mut out, patch);
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn applying_a_patch_twice_equals_applying_it_once(target in json_value(), patch in json_value()) {
        let once = patched(&target, &patch);
        prop_assert_eq!(patched(&once, &patch), once);
    }

    #[test]
    fn a_null_member_removes_the_member(target in json_object(), key in "[a-d]") {
        let mut patch = Map::new();
        patch.insert(key.clone(), Value::Null);
        let out = patched(&target, &Value::Object(patch));
        prop_assert!(out.get(&key).is_none());
        let mut expected = target.as_object().cloned().unwrap_or_default();
        expected.remove(&key);
        prop_assert_eq!(out, Value::Object(expected));
    }

    #[test]
    fn an_empty_object_patch_changes_nothing(target in json_object()) {
        prop_assert_eq!(patched(&target, &Value::Object(Map::new())), target);
    }

    #[test]
    fn members_not_in_the_patch_are_kept(target in json_object(), patch in json_object()) {
        let out = patched(&target, &patch);
        for (key, value) in target.as_object().into_iter().flatten() {
            if !patch.as_object().is_some_and(|p| p.contains_key(key)) {
                prop_assert_eq!(out.get(key), Some(value));
            }
        }
    }
}

// ---- percentile_cont ---------------------------------------------------------------

/// Sorted durations in whole seconds (what the reports feed it), at least one.
fn sorted_durations() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(0..1_000_000_000_u32, 1..40).prop_map(|v| {
        let mut v: Vec<f64> = v.into_iter().map(f64::from).collect();
        v.sort_by(f64::total_cmp);
        v
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn percentiles_are_monotone_in_p(values in sorted_durations(), p in 0.0..=1.0_f64, q in 0.0..=1.0_f64) {
        let (lo, hi) = if p <= q { (p, q) } else { (q, p) };
        let (a, b) = (percentile_cont(&values, lo).unwrap(), percentile_cont(&values, hi).unwrap());
        prop_assert!(a <= b, "p{} = {} > p{} = {}", lo, a, hi, b);
    }

    #[test]
    fn percentiles_lie_between_the_smallest_and_largest_value(values in sorted_durations(), p in 0.0..=1.0_f64) {
        let v = percentile_cont(&values, p).unwrap();
        prop_assert!(values[0] <= v && v <= values[values.len() - 1]);
        prop_assert_eq!(percentile_cont(&values, 0.0), Some(values[0]));
        prop_assert_eq!(percentile_cont(&values, 1.0), Some(values[values.len() - 1]));
    }

    #[test]
    fn the_percentile_of_one_value_is_that_value(value in 0..1_000_000_000_u32, p in 0.0..=1.0_f64) {
        let value = f64::from(value);
        prop_assert_eq!(percentile_cont(&[value], p), Some(value));
    }
}

#[test]
fn no_values_have_no_percentile() {
    assert_eq!(percentile_cont(&[], 0.5), None);
}

// ---- funnel ------------------------------------------------------------------------

/// Open stages s0…s{n-1}, then a won and a lost stage.
fn pipeline(open: usize) -> Vec<StageInfo> {
    let stage = |id: String, position: usize, kind: &str| StageInfo {
        name: id.to_uppercase(),
        id,
        position: position as i32,
        kind: StageKind::parse(kind).expect("a stage kind"),
    };
    let mut stages: Vec<StageInfo> = (0..open)
        .map(|i| stage(format!("s{i}"), i, "open"))
        .collect();
    stages.push(stage("won".into(), open, "won"));
    stages.push(stage("lost".into(), open + 1, "lost"));
    stages
}

/// Deals that entered the same stages (a bit mask by position), were lost from the same
/// stage (an index into the stages) or not, and how many they are.
type DealGroup = (i64, Option<usize>, i64);

/// A pipeline and groups of deals in it.
fn funnel_input() -> impl Strategy<Value = (Vec<StageInfo>, Vec<DealGroup>)> {
    (1..6_usize).prop_flat_map(|open| {
        let stages = open + 2;
        let group = (0..(1_i64 << stages), prop::option::of(0..stages), 1..20_i64);
        (Just(pipeline(open)), prop::collection::vec(group, 0..30))
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn funnel_counts_never_increase_along_the_stages((stages, groups) in funnel_input()) {
        let mut counts = Counts::default();
        for (mask, lost_from, n) in &groups {
            let lost_from = lost_from.map(|i| stages[i].id.clone()).unwrap_or_default();
            add_deals(&mut counts, &stages, *mask, &lost_from, *n);
        }
        let (total, steps, win_rate) = assemble(&stages, &counts);
        prop_assert_eq!(total, groups.iter().map(|(_, _, n)| n).sum::<i64>());
        prop_assert_eq!(steps.len(), stages.len() - 1, "every stage but the lost one");
        for pair in steps.windows(2) {
            prop_assert!(pair[1].reached_or_passed <= pair[0].reached_or_passed);
            prop_assert_eq!(pair[0].advanced, pair[1].reached_or_passed);
        }
        for step in &steps {
            prop_assert!(step.reached_or_passed <= total);
            prop_assert!(0 <= step.advanced && step.advanced <= step.reached_or_passed);
            if step.kind != "won" {
                prop_assert_eq!(step.drop_off, step.reached_or_passed - step.advanced);
            }
            if let Some(rate) = step.conversion_rate.value {
                prop_assert!((0.0..=1.0).contains(&rate), "{}: {}", step.name, rate);
            }
        }
        let won = steps.last().unwrap();
        prop_assert_eq!(won.kind.as_str(), "won");
        prop_assert_eq!(won.reached_or_passed, counts.won);
        prop_assert!(win_rate.value.is_none_or(|r| (0.0..=1.0).contains(&r)));
        prop_assert_eq!(win_rate.value.is_none(), total == 0);
    }
}
