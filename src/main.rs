//! The `stageflow` command: `serve` (default), `migrate`, `create-user`, `openapi`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stageflow::config::Settings;
use stageflow::domain::user::{check_password, Email, Role};
use stageflow::domain::Problems;
use stageflow::startup::{self, error_chain, Bootstrap, StartupError};
use stageflow::{storage, telemetry};

#[derive(Parser)]
#[command(name = "stageflow", version, about = "Sales-pipeline (CRM) backend")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create a user.
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long, env = "STAGEFLOW_NEW_USER_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, value_parser = ["admin", "manager", "rep"])]
        role: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Generate synthetic pipeline data (teams, three pipelines, opportunities with their
    /// stage log, activities, leads) for demos and benchmarks.
    DemoData {
        #[arg(long, default_value_t = 10_000)]
        opportunities: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Import a CSV, NDJSON or JSON file into the configured database, through the same
    /// checks as the API, with a progress bar; prints the report as JSON.
    Import {
        /// The file (`-` reads standard input).
        file: String,
        #[arg(long, value_parser = ["leads", "accounts", "contacts", "opportunities"])]
        kind: String,
        /// Check every row and report, writing nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, default_value = "create", value_parser = ["create", "upsert"])]
        mode: String,
        #[arg(long, default_value = "external_id", value_parser = ["external_id", "email"])]
        match_on: String,
        /// `csv`, `ndjson` or `json`; by default from the file's extension.
        #[arg(long, value_parser = ["csv", "ndjson", "json"])]
        format: Option<String>,
        /// The user the rows are written as (owner by default, visibility, the log's
        /// actor); by default the oldest active admin.
        #[arg(long = "as")]
        as_user: Option<String>,
    },
    /// Print the OpenAPI document (regenerate the committed copy with
    /// `cargo run -- openapi > openapi/openapi.json`).
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        print!("{}", stageflow::http::openapi::document());
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    telemetry::init(&settings);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Migrate => storage::connect(&settings.database_url, 1)
            .map(|_| println!("migrations are up to date"))
            .map_err(StartupError::from),
        Command::CreateUser {
            email,
            password,
            role,
            name,
        } => create_user(settings, &email, &password, &role, &name),
        Command::DemoData {
            opportunities,
            seed,
        } => demo_data(settings, opportunities, seed),
        Command::Import {
            file,
            kind,
            dry_run,
            mode,
            match_on,
            format,
            as_user,
        } => import(
            settings, &file, &kind, dry_run, &mode, &match_on, format, as_user,
        ),
        Command::Openapi => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&error_chain(&e)),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("stageflow: {message}");
    ExitCode::FAILURE
}

/// Says what the first-start rule did; a generated password is printed once, to the
/// terminal only, never logged.
fn announce(outcome: Bootstrap) {
    match outcome {
        Bootstrap::AlreadyHasUsers => {}
        Bootstrap::Created { email } => {
            tracing::info!(%email, "created the first admin");
            println!(
                "  Created admin {email}; sign in with the password from STAGEFLOW_ADMIN_PASSWORD."
            );
        }
        Bootstrap::Generated { email, password } => {
            println!("\n  First start: created admin {email} with password {password}\n  Sign in with POST /api/v1/auth/token and change it.\n");
        }
    }
}

fn serve(settings: Settings) -> Result<(), StartupError> {
    let state = startup::build_state(settings)?;
    announce(startup::bootstrap_admin(&state)?);
    actix_web::rt::System::new()
        .block_on(startup::serve(state))
        .map_err(StartupError::Serve)
}

fn create_user(
    settings: Settings,
    email: &str,
    password: &str,
    role: &str,
    name: &str,
) -> Result<(), StartupError> {
    let email = Email::parse(email).map_err(|m| StartupError::Argument(format!("--email {m}")))?;
    let mut p = Problems::default();
    check_password(&mut p, "password", password);
    if let Some(e) = p.0.first() {
        return Err(StartupError::Argument(format!("--password {}", e.message)));
    }
    let role = Role::parse(role)
        .ok_or_else(|| StartupError::Argument("--role must be admin, manager or rep".into()))?;
    let (pool, _) = storage::connect(&settings.database_url, 1)?;
    let mut conn = pool.get().map_err(StartupError::Pool)?;
    let name = if name.is_empty() {
        email.as_str()
    } else {
        name
    };
    startup::create_user(&mut conn, email.as_str(), password, name, role)
        .map_err(StartupError::CreateUser)?;
    println!("created {} {}", role.as_str(), email.as_str());
    Ok(())
}

