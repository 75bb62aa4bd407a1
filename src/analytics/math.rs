//! The pure arithmetic of the reports: rates with their parts, percentiles by linear
//! interpolation (PostgreSQL's `percentile_cont`), and summary statistics.

use serde::Serialize;
use utoipa::ToSchema;

/// A ratio that keeps its parts, so a reader can check it and sum it across segments.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Rate {
    /// `numerator / denominator`, rounded to 4 decimals; null when the denominator is 0.
    pub value: Option<f64>,
    pub numerator: i64,
    pub denominator: i64,
}

impl Rate {
    pub fn of(numerator: i64, denominator: i64) -> Rate {
        let value = (denominator > 0).then(|| round4(numerator as f64 / denominator as f64));
        Rate {
            value,
            numerator,
            denominator,
        }
    }
}

pub fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The `p`-quantile (0 ≤ p ≤ 1) of sorted values, interpolating linearly between the
/// two nearest ranks exactly as PostgreSQL's `percentile_cont` does; `None` when empty.
pub fn percentile_cont(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 1.0);
    let rank = p * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let frac = rank - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// Count, mean, median, p90 and max of a set of durations (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema, Default)]
pub struct Summary {
    pub count: i64,
    pub avg: Option<f64>,
    pub median: Option<f64>,
    pub p90: Option<f64>,
    pub max: Option<f64>,
}

impl Summary {
    pub fn of(values: &mut [f64]) -> Summary {
        values.sort_by(f64::total_cmp);
        let count = values.len() as i64;
        Summary {
            count,
            avg: (count > 0).then(|| values.iter().sum::<f64>() / count as f64),
            median: percentile_cont(values, 0.5),
            p90: percentile_cont(values, 0.9),
            max: values.last().copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_keep_their_parts_and_handle_zero() {
        assert_eq!(
            Rate::of(1, 3),
            Rate {
                value: Some(0.3333),
                numerator: 1,
                denominator: 3
            }
        );
        assert_eq!(Rate::of(0, 0).value, None);
        assert_eq!(Rate::of(5, 5).value, Some(1.0));
    }

    #[test]
    fn percentiles_interpolate_like_postgres() {
        // SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM (VALUES (1),(2),(3),(4)) v(x) → 2.5
        assert_eq!(percentile_cont(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        // percentile_cont(0.9) over 1..4 → 3.7
        assert!((percentile_cont(&[1.0, 2.0, 3.0, 4.0], 0.9).unwrap() - 3.7).abs() < 1e-9);
        assert_eq!(
            percentile_cont(&[7.0], 0.9),
            Some(7.0),
            "a single value is every percentile"
        );
        assert_eq!(
            percentile_cont(&[], 0.5),
            None,
            "an empty stage has no percentile"
        );
        assert_eq!(percentile_cont(&[1.0, 10.0], 0.0), Some(1.0));
        assert_eq!(percentile_cont(&[1.0, 10.0], 1.0), Some(10.0));
    }

    #[test]
    fn summaries_sort_their_input() {
        let s = Summary::of(&mut [30.0, 10.0, 20.0]);
        assert_eq!(
            (s.count, s.avg, s.median, s.max),
            (3, Some(20.0), Some(20.0), Some(30.0))
        );
        assert_eq!(s.p90, Some(28.0));
        assert_eq!(Summary::of(&mut []), Summary::default());
    }
}
