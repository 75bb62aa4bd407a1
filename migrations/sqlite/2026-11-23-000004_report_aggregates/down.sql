DELETE FROM server_settings WHERE key = 'report_aggregates';
DROP TABLE stage_stays;
DROP TABLE deal_reach;
