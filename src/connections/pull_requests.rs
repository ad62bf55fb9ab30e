//! Pull requests on the repositories under `git_repos_dir`, for the pull-request filters of V2
//! triggers. A Git repository has no pull requests of its own, and a connection's provider
//! (GitHub, GitLab, Bitbucket) is not reached from here, so a pull request is opened and closed
//! on this server — `codepipeline-local pull-request open|close|list`, or the admin route
//! [`PATH`] — and is then what a provider's would be to a pipeline: **OPEN** when it is
//! opened, **UPDATED** when its source branch moves while it is open (a commit, a push, a
//! rebase), **CLOSED** when it is closed (merged or not: merging is Git's business). The source
//! watch turns those into executions of the pipelines whose trigger selects them, with the
//! source branch's commit as the revision.
//!
//! Pull requests are kept in the log (one stream, `pullrequests:local:git`), numbered from 1
//! per repository.
//!
//! # LIMITATIONS
//! - There are no reviews, comments, approvals or merges: a pull request is its source and
//!   destination branches and whether it is open.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::codepipeline::actions::{git, repository_dir};
use crate::eventstore::{EventStore, EventType};
use crate::regional::{Regional, RegionalFailure};

/// The admin route of pull requests: `GET ?repository=` lists, `POST` opens, `POST …/close`
/// closes.
pub const PATH: &str = "/_codepipeline_local/pull-requests";

/// The prefix of the pull requests' stream.
pub const STREAM_PREFIX: &str = "pullrequests:";

/// The scope of the one stream: the repositories are this machine's, not an account's.
const SCOPE: (&str, &str) = ("local", "git");

/// How many pull requests a repository may have (open and closed), so that a loop that opens
/// them cannot grow the state without bound.
pub const MAX_PER_REPOSITORY: usize = 10_000;

/// A pull request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullRequest {
    /// Its number in its repository.
    pub number: u64,
    /// Its title.
    pub title: String,
    /// The branch it brings in.
    pub source: String,
    /// The branch it goes into.
    pub destination: String,
    /// The source branch's commit when it was opened, or closed.
    pub commit: String,
    /// Whether it is open.
    pub open: bool,
    /// When it was opened.
    pub created: f64,
}

impl PullRequest {
    /// Its JSON form, in the words of CodeCommit's `PullRequest`.
    pub fn to_json(&self, repository: &str) -> Value {
        json!({
            "repository": repository,
            "pullRequestId": self.number.to_string(),
            "title": self.title,
            "sourceReference": format!("refs/heads/{}", self.source),
            "destinationReference": format!("refs/heads/{}", self.destination),
            "sourceCommit": self.commit,
            "pullRequestStatus": if self.open { "OPEN" } else { "CLOSED" },
            "creationDate": self.created,
        })
    }
}

/// What happens to pull requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PullRequestEvent {
    /// One was opened.
    Opened {
        /// The repository (`FullRepositoryId`).
        repository: String,
        /// It.
        pull_request: PullRequest,
    },
    /// One was closed, its source branch at `commit`.
    Closed {
        /// The repository.
        repository: String,
        /// Its number.
        number: u64,
        /// The source branch's commit then.
        commit: String,
    },
}

impl EventType for PullRequestEvent {
    fn type_name(&self) -> &'static str {
        "PullRequestEvent"
    }

    fn owns(type_name: &str) -> bool {
        type_name == "PullRequestEvent"
    }

    fn decode(_: &str, data: &Value) -> Result<Self, serde_json::Error> {
        PullRequestEvent::deserialize(data)
    }
}

/// Every repository's pull requests, by number.
pub type AllPullRequests = BTreeMap<String, BTreeMap<u64, PullRequest>>;

fn fold(all: &mut AllPullRequests, event: PullRequestEvent) {
    match event {
        PullRequestEvent::Opened {
            repository,
            pull_request,
        } => {
            all.entry(repository)
                .or_default()
                .insert(pull_request.number, pull_request);
        }
        PullRequestEvent::Closed {
            repository,
            number,
            commit,
        } => {
            if let Some(pr) = all.get_mut(&repository).and_then(|r| r.get_mut(&number)) {
                pr.open = false;
                pr.commit = commit;
            }
        }
    }
}

/// The pull requests.
pub struct PullRequests {
    store: Regional<PullRequestEvent, AllPullRequests>,
    /// Told when one is opened or closed, so that the source watch looks at once.
    pub changed: Arc<tokio::sync::Notify>,
}

/// Why a request about pull requests was refused: (HTTP status, message).
pub type Refusal = (u16, String);

