UPDATE opportunities SET amount_minor = (amount_minor + 5) / 10
 WHERE amount_minor IS NOT NULL AND currency IN ('BHD', 'IQD', 'JOD', 'KWD', 'LYD', 'OMR', 'TND');
UPDATE opportunities SET amount_minor = amount_minor * 100
 WHERE amount_minor IS NOT NULL AND currency IN ('BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG', 'RWF', 'UGX', 'UYI', 'VND', 'VUV', 'XAF', 'XOF', 'XPF');
ALTER TABLE deal_reach RENAME COLUMN amount_milli TO amount_minor;
UPDATE deal_reach SET amount_minor = (
    SELECT o.amount_minor FROM opportunities o WHERE o.id = deal_reach.opportunity_id);
