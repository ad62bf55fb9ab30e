//! The arguments of the debugging commands, as clap parses them.

/// How the commands print.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq)]
pub enum Output {
    /// Aligned columns for people.
    #[default]
    Table,
    /// JSON for scripts.
    Json,
}

/// Where the history is read from, and how it is printed.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Common {
    /// The server to ask [default: http://HOST:PORT from the configuration].
    #[arg(long, global = true)]
    pub endpoint: Option<String>,
    /// Read this data dir directly (no server may hold it) [default: data_dir from the
    /// configuration, when no server answers].
    #[arg(long, global = true)]
    pub data_dir: Option<std::path::PathBuf>,
    /// The region of the pipelines [default: AWS_REGION, AWS_DEFAULT_REGION, or the
    /// configuration's region].
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// `table` or `json`.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// A TOML file with settings.
    #[arg(long, global = true)]
    pub config: Option<std::path::PathBuf>,
}

/// `history …`
#[derive(clap::Subcommand, Clone, Debug)]
pub enum HistoryCommand {
    /// Every pipeline, with its latest execution.
    Pipelines,
    /// A pipeline's executions, newest first.
    Executions {
        /// Pipeline name.
        pipeline: String,
        /// Only executions with this status (Succeeded, Failed, InProgress, Stopped, …).
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// A pipeline's action executions, newest first.
    Actions {
        /// Pipeline name.
        pipeline: String,
        /// Only those of this execution.
        #[arg(long)]
        execution: Option<String>,
        /// Only those in this stage.
        #[arg(long)]
        stage: Option<String>,
        /// Only those of this action.
        #[arg(long)]
        action: Option<String>,
        /// Only those with this status.
        #[arg(long)]
        status: Option<String>,
        /// Only those started within this long (`90s`, `30m`, `2h`, `7d`) or since this time
        /// (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

/// One of the debugging commands, parsed.
#[derive(Clone, Debug)]
pub enum Request {
    /// `history …`
    History(HistoryCommand),
    /// `replay ID [--at N|TIME]`
    Replay {
        /// Execution id.
        execution: String,
        /// An event sequence number or a time.
        at: Option<String>,
    },
    /// `rerun ID`
    Rerun {
        /// Execution id.
        execution: String,
    },
    /// `diff A B`
    Diff {
        /// First execution id.
        a: String,
        /// Second execution id.
        b: String,
    },
    /// `export ID`
    Export {
        /// Execution id.
        execution: String,
    },
}

/// `--since`: a duration back from now, or an RFC 3339 time; epoch seconds.
pub fn parse_since(s: &str) -> Result<f64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros() as f64 / 1e6);
    }
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: f64 = number.parse().map_err(|_| {
        format!("--since {s}: give a duration (90s, 30m, 2h, 7d) or an RFC 3339 time")
    })?;
    let seconds = match unit {
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(format!("--since {s}: the unit must be s, m, h or d")),
    };
    Ok(crate::aws::now_epoch() - seconds)
}
