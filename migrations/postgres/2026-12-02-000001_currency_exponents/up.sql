-- Amounts are kept in each currency's own minor unit (ISO 4217): currencies without
-- decimals (JPY, KRW, ...) in whole units, three-decimal ones (KWD, BHD, ...) in
-- thousandths; until now every currency was kept in hundredths. Fractions of a yen
-- round half up.
UPDATE opportunities SET amount_minor = (amount_minor + 50) / 100
 WHERE amount_minor IS NOT NULL AND currency IN ('BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG', 'RWF', 'UGX', 'UYI', 'VND', 'VUV', 'XAF', 'XOF', 'XPF');
UPDATE opportunities SET amount_minor = amount_minor * 10
 WHERE amount_minor IS NOT NULL AND currency IN ('BHD', 'IQD', 'JOD', 'KWD', 'LYD', 'OMR', 'TND');

-- The reports' per-deal summary sums amounts of all currencies as written, so it keeps
-- them on one scale: thousandths of a unit.
ALTER TABLE deal_reach RENAME COLUMN amount_minor TO amount_milli;
UPDATE deal_reach SET amount_milli = (
    SELECT o.amount_minor * CASE WHEN o.currency IN ('BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG', 'RWF', 'UGX', 'UYI', 'VND', 'VUV', 'XAF', 'XOF', 'XPF') THEN 1000
                                 WHEN o.currency IN ('BHD', 'IQD', 'JOD', 'KWD', 'LYD', 'OMR', 'TND') THEN 1 ELSE 10 END
      FROM opportunities o WHERE o.id = deal_reach.opportunity_id);
