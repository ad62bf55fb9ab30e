//! The embedded CodeCommit: repositories' metadata kept one stream per account and region
//! (`codecommit:<account>:<region>`), their contents in bare Git repositories under
//! `<data_dir>/codecommit/<account>/<region>/<repositoryId>.git`, served to `git clone` and
//! `git push` over Git's smart HTTP protocol at each repository's `cloneUrlHttp`
//! (`/v1/repos/<name>`) by `git http-backend`, Git's own server side. Git reads go through the
//! `git` binary, as the connection source's do.
//!
//! # LIMITATIONS
//! - Served: CreateRepository, GetRepository, ListRepositories, DeleteRepository, GetBranch,
//!   ListBranches, GetCommit, GetFolder, GetFile. Pull requests, approval rules, comments,
//!   merges and triggers are not: those operations answer a clear error naming them.
//! - Clones and pushes are not authenticated (git credentials are not checked); only the HTTP
//!   URL is served, not SSH.

pub mod api;
pub mod http;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::eventstore::{EventStore, EventType};
use crate::regional::Regional;

/// The prefix of repository streams.
pub const STREAM_PREFIX: &str = "codecommit:";

/// The path prefix of clone URLs.
pub const CLONE_PREFIX: &str = "/v1/repos/";

/// How many repositories an account may have in a region (AWS's quota).
pub const MAX_REPOSITORIES: usize = 5000;

/// A repository's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repository {
    /// Its name.
    pub name: String,
    /// Its id.
    pub id: String,
    /// Its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it was created.
    pub created: f64,
}

impl Repository {
    /// The wire shape `RepositoryMetadata`. Its clone URL is on this endpoint (`ctx.host`),
    /// with the region in the path unless it is the server's.
    pub fn to_wire(
        &self,
        ctx: &crate::aws::RequestContext,
        default_branch: Option<String>,
    ) -> Value {
        let (account, region) = (ctx.account_id.as_str(), ctx.region.as_str());
        let path = if region == ctx.default_region {
            self.name.clone()
        } else {
            format!("{region}/{}", self.name)
        };
        let mut out = json!({
            "accountId": account,
            "repositoryId": self.id,
            "repositoryName": self.name,
            "creationDate": self.created,
            "lastModifiedDate": self.created,
            "cloneUrlHttp": format!("http://{}{CLONE_PREFIX}{path}", ctx.host),
            "cloneUrlSsh": format!("ssh://git-codecommit.{region}.amazonaws.com/v1/repos/{}", self.name),
            "Arn": format!("arn:aws:codecommit:{region}:{account}:{}", self.name),
        });
        if let Some(d) = &self.description {
            out["repositoryDescription"] = d.clone().into();
        }
        if let Some(b) = default_branch {
            out["defaultBranch"] = b.into();
        }
        out
    }
}

/// What can happen to a region's repositories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RepositoryEvent {
    /// CreateRepository.
    Created(Box<Repository>),
    /// DeleteRepository.
    Deleted(String),
}

impl EventType for RepositoryEvent {
    fn type_name(&self) -> &'static str {
        "CodeCommitRepositoryEvent"
    }

    fn owns(type_name: &str) -> bool {
        type_name == "CodeCommitRepositoryEvent"
    }

    fn decode(_: &str, data: &Value) -> Result<Self, serde_json::Error> {
        RepositoryEvent::deserialize(data)
    }
}

/// A region's repositories, by name.
pub type RegionRepositories = BTreeMap<String, Repository>;

fn fold(repos: &mut RegionRepositories, event: RepositoryEvent) {
    match event {
        RepositoryEvent::Created(r) => {
            repos.insert(r.name.clone(), *r);
        }
        RepositoryEvent::Deleted(name) => {
            repos.remove(&name);
        }
    }
}

/// The embedded CodeCommit.
pub struct CodeCommit {
    /// The repositories' metadata.
    pub repositories: Regional<RepositoryEvent, RegionRepositories>,
    root: PathBuf,
    /// Told when a push changed a repository, so that its pipelines learn at once.
    pub pushed: Arc<tokio::sync::Notify>,
}

impl CodeCommit {
    /// CodeCommit with its repositories under `root` (`<data_dir>/codecommit`).
    pub fn new(log: Arc<dyn EventStore>, root: PathBuf, pushed: Arc<tokio::sync::Notify>) -> Self {
        CodeCommit {
            repositories: Regional::new(log, STREAM_PREFIX, "codecommit", fold),
            root,
            pushed,
        }
    }

    /// A repository's metadata.
    pub fn get(&self, account: &str, region: &str, name: &str) -> Option<Repository> {
        self.repositories
            .read(account, region, |all| all.get(name).cloned())
    }

    /// The bare repository of a repository's id.
    pub fn dir_of(&self, account: &str, region: &str, id: &str) -> PathBuf {
        self.root
            .join(account)
            .join(region)
            .join(format!("{id}.git"))
    }

    /// The bare repository of a repository, if it exists.
    pub fn dir(&self, account: &str, region: &str, name: &str) -> Option<PathBuf> {
        self.get(account, region, name)
            .map(|r| self.dir_of(account, region, &r.id))
            .filter(|d| d.is_dir())
    }
}

crate::regional::regional_projection!(CodeCommit, repositories);

/// Creates the bare repository at `dir`, accepting pushes over HTTP.
pub async fn init_bare(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    crate::codepipeline::actions::git(dir, &["init", "--bare", "-q", "-b", "main"]).await?;
    crate::codepipeline::actions::git(dir, &["config", "http.receivepack", "true"]).await?;
    Ok(())
}

/// CodeCommit's repositories as the pipelines' CodeCommit source actions find them.
pub struct SourceRepositories(pub Arc<CodeCommit>);

impl crate::codepipeline::actions::RepositoryLookup for SourceRepositories {
    fn dir(&self, account: &str, region: &str, name: &str) -> Option<PathBuf> {
        self.0.dir(account, region, name)
    }
}
