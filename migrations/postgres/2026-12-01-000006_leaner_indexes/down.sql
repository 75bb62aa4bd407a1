DROP INDEX IF EXISTS stage_transitions_opportunity_idx;
CREATE INDEX stage_transitions_opportunity_idx ON stage_transitions (opportunity_id, entered_at, id);
CREATE INDEX stage_transitions_pipeline_idx ON stage_transitions (pipeline_id, entered_at);

DROP INDEX IF EXISTS stage_stays_stage_idx;
CREATE INDEX stage_stays_pipeline_idx ON stage_stays (pipeline_id, stage_id, entered_at);
CREATE INDEX stage_stays_closed_idx ON stage_stays (pipeline_id, stage_id, seconds)
    INCLUDE (owner_id, entered_at, source, industry, company_size, region, tags)
    WHERE seconds IS NOT NULL;
CREATE INDEX stage_stays_activity_idx ON stage_stays (pipeline_id, stage_id)
    INCLUDE (owner_id, entered_at, seconds, advanced, first_call_after, first_email_after,
             first_meeting_after, first_demo_after, first_proposal_after, first_note_after,
             first_task_after);
