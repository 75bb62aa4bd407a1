//! What the benchmarks share: a fresh (or, with `--reuse`, the kept) database per backend.

#[allow(dead_code)]
pub mod baselines;

use diesel::prelude::*;

/// The URL of the benchmark database `name` for `n` records: a SQLite file in the temp
/// directory, or a database on the PostgreSQL server of STAGEFLOW_TEST_PG_URL (default
/// postgres://postgres@127.0.0.1:5432/postgres). Without `reuse` it starts empty.
pub fn database_url(backend: &str, name: &str, n: usize, reuse: bool) -> String {
    match backend {
        "sqlite" => {
            let path = std::env::temp_dir().join(format!("{}-{n}.db", name.replace('_', "-")));
            if !reuse {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            format!("sqlite://{}", path.display())
        }
        _ => {
            let admin = std::env::var("STAGEFLOW_TEST_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let name = format!("{name}_{n}");
            let mut conn = PgConnection::establish(&admin).expect("PostgreSQL reachable");
            if !reuse {
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .expect("drop");
            }
            let _ = diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn);
            let base = admin
                .rsplit_once('/')
                .map(|(b, _)| b.to_owned())
                .unwrap_or(admin);
            format!("{base}/{name}")
        }
    }
}

/// The flags both benchmarks take.
#[derive(clap::Args)]
pub struct Common {
    /// The database(s) to measure.
    #[arg(long, value_enum, default_value_t = Backends::Both)]
    pub backend: Backends,
    /// Keep an already loaded database of the same size instead of regenerating it.
    #[arg(long)]
    pub reuse: bool,
    /// `cargo bench` passes it to every benchmark; it changes nothing.
    #[arg(long = "bench", hide = true)]
    _bench: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Backends {
    Sqlite,
    Postgres,
    Both,
}

impl Common {
    /// The backends `--backend` names, in the order they are measured.
    pub fn backends(&self) -> Vec<&'static str> {
        match self.backend {
            Backends::Sqlite => vec!["sqlite"],
            Backends::Postgres => vec!["postgres"],
            Backends::Both => vec!["sqlite", "postgres"],
        }
    }
}