impl PullRequests {
    /// None yet, from `log`.
    pub fn new(log: Arc<dyn EventStore>) -> Self {
        PullRequests {
            store: Regional::new(log, STREAM_PREFIX, "pull_requests", fold),
            changed: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// A repository's pull requests, oldest first.
    pub fn of(&self, repository: &str) -> Vec<PullRequest> {
        self.store.read(SCOPE.0, SCOPE.1, |all| {
            all.get(repository)
                .map(|r| r.values().cloned().collect())
                .unwrap_or_default()
        })
    }

    /// Every repository's pull requests.
    pub fn all(&self) -> AllPullRequests {
        self.store.read(SCOPE.0, SCOPE.1, Clone::clone)
    }

    /// Opens a pull request from `source` into `destination` of the repository `repository`
    /// under `root`; both branches must exist.
    pub async fn open(
        &self,
        root: Option<&Path>,
        repository: &str,
        source: &str,
        destination: &str,
        title: &str,
    ) -> Result<PullRequest, Refusal> {
        let dir = directory(root, repository)?;
        let commit = branch_commit(&dir, repository, source).await?;
        branch_commit(&dir, repository, destination).await?;
        if source == destination {
            return Err((
                400,
                "the source and destination branches are the same".into(),
            ));
        }
        let created = crate::aws::now_epoch();
        let recorded = self
            .store
            .record(SCOPE.0, SCOPE.1, |all| {
                let existing = all.get(repository);
                if existing.map_or(0, BTreeMap::len) >= MAX_PER_REPOSITORY {
                    return Err((
                        400,
                        format!("{repository} has {MAX_PER_REPOSITORY} pull requests"),
                    ));
                }
                let number = existing
                    .and_then(|r| r.keys().next_back())
                    .map_or(1, |n| n + 1);
                Ok(vec![PullRequestEvent::Opened {
                    repository: repository.to_string(),
                    pull_request: PullRequest {
                        number,
                        title: title.to_string(),
                        source: source.to_string(),
                        destination: destination.to_string(),
                        commit: commit.clone(),
                        open: true,
                        created,
                    },
                }])
            })
            .await
            .map_err(refusal)?;
        self.changed.notify_one();
        match recorded.first().and_then(PullRequestEvent::from_record) {
            Some(PullRequestEvent::Opened { pull_request, .. }) => Ok(pull_request),
            _ => Err((500, "the pull request was not recorded".into())),
        }
    }

    /// Closes an open pull request.
    pub async fn close(
        &self,
        root: Option<&Path>,
        repository: &str,
        number: u64,
    ) -> Result<PullRequest, Refusal> {
        let dir = directory(root, repository)?;
        let Some(pr) = self.of(repository).into_iter().find(|p| p.number == number) else {
            return Err((
                404,
                format!("pull request {number} of {repository} does not exist"),
            ));
        };
        // A source branch deleted since keeps the commit it was last seen at.
        let commit = branch_commit(&dir, repository, &pr.source)
            .await
            .unwrap_or(pr.commit.clone());
        self.store
            .record(SCOPE.0, SCOPE.1, |all| {
                match all.get(repository).and_then(|r| r.get(&number)) {
                    Some(p) if p.open => Ok(vec![PullRequestEvent::Closed {
                        repository: repository.to_string(),
                        number,
                        commit: commit.clone(),
                    }]),
                    _ => Err((
                        400,
                        format!("pull request {number} of {repository} is already closed"),
                    )),
                }
            })
            .await
            .map_err(refusal)?;
        self.changed.notify_one();
        Ok(PullRequest {
            open: false,
            commit,
            ..pr
        })
    }
}

fn refusal(e: RegionalFailure<Refusal>) -> Refusal {
    match e {
        RegionalFailure::Refused(r) => r,
        RegionalFailure::Store(e) => (500, format!("the log refused the change: {e:?}")),
    }
}

fn directory(root: Option<&Path>, repository: &str) -> Result<std::path::PathBuf, Refusal> {
    let Some(root) = root else {
        return Err((
            400,
            "no git_repos_dir is configured: pull requests are about its repositories".into(),
        ));
    };
    match repository_dir(root, repository) {
        Some(dir) if dir.is_dir() => Ok(dir),
        _ => Err((
            404,
            format!(
                "repository {repository} does not exist under {}",
                root.display()
            ),
        )),
    }
}

async fn branch_commit(dir: &Path, repository: &str, branch: &str) -> Result<String, Refusal> {
    let refname = format!("refs/heads/{branch}^{{commit}}");
    let found = match branch.is_empty() {
        true => Err(String::new()),
        false => git(dir, &["rev-parse", "--verify", "--quiet", &refname]).await,
    };
    match found {
        Ok(out) => Ok(String::from_utf8_lossy(&out).trim().to_string()),
        Err(_) => Err((
            404,
            format!("branch {branch} does not exist in {repository}"),
        )),
    }
}

crate::regional::regional_projection!(PullRequests, store);
