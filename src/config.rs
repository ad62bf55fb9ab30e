//! Configuration: defaults from `config/default.toml` (compiled in), then an optional file, then
//! `CODEPIPELINE_LOCAL_*` environment variables, then command-line flags.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The defaults, with a comment per key saying why it exists.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "CODEPIPELINE_LOCAL_";

/// The server's settings; see `config/default.toml` for what each is for.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub host: String,
    /// Port to listen on (0: any free port).
    pub port: u16,
    /// Where the data lives.
    pub data_dir: PathBuf,
    /// Region when a request names none.
    pub region: String,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Seconds a JSON or query request body may take to arrive.
    pub body_timeout_seconds: u64,
    /// HTTP workers; 0 means one per core.
    pub workers: usize,
    /// The engine that keeps the event log.
    pub engine: crate::eventstore::Engine,
    /// Storage page cache in MiB.
    pub cache_mb: u64,
    /// Idle seconds before a pipeline actor stops.
    pub actor_idle_seconds: u64,
    /// Seconds between checks for a new checkpoint (0: only at start-up and stop).
    pub checkpoint_interval_seconds: u64,
    /// Events recorded since the last checkpoint that make a new one worth writing.
    pub checkpoint_min_events: u64,
    /// Days a finished execution stays in the history (0: for ever).
    pub history_retention_days: f64,
    /// Whether CreatePipeline and UpdatePipeline check the pipeline's IAM role.
    pub iam_enforce_roles: bool,
    /// Whether CodeBuild builds run.
    pub run_builds: bool,
    /// Whether builds may run while the server listens beyond loopback.
    pub allow_builds_on_non_loopback: bool,
    /// Output kept per build, in bytes.
    pub build_log_max_bytes: u64,
    /// Seconds a custom or third-party action waits for its job worker.
    pub job_timeout_seconds: u64,
    /// Seconds a job of the Lambda invoke action waits for the function's result.
    pub lambda_job_timeout_seconds: u64,
    /// Seconds an idle Lambda instance is kept warm.
    pub lambda_idle_seconds: u64,
    /// Where the Git repositories of connection source actions are (empty: none).
    pub git_repos_dir: String,
    /// Milliseconds between two reads of the watched repositories' refs.
    pub source_poll_interval_ms: u64,
    /// Milliseconds CloudFormation's API waits for a stack operation it starts before it
    /// answers.
    pub cloudformation_answer_within_ms: u64,
    /// Entries one zip artifact may hold when an action unpacks it.
    pub zip_max_entries: usize,
    /// Bytes one zip artifact may unpack to.
    pub zip_max_bytes: u64,
    /// How many times its compressed size one zip entry may inflate to.
    pub zip_max_ratio: u64,
    /// An external S3 for pipeline objects; empty for the embedded one.
    pub s3_endpoint: String,
    /// Region to sign for on the external S3.
    pub s3_region: String,
    /// Access key id for the external S3.
    pub s3_access_key_id: String,
    /// Secret access key for the external S3.
    pub s3_secret_access_key: String,
}

/// Values given on the command line, which win over everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--host`.
    pub host: Option<String>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--git-repos-dir`.
    pub git_repos_dir: Option<PathBuf>,
}

impl Config {
    /// The defaults alone.
    pub fn defaults() -> Self {
        Self::load(None, std::iter::empty(), &Overrides::default()).expect("default.toml is valid")
    }

    /// Loads the layers in order. `env` is the process environment (passed in so tests can
    /// give their own).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Self, String> {
        let mut table: toml::Table = DEFAULT_TOML
            .parse()
            .map_err(|e| format!("config/default.toml: {e}"))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let user: toml::Table = text
                .parse()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            for (k, v) in user {
                if !table.contains_key(&k) {
                    return Err(format!("{}: unknown key '{k}'", path.display()));
                }
                table.insert(k, v);
            }
        }
        for (name, raw) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            let Some(default) = table.get(&key) else {
                continue;
            };
            let value = match default {
                toml::Value::Integer(_) => raw
                    .trim()
                    .parse::<i64>()
                    .map(toml::Value::Integer)
                    .map_err(|_| format!("{name}: expected a whole number, got '{raw}'"))?,
                toml::Value::Boolean(_) => raw
                    .trim()
                    .parse::<bool>()
                    .map(toml::Value::Boolean)
                    .map_err(|_| format!("{name}: expected true or false, got '{raw}'"))?,
                toml::Value::Float(_) => raw
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(toml::Value::Float)
                    .ok_or_else(|| format!("{name}: expected a number, got '{raw}'"))?,
                _ => toml::Value::String(raw),
            };
            table.insert(key, value);
        }
        let mut config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| format!("configuration: {e}"))?;
        if let Some(host) = &overrides.host {
            config.host = host.clone();
        }
        if let Some(port) = overrides.port {
            config.port = port;
        }
        if let Some(dir) = &overrides.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(dir) = &overrides.git_repos_dir {
            config.git_repos_dir = dir.to_string_lossy().into_owned();
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_bind_loopback_on_4566() {
        let c = Config::defaults();
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.port, 4566);
        assert_eq!(c.data_dir, PathBuf::from("data"));
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "port = 5000\nregion = \"eu-west-1\"\n").unwrap();
        let env = vec![
            ("CODEPIPELINE_LOCAL_PORT".to_string(), "6000".to_string()),
            (
                "CODEPIPELINE_LOCAL_DATA_DIR".to_string(),
                "/tmp/x".to_string(),
            ),
            ("UNRELATED".to_string(), "1".to_string()),
        ];
        let c = Config::load(Some(&file), env.clone(), &Overrides::default()).unwrap();
        assert_eq!((c.port, c.region.as_str()), (6000, "eu-west-1"));
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        let flags = Overrides {
            port: Some(7000),
            ..Default::default()
        };
        assert_eq!(Config::load(Some(&file), env, &flags).unwrap().port, 7000);
    }

    #[test]
    fn bad_values_and_unknown_keys_are_reported() {
        let env = vec![("CODEPIPELINE_LOCAL_PORT".to_string(), "many".to_string())];
        assert!(Config::load(None, env, &Overrides::default())
            .unwrap_err()
            .contains("CODEPIPELINE_LOCAL_PORT"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "prot = 1\n").unwrap();
        assert!(Config::load(Some(&file), vec![], &Overrides::default())
            .unwrap_err()
            .contains("unknown key 'prot'"));
    }
}
