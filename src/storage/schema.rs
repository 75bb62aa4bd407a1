// The one schema both backends share. Types are limited to what diesel maps on
// PostgreSQL and SQLite alike: timestamps are UTC `Timestamp`, JSON lists are `Text`.

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    server_settings (key) {
        key -> Text,
        value -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

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
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    teams (id) {
        id -> Uid,
        name -> Text,
        manager_id -> Nullable<Uid>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Nullable<Uid>,
        updated_by -> Nullable<Uid>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    users (id) {
        id -> Uid,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        role -> Text,
        team_id -> Nullable<Uid>,
        active -> Bool,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Nullable<Uid>,
        updated_by -> Nullable<Uid>,
        token_generation -> Integer,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    api_keys (id) {
        id -> Uid,
        name -> Text,
        prefix -> Text,
        secret_hash -> Text,
        scopes -> Text,
        user_id -> Uid,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    pipelines (id) {
        id -> Uid,
        name -> Text,
        description -> Nullable<Text>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Nullable<Uid>,
        updated_by -> Nullable<Uid>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    stages (id) {
        id -> Uid,
        pipeline_id -> Uid,
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
        created_by -> Nullable<Uid>,
        updated_by -> Nullable<Uid>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

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
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    leads (id) {
        id -> Uid,
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
        owner_id -> Uid,
        next_follow_up_at -> Nullable<Timestamp>,
        last_activity_at -> Nullable<Timestamp>,
        external_id -> Nullable<Text>,
        custom -> Text,
        converted_at -> Nullable<Timestamp>,
        converted_opportunity_id -> Nullable<Uid>,
        disqualified_reason -> Nullable<Text>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Nullable<Uid>,
        updated_by -> Nullable<Uid>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    accounts (id) {
        id -> Uid,
        name -> Text,
        industry -> Nullable<Text>,
        company_size -> Nullable<Text>,
        region -> Nullable<Text>,
        website -> Nullable<Text>,
        owner_id -> Uid,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Nullable<Uid>,
        updated_by -> Nullable<Uid>,
        external_id -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    contacts (id) {
        id -> Uid,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        email -> Nullable<Text>,
        phone -> Nullable<Text>,
        account_id -> Nullable<Uid>,
        owner_id -> Uid,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Nullable<Uid>,
        updated_by -> Nullable<Uid>,
        external_id -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    loss_reasons (id) {
        id -> Text,
        label -> Text,
        active -> Bool,
        position -> Integer,
        created_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    opportunities (id) {
        id -> Uid,
        name -> Text,
        pipeline_id -> Uid,
        stage_id -> Uid,
        status -> Text,
        amount_minor -> Nullable<BigInt>,
        currency -> Text,
        probability -> Nullable<Integer>,
        expected_close_date -> Nullable<Date>,
        account_id -> Nullable<Uid>,
        contact_id -> Nullable<Uid>,
        lead_id -> Nullable<Uid>,
        owner_id -> Uid,
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
        created_by -> Nullable<Uid>,
        updated_by -> Nullable<Uid>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    stage_transitions (id) {
        id -> Uid,
        opportunity_id -> Uid,
        pipeline_id -> Uid,
        from_stage_id -> Nullable<Uid>,
        to_stage_id -> Uid,
        entered_at -> Timestamp,
        actor_id -> Nullable<Uid>,
        channel -> Text,
        note -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    activities (id) {
        id -> Uid,
        #[sql_name = "type"]
        type_ -> Text,
        subject -> Text,
        body -> Nullable<Text>,
        lead_id -> Nullable<Uid>,
        opportunity_id -> Nullable<Uid>,
        due_at -> Nullable<Timestamp>,
        completed_at -> Nullable<Timestamp>,
        outcome -> Nullable<Text>,
        owner_id -> Uid,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Nullable<Uid>,
        updated_by -> Nullable<Uid>,
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
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    forecast_snapshots (id) {
        id -> Uid,
        name -> Text,
        period -> Text,
        scope -> Text,
        rows -> Text,
        created_at -> Timestamp,
        created_by -> Uid,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    import_jobs (id) {
        id -> Uid,
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
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    import_chunks (job_id, seq) {
        job_id -> Uid,
        seq -> Integer,
        data -> Binary,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    import_rejects (job_id, row_number) {
        job_id -> Uid,
        row_number -> BigInt,
        cells -> Text,
        error -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    capture_sources (id) {
        id -> Uid,
        name -> Text,
        kind -> Text,
        public_key -> Text,
        field_map -> Text,
        constants -> Text,
        default_source -> Text,
        source_detail -> Nullable<Text>,
        owner_id -> Nullable<Uid>,
        team_id -> Nullable<Uid>,
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
        created_by -> Uid,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    capture_receipts (source_id, fingerprint) {
        source_id -> Uid,
        fingerprint -> Text,
        lead_id -> Nullable<Uid>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    webhook_subscriptions (id) {
        id -> Uid,
        url -> Text,
        description -> Nullable<Text>,
        events -> Text,
        pipeline_id -> Nullable<Uid>,
        to_stage_id -> Nullable<Uid>,
        owner_id -> Nullable<Uid>,
        team_id -> Nullable<Uid>,
        secret -> Text,
        active -> Bool,
        disabled_reason -> Nullable<Text>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Uid,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

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
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    webhook_deliveries (id) {
        id -> Uid,
        subscription_id -> Uid,
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
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    webhook_attempts (delivery_id, attempt) {
        delivery_id -> Uid,
        attempt -> Integer,
        attempted_at -> Timestamp,
        response_status -> Nullable<Integer>,
        latency_ms -> Integer,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::storage::uid::Uid;

    stall_notices (opportunity_id, stage_entered_at) {
        opportunity_id -> Uid,
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