fn demo_data(settings: Settings, opportunities: usize, seed: u64) -> Result<(), StartupError> {
    let (pool, _) = storage::connect(&settings.database_url, 1)?;
    let mut conn = pool.get().map_err(StartupError::Pool)?;
    // The admin first: once demo users exist, the server's first-start rule no longer
    // applies, and the configured admin would never be created.
    announce(startup::ensure_admin(&mut conn, &settings)?);
    let opts = stageflow::demo::DemoOptions {
        opportunities,
        seed,
    };
    let s = stageflow::demo::generate(&mut conn, &opts, &mut std::io::stdout())
        .map_err(StartupError::DemoData)?;
    println!(
        "generated {} opportunities ({} won, {} lost), {} stage transitions, {} activities, {} leads, {} users, {} pipelines in {:.1} s",
        s.opportunities, s.won, s.lost, s.transitions, s.activities, s.leads, s.users, s.pipelines, s.seconds
    );
    println!("demo users sign in as rep00@demo.example … rep49@demo.example with password demo-password-123");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn import(
    settings: Settings,
    file: &str,
    kind: &str,
    dry_run: bool,
    mode: &str,
    match_on: &str,
    format: Option<String>,
    as_user: Option<String>,
) -> Result<(), StartupError> {
    use stageflow::imports::{self, reader, Kind, MatchOn, Mode, Options};
    let arg = |m: String| StartupError::Argument(m);
    let format = match format.as_deref() {
        Some("csv") => reader::Format::Csv,
        Some("ndjson") => reader::Format::Ndjson,
        Some(_) => reader::Format::JsonArray,
        None => reader::Format::of_file_name(file)
            .ok_or_else(|| arg(format!("cannot tell the format of {file}; use --format")))?,
    };
    let (body, size): (Box<dyn std::io::Read>, u64) = if file == "-" {
        (Box::new(std::io::stdin()), 0)
    } else {
        let f = std::fs::File::open(file).map_err(|e| arg(format!("{file}: {e}")))?;
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(f), size)
    };
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let body: Box<dyn std::io::Read> = Box::new(bar.wrap_read(body));
    let options = Options {
        kind: Kind::parse(kind).ok_or_else(|| arg(format!("--kind {kind}")))?,
        mode: if mode == "upsert" {
            Mode::Upsert
        } else {
            Mode::Create
        },
        match_on: if match_on == "email" {
            MatchOn::Email
        } else {
            MatchOn::ExternalId
        },
        dry_run,
        default_currency: settings.default_currency.clone(),
    };
    let (pool, _) = storage::connect(&settings.database_url, 2)?;
    let mut conn = pool.get().map_err(StartupError::Pool)?;
    // A fresh database gets its first admin, as on the server's first start; the
    // report alone goes to standard output.
    match startup::ensure_admin(&mut conn, &settings)? {
        Bootstrap::AlreadyHasUsers => {}
        Bootstrap::Created { email } => eprintln!("created admin {email}"),
        Bootstrap::Generated { email, password } => {
            eprintln!("First start: created admin {email} with password {password}")
        }
    }
    let caller =
        startup::acting_user(&mut conn, as_user.as_deref()).map_err(StartupError::Import)?;
    let records = reader::open(format, body)
        .map_err(|e| arg(format!("{file}: {} ({})", e.message, e.code)))?;
    let started = std::time::Instant::now();
    let mut progress = imports::Progress(|report: &imports::Report| {
        bar.set_message(format!(
            "{} rows: {} created, {} updated, {} unchanged, {} failed",
            report.rows, report.created, report.updated, report.unchanged, report.failed
        ));
    });
    let report = imports::run(&mut conn, &caller, &options, records, 0, &mut progress)
        .map_err(StartupError::Import)?;
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    eprintln!(
        "{} rows in {:.1} s ({:.0} rows/s): {} created, {} updated, {} unchanged, {} failed{}",
        report.rows,
        seconds,
        report.rows as f64 / seconds.max(1e-9),
        report.created,
        report.updated,
        report.unchanged,
        report.failed,
        if dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    );
    Ok(())
}
