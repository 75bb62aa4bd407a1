DROP TABLE import_rejects;
DROP TABLE import_chunks;
DROP TABLE import_jobs;
