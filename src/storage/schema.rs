// The one schema both backends share. Types are limited to what diesel maps on
// PostgreSQL and SQLite alike: timestamps are UTC `Timestamp`, JSON lists are `Text`.

diesel::table! {
    server_settings (key) {
        key -> Text,
        value -> Text,
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

diesel::joinable!(users -> teams (team_id));
diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(stages -> pipelines (pipeline_id));

diesel::allow_tables_to_appear_in_same_query!(
    server_settings,
    teams,
    users,
    api_keys,
    pipelines,
    stages
);
