//! `codepipeline-local pull-request open|close|list`: pull requests on the repositories under
//! the server's `git_repos_dir` (see `connections::pull_requests`), through the running server.

use serde_json::{json, Value};

use super::args::Common;
use super::client::{endpoint, host_port, http, query};
use crate::admin::{HEALTH_PATH, PULL_REQUESTS_PATH};
use crate::config::Config;

/// What to do with pull requests.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum PullRequestCommand {
    /// Open a pull request from one branch into another (event OPEN).
    Open {
        /// The repository, as a FullRepositoryId (owner/name under git_repos_dir).
        repository: String,
        /// The branch it brings in.
        #[arg(long)]
        source: String,
        /// The branch it goes into.
        #[arg(long)]
        destination: String,
        /// Its title.
        #[arg(long, default_value = "")]
        title: String,
    },
    /// Close a pull request (event CLOSED).
    Close {
        /// The repository.
        repository: String,
        /// The pull request's number.
        number: u64,
    },
    /// List the pull requests of a repository (of every repository without one).
    List {
        /// The repository.
        repository: Option<String>,
    },
}

/// Runs a pull-request command against the server; the text to print.
pub fn run(common: &Common, command: &PullRequestCommand) -> Result<String, String> {
    let config = Config::load(
        common.config.as_deref(),
        std::env::vars(),
        &Default::default(),
    )?;
    let endpoint = endpoint(common, &config);
    let addr = host_port(&endpoint)?;
    if !matches!(http(&addr, "GET", HEALTH_PATH, &[], b""), Ok((200, _))) {
        return Err(format!(
            "pull requests are kept by the server: none answers at {endpoint}"
        ));
    }
    let json_type = [("Content-Type", "application/json")];
    let (status, body) = match command {
        PullRequestCommand::Open {
            repository,
            source,
            destination,
            title,
        } => {
            let body = json!({
                "repository": repository,
                "sourceBranch": source,
                "destinationBranch": destination,
                "title": title,
            });
            http(
                &addr,
                "POST",
                PULL_REQUESTS_PATH,
                &json_type,
                body.to_string().as_bytes(),
            )?
        }
        PullRequestCommand::Close { repository, number } => {
            let body = json!({"repository": repository, "pullRequestId": number});
            let path = format!("{PULL_REQUESTS_PATH}/close");
            http(
                &addr,
                "POST",
                &path,
                &json_type,
                body.to_string().as_bytes(),
            )?
        }
        PullRequestCommand::List { repository } => {
            let path = match repository {
                Some(r) => format!("{PULL_REQUESTS_PATH}?{}", query(&[("repository", Some(r))])),
                None => PULL_REQUESTS_PATH.to_string(),
            };
            http(&addr, "GET", &path, &[], b"")?
        }
    };
    let answer: Value = serde_json::from_slice(&body)
        .map_err(|_| format!("the server answered {status} with no JSON"))?;
    if status != 200 {
        return Err(answer["message"]
            .as_str()
            .unwrap_or("the server refused the request")
            .to_string());
    }
    if common.output == super::Output::Json {
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        ));
    }
    let rows: Vec<&Value> = match answer.get("pullRequest") {
        Some(one) => vec![one],
        None => answer["pullRequests"]
            .as_array()
            .into_iter()
            .flatten()
            .collect(),
    };
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let mut out = String::new();
    for pr in rows {
        let branch = |k: &str| text(pr, k).trim_start_matches("refs/heads/").to_string();
        out.push_str(&format!(
            "{} #{} {} {} -> {} {} {}\n",
            text(pr, "repository"),
            text(pr, "pullRequestId"),
            text(pr, "pullRequestStatus"),
            branch("sourceReference"),
            branch("destinationReference"),
            &text(pr, "sourceCommit")
                .chars()
                .take(12)
                .collect::<String>(),
            text(pr, "title"),
        ));
    }
    Ok(out)
}
