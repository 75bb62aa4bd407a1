//! The bookkeeping columns every owned record carries: `version`, `updated_at`,
//! `updated_by`.

use chrono::NaiveDateTime;

/// Rows that carry the standard bookkeeping columns.
pub trait Stamped {
    fn version(&self) -> i32;
    /// The next version of the row, changed by `actor` at `now`.
    fn stamp_next(&mut self, actor: &str, now: NaiveDateTime);
}

macro_rules! stamped {
    ($($t:ty),*) => {$(
        impl Stamped for $t {
            fn version(&self) -> i32 {
                self.version
            }
            fn stamp_next(&mut self, actor: &str, now: NaiveDateTime) {
                self.version += 1;
                self.updated_at = now;
                self.updated_by = Some(actor.to_owned());
            }
        }
    )*};
}
stamped!(
    super::accounts::AccountRow,
    super::accounts::ContactRow,
    super::leads::LeadRow,
    super::opportunities::OpportunityRow,
    super::activities::ActivityRow
);
