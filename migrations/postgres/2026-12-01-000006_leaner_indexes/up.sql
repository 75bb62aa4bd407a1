-- Fewer, denser indexes on the two largest tables (see docs/decisions.md, "Indexes
-- earn their bytes"). Every report variant keeps its index path:
-- - the closed-stays index (durations) and the activity index (activity effectiveness)
--   become one index of every stay by pipeline, stage and length, with what both
--   reports read alongside; durations read its closed range (`seconds IS NOT NULL`);
-- - the stays' (pipeline, stage, entry time) index served nothing the entry-time and
--   stage indexes do not;
-- - the stage log is read per deal (one deal's few entries, sorted in memory) and in
--   entry order for exports, so it keeps a deduplicated index on the deal and the
--   entry-time index, which a pipeline-filtered export also walks.
DROP INDEX IF EXISTS stage_stays_closed_idx;
DROP INDEX IF EXISTS stage_stays_activity_idx;
DROP INDEX IF EXISTS stage_stays_pipeline_idx;
CREATE INDEX stage_stays_stage_idx ON stage_stays (pipeline_id, stage_id, seconds)
    INCLUDE (owner_id, entered_at, advanced, first_call_after, first_email_after,
             first_meeting_after, first_demo_after, first_proposal_after, first_note_after,
             first_task_after, source, industry, company_size, region, tags);

DROP INDEX IF EXISTS stage_transitions_pipeline_idx;
DROP INDEX IF EXISTS stage_transitions_opportunity_idx;
CREATE INDEX stage_transitions_opportunity_idx ON stage_transitions (opportunity_id);
