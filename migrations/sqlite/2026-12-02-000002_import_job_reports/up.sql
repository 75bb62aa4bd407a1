-- A job's report is read back as a whole report: jobs that never reached a batch
-- (cancelled or broken off during the upload) held an empty object.
UPDATE import_jobs
   SET report = '{"created":0,"updated":0,"unchanged":0,"failed":0,"errors":[],"errors_truncated":false,"unknown_columns":[],"ignored_columns":[],"rows":0,"bytes":0,"dry_run":false,"file_error":null}'
 WHERE report = '{}';
