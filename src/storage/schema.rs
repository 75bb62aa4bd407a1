// The one schema both backends share. Types are limited to what diesel maps on
// PostgreSQL and SQLite alike: timestamps are UTC `Timestamp`, JSON lists are `Text`.

diesel::table! {
    server_settings (key) {
        key -> Text,
        value -> Text,
    }
}

diesel::table! {
    idempotency_keys (scope, key) {
        scope -> Text,
        key -> Text,
        request_hash -> Text,
        status -> Nullable<Integer>,
        content_type -> Nullable<Text>,
        location -> Nullable<Text>,
        etag -> Nullable<Text>,
        body -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    teams (id) {
        id -> Text,
        name -> Text,
        manager_id -> Nullable<Text>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Nullable<Text>,
        updated_by -> Nullable<Text>,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        role -> Text,
        team_id -> Nullable<Text>,
        active -> Bool,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Nullable<Text>,
        updated_by -> Nullable<Text>,
        token_generation -> Integer,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        name -> Text,
        prefix -> Text,
        secret_hash -> Text,
        scopes -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    pipelines (id) {
        id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Nullable<Text>,
        updated_by -> Nullable<Text>,
    }
}

diesel::table! {
    stages (id) {
        id -> Text,
        pipeline_id -> Text,
        name -> Text,
        position -> Integer,
        probability -> Integer,
        kind -> Text,
        stalled_after_days -> Nullable<Integer>,
        required_fields -> Text,
        exit_criteria -> Text,
        suggested_actions -> Text,
        next_action_within_days -> Nullable<Integer>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Nullable<Text>,
        updated_by -> Nullable<Text>,
    }
}

diesel::table! {
    scoring_rules (id) {
        id -> Text,
        position -> Integer,
        field -> Text,
        value -> Text,
        points -> Integer,
        label -> Text,
    }
}

diesel::table! {
    leads (id) {
        id -> Text,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        email -> Nullable<Text>,
        phone -> Nullable<Text>,
        company -> Nullable<Text>,
        job_title -> Nullable<Text>,
        industry -> Nullable<Text>,
        company_size -> Nullable<Text>,
        region -> Nullable<Text>,
        country -> Nullable<Text>,
        source -> Text,
        source_detail -> Nullable<Text>,
        interest -> Nullable<Text>,
        status -> Text,
        bant -> Text,
        score -> Integer,
        score_breakdown -> Text,
        tags -> Text,
        owner_id -> Text,
        next_follow_up_at -> Nullable<Timestamp>,
        last_activity_at -> Nullable<Timestamp>,
        external_id -> Nullable<Text>,
        custom -> Text,
        converted_at -> Nullable<Timestamp>,
        converted_opportunity_id -> Nullable<Text>,
        disqualified_reason -> Nullable<Text>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Nullable<Text>,
        updated_by -> Nullable<Text>,
    }
}

diesel::table! {
    accounts (id) {
        id -> Text,
        name -> Text,
        industry -> Nullable<Text>,
        company_size -> Nullable<Text>,
        region -> Nullable<Text>,
        website -> Nullable<Text>,
        owner_id -> Text,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Nullable<Text>,
        updated_by -> Nullable<Text>,
        external_id -> Nullable<Text>,
    }
}

diesel::table! {
    contacts (id) {
        id -> Text,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        email -> Nullable<Text>,
        phone -> Nullable<Text>,
        account_id -> Nullable<Text>,
        owner_id -> Text,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Nullable<Text>,
        updated_by -> Nullable<Text>,
        external_id -> Nullable<Text>,
    }
}

diesel::table! {
    loss_reasons (id) {
        id -> Text,
        label -> Text,
        active -> Bool,
        position -> Integer,
        created_at -> Timestamp,
    }
}

diesel::table! {
    opportunities (id) {
        id -> Text,
        name -> Text,
        pipeline_id -> Text,
        stage_id -> Text,
        status -> Text,
        amount_minor -> Nullable<BigInt>,
        currency -> Text,
        probability -> Nullable<Integer>,
        expected_close_date -> Nullable<Date>,
        account_id -> Nullable<Text>,
        contact_id -> Nullable<Text>,
        lead_id -> Nullable<Text>,
        owner_id -> Text,
        source -> Nullable<Text>,
        industry -> Nullable<Text>,
        company_size -> Nullable<Text>,
        region -> Nullable<Text>,
        tags -> Text,
        next_action_text -> Nullable<Text>,
        next_action_due_at -> Nullable<Timestamp>,
        lost_reason_id -> Nullable<Text>,
        lost_note -> Nullable<Text>,
        stage_entered_at -> Timestamp,
        last_activity_at -> Nullable<Timestamp>,
        closed_at -> Nullable<Timestamp>,
        external_id -> Nullable<Text>,
        custom -> Text,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Nullable<Text>,
        updated_by -> Nullable<Text>,
    }
}

diesel::table! {
    stage_transitions (id) {
        id -> Text,
        opportunity_id -> Text,
        pipeline_id -> Text,
        from_stage_id -> Nullable<Text>,
        to_stage_id -> Text,
        entered_at -> Timestamp,
        actor_id -> Nullable<Text>,
        channel -> Text,
        note -> Nullable<Text>,
    }
}

diesel::table! {
    activities (id) {
        id -> Text,
        #[sql_name = "type"]
        type_ -> Text,
        subject -> Text,
        body -> Nullable<Text>,
        lead_id -> Nullable<Text>,
        opportunity_id -> Nullable<Text>,
        due_at -> Nullable<Timestamp>,
        completed_at -> Nullable<Timestamp>,
        outcome -> Nullable<Text>,
        owner_id -> Text,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Nullable<Text>,
        updated_by -> Nullable<Text>,
    }
}

diesel::joinable!(users -> teams (team_id));
diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(stages -> pipelines (pipeline_id));
diesel::joinable!(opportunities -> stages (stage_id));
diesel::joinable!(contacts -> accounts (account_id));

diesel::allow_tables_to_appear_in_same_query!(
    server_settings,
    teams,
    users,
    api_keys,
    pipelines,
    stages,
    scoring_rules,
    leads,
    accounts,
    contacts,
    loss_reasons,
    opportunities,
    stage_transitions,
    activities,
);

diesel::table! {
    forecast_snapshots (id) {
        id -> Text,
        name -> Text,
        period -> Text,
        scope -> Text,
        rows -> Text,
        created_at -> Timestamp,
        created_by -> Text,
    }
}

diesel::table! {
    import_jobs (id) {
        id -> Text,
        kind -> Text,
        format -> Text,
        options -> Text,
        signer -> Text,
        state -> Text,
        bytes_total -> BigInt,
        rows_done -> BigInt,
        report -> Text,
        header -> Text,
        error -> Nullable<Text>,
        worker -> Nullable<Text>,
        heartbeat_at -> Nullable<Timestamp>,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    import_chunks (job_id, seq) {
        job_id -> Text,
        seq -> Integer,
        data -> Binary,
    }
}

diesel::table! {
    import_rejects (job_id, row_number) {
        job_id -> Text,
        row_number -> BigInt,
        cells -> Text,
        error -> Text,
    }
}

diesel::table! {
    capture_sources (id) {
        id -> Text,
        name -> Text,
        kind -> Text,
        public_key -> Text,
        field_map -> Text,
        constants -> Text,
        default_source -> Text,
        source_detail -> Nullable<Text>,
        owner_id -> Nullable<Text>,
        team_id -> Nullable<Text>,
        round_robin_next -> BigInt,
        dedupe_on -> Text,
        allowed_origins -> Text,
        redirect_url -> Nullable<Text>,
        honeypot_field -> Nullable<Text>,
        min_submit_seconds -> Integer,
        rate_limit_per_minute -> Integer,
        secret -> Nullable<Text>,
        previous_secret -> Nullable<Text>,
        previous_secret_until -> Nullable<Timestamp>,
        active -> Bool,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Text,
    }
}

diesel::table! {
    capture_receipts (source_id, fingerprint) {
        source_id -> Text,
        fingerprint -> Text,
        lead_id -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_subscriptions (id) {
        id -> Text,
        url -> Text,
        description -> Nullable<Text>,
        events -> Text,
        pipeline_id -> Nullable<Text>,
        to_stage_id -> Nullable<Text>,
        owner_id -> Nullable<Text>,
        team_id -> Nullable<Text>,
        secret -> Text,
        active -> Bool,
        disabled_reason -> Nullable<Text>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Text,
    }
}

diesel::table! {
    webhook_events (seq) {
        seq -> BigInt,
        id -> Text,
        event_type -> Text,
        record_id -> Text,
        occurred_at -> Timestamp,
        payload -> Text,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        subscription_id -> Text,
        event_seq -> BigInt,
        record_id -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Nullable<Timestamp>,
        locked_until -> Nullable<Timestamp>,
        response_status -> Nullable<Integer>,
        latency_ms -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webhook_attempts (delivery_id, attempt) {
        delivery_id -> Text,
        attempt -> Integer,
        attempted_at -> Timestamp,
        response_status -> Nullable<Integer>,
        latency_ms -> Integer,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    stall_notices (opportunity_id, stage_entered_at) {
        opportunity_id -> Text,
        stage_entered_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    webhook_deliveries,
    webhook_events,
    webhook_subscriptions
);
diesel::allow_tables_to_appear_in_same_query!(stall_notices, opportunities);
diesel::allow_tables_to_appear_in_same_query!(stall_notices, stages);
