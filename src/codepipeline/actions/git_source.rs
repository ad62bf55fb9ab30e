//! The connection source action (`Source/AWS/CodeStarSourceConnection/1`): reads a branch of a
//! Git repository on this machine, `<git_repos_dir>/<FullRepositoryId>`, through a connection
//! that exists in the account (`ConnectionArn`), and makes the tree at its head commit (or the
//! commit a start's `sourceRevisions` names, `COMMIT_ID`) the output artifact.
//!
//! Git is read with the `git` binary: it is what the repositories on a developer's machine are
//! made with, so every repository format and setting they use (packed refs, worktrees,
//! alternates, partial clones) is read as Git itself reads it, `git archive` writes the tree's
//! zip exactly, and no Git library is compiled into the server.
//!
//! The CodeCommit source action reads the embedded CodeCommit's repositories the same way.
//!
//! # LIMITATIONS
//! - The repositories are local directories: no provider (GitHub, GitLab, Bitbucket) is reached.
//! - `OutputArtifactFormat` `CODEBUILD_CLONE_REF` writes a reference of this product's own
//!   (`codepipeline-local-clone-ref.json`: the repository's path, the commit, the branch) that
//!   the CodeBuild action clones; other actions see that file, not the tree.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use super::{body_of, config, failed, store_failure, ActionExecutor, ActionJob};
use crate::codepipeline::execution::{ActionOutput, ErrorDetails};
use crate::s3::objects::ObjectStore;

/// What the connection source action asks of the connections.
pub trait ConnectionLookup: Send + Sync {
    /// The provider type of a connection of the account and region (ARN of either service
    /// name), if it exists.
    fn provider_type(&self, account: &str, region: &str, arn: &str) -> Option<String>;
}

/// How long one Git command may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Reads sources from local Git repositories.
pub(super) struct GitSource {
    pub connections: Arc<dyn ConnectionLookup>,
    pub repos_dir: Option<PathBuf>,
    pub objects: Arc<dyn ObjectStore>,
    /// The largest zip an artifact may be.
    pub max_bytes: u64,
}

impl ActionExecutor for GitSource {
    fn run<'a>(&'a self, job: &'a ActionJob) -> BoxFuture<'a, Result<ActionOutput, ErrorDetails>> {
        Box::pin(self.read(job))
    }
}

/// A repository's directory under `root`: `owner/name` (or deeper groups, as GitLab has),
/// without `..`, empty or absolute parts.
pub fn repository_dir(root: &Path, full_id: &str) -> Option<PathBuf> {
    let parts: Vec<&str> = full_id.split('/').collect();
    let plain = parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && *p != "." && *p != ".." && !p.contains('\\'));
    plain.then(|| parts.iter().fold(root.to_path_buf(), |dir, p| dir.join(p)))
}

/// Runs `git` in `dir`; its standard output, or its standard error as the failure.
pub async fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let run = tokio::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(GIT_TIMEOUT, run)
        .await
        .map_err(|_| format!("git {} took more than {GIT_TIMEOUT:?}", args.join(" ")))?
        .map_err(|e| format!("git could not be run: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A commit as the source action reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitInfo {
    /// The commit id.
    pub id: String,
    /// The author date, ISO 8601.
    pub author_date: String,
    /// The full message.
    pub message: String,
}

/// The commit `revision` names in the repository at `dir`.
pub async fn commit(dir: &Path, revision: &str) -> Result<CommitInfo, String> {
    let spec = format!("{revision}^{{commit}}");
    let out = git(dir, &["log", "-1", "--format=%H%x00%aI%x00%B", &spec, "--"]).await?;
    let text = String::from_utf8_lossy(&out);
    let mut parts = text.splitn(3, '\0');
    let (Some(id), Some(date), Some(message)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("git log printed no commit for {revision}"));
    };
    Ok(CommitInfo {
        id: id.trim().to_string(),
        author_date: date.trim().to_string(),
        message: message.trim_end().to_string(),
    })
}

impl GitSource {
    async fn read(&self, run: &ActionJob) -> Result<ActionOutput, ErrorDetails> {
        let config = config(run);
        let get = |k: &str| config.get(k).cloned().unwrap_or_default();
        let (arn, repo, branch) = (
            get("ConnectionArn"),
            get("FullRepositoryId"),
            get("BranchName"),
        );
        let clone_ref = clone_ref(config)?;
        let provider = self
            .connections
            .provider_type(&run.account, &run.input.region, &arn)
            .ok_or_else(|| {
                failed(format!(
                    "Connection {arn} does not exist in account {} and region {}",
                    run.account, run.input.region
                ))
            })?;
        let root = self.repos_dir.as_ref().ok_or_else(|| {
            failed(
                "No git_repos_dir is configured: start the server with --git-repos-dir DIR \
                 (or CODEPIPELINE_LOCAL_GIT_REPOS_DIR) so that FullRepositoryId owner/name is DIR/owner/name",
            )
        })?;
        let not_found = || failed(format!("[{provider}] Repository [{repo}] not found"));
        let dir = repository_dir(root, &repo).ok_or_else(not_found)?;
        if !dir.is_dir() {
            return Err(not_found());
        }
        let missing = |revision: Option<&str>| match revision {
            Some(commit) => failed(format!(
                "[{provider}] No commit [{commit}] found for FullRepositoryName [{repo}]"
            )),
            None => failed(format!(
                "[{provider}] No Branch [{branch}] found for FullRepositoryName [{repo}]"
            )),
        };
        let info = read_and_publish(
            &dir,
            &branch,
            clone_ref,
            run,
            self.objects.as_ref(),
            self.max_bytes,
            missing,
        )
        .await?;
        let summary = serde_json::json!({"ProviderType": provider, "CommitMessage": info.message});
        Ok(ActionOutput {
            output_artifacts: run.planned_outputs.clone(),
            external_execution_id: Some(info.id.clone()),
            external_execution_summary: Some(summary.to_string()),
            output_variables: [
                ("AuthorDate", info.author_date.clone()),
                ("BranchName", branch.clone()),
                ("CommitId", info.id.clone()),
                ("CommitMessage", info.message.clone()),
                ("ConnectionArn", arn.clone()),
                ("FullRepositoryName", repo.clone()),
                ("ProviderType", provider.clone()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            revision: Some(info.id),
        })
    }
}

/// Whether the action's `OutputArtifactFormat` is `CODEBUILD_CLONE_REF` (else `CODE_ZIP`).
fn clone_ref(config: &std::collections::BTreeMap<String, String>) -> Result<bool, ErrorDetails> {
    match config
        .get("OutputArtifactFormat")
        .map_or("CODE_ZIP", String::as_str)
    {
        "CODE_ZIP" => Ok(false),
        "CODEBUILD_CLONE_REF" => Ok(true),
        other => Err(failed(format!(
            "OutputArtifactFormat {other} is not valid; use CODE_ZIP or CODEBUILD_CLONE_REF"
        ))),
    }
}

/// Reads the commit a start names (`sourceRevisions`) or the branch's head in the repository at
/// `dir`, and writes the action's output artifacts of it; `missing` words the failure when there
/// is no such commit or branch (given the commit asked for, if one was).
async fn read_and_publish(
    dir: &Path,
    branch: &str,
    clone_ref: bool,
    run: &ActionJob,
    objects: &dyn ObjectStore,
    max_bytes: u64,
    missing: impl Fn(Option<&str>) -> ErrorDetails,
) -> Result<CommitInfo, ErrorDetails> {
    let revision = match &run.source_revision {
        Some(commit) => commit.clone(),
        None => format!("refs/heads/{branch}"),
    };
    let info = commit(dir, &revision)
        .await
        .map_err(|_| missing(run.source_revision.as_deref()))?;
    let artifact = Artifact {
        dir,
        info: &info,
        branch,
        clone_ref,
    };
    publish(&artifact, objects, run, max_bytes).await?;
    Ok(info)
}

/// The name of the one file of a `CODEBUILD_CLONE_REF` artifact.
pub const CLONE_REF_FILE: &str = "codepipeline-local-clone-ref.json";

/// What a source action makes its artifact of.
struct Artifact<'a> {
    dir: &'a Path,
    info: &'a CommitInfo,
    branch: &'a str,
    /// `CODEBUILD_CLONE_REF`: a reference the CodeBuild action clones, not the tree.
    clone_ref: bool,
}

/// A zip holding one file.
pub(super) fn zip_of(name: &str, content: &[u8]) -> Result<Vec<u8>, ErrorDetails> {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let made = writer
        .start_file(name, zip::write::SimpleFileOptions::default())
        .map_err(|e| e.to_string())
        .and_then(|()| writer.write_all(content).map_err(|e| e.to_string()))
        .and_then(|()| writer.finish().map_err(|e| e.to_string()));
    made.map(|cursor| cursor.into_inner())
        .map_err(|e| failed(format!("The artifact {name} could not be written: {e}")))
}

/// Writes the action's output artifacts: the tree of the commit zipped (as `git archive` does),
/// or for `CODEBUILD_CLONE_REF` a reference to the repository and commit.
async fn publish(
    artifact: &Artifact<'_>,
    objects: &dyn ObjectStore,
    run: &ActionJob,
    max_bytes: u64,
) -> Result<(), ErrorDetails> {
    let (dir, info) = (artifact.dir, artifact.info);
    let zip = if artifact.clone_ref {
        let reference = serde_json::json!({
            "repository": dir.to_string_lossy(),
            "commitId": info.id,
            "branch": artifact.branch,
        });
        zip_of(CLONE_REF_FILE, reference.to_string().as_bytes())?
    } else {
        git(dir, &["archive", "--format=zip", &info.id])
            .await
            .map_err(|e| {
                failed(format!(
                    "The tree of commit {} could not be zipped: {e}",
                    info.id
                ))
            })?
    };
    if zip.len() as u64 > max_bytes {
        return Err(failed(format!(
            "The tree of commit {} zips to {} bytes, more than zip_max_bytes ({max_bytes})",
            info.id,
            zip.len(),
        )));
    }
    let zip = Bytes::from(zip);
    for artifact in &run.planned_outputs {
        let location = &artifact.s3location;
        objects
            .put(
                &location.bucket,
                &location.key,
                &Default::default(),
                body_of(zip.clone()),
            )
            .await
            .map_err(|e| store_failure(e, &location.bucket, &location.key))?;
    }
    Ok(())
}

/// What the CodeCommit source action asks of CodeCommit.
pub trait RepositoryLookup: Send + Sync {
    /// The bare repository of a repository of the account and region, if it exists.
    fn dir(&self, account: &str, region: &str, name: &str) -> Option<PathBuf>;
}

/// The CodeCommit source action (`Source/AWS/CodeCommit/1`): the tree of `BranchName`'s head
/// (or of the commit a start names) in the embedded CodeCommit's repository `RepositoryName`.
pub(super) struct CodeCommitSource {
    pub repositories: Arc<dyn RepositoryLookup>,
    pub objects: Arc<dyn ObjectStore>,
    pub max_bytes: u64,
}

impl ActionExecutor for CodeCommitSource {
    fn run<'a>(&'a self, job: &'a ActionJob) -> BoxFuture<'a, Result<ActionOutput, ErrorDetails>> {
        Box::pin(self.read(job))
    }
}

impl CodeCommitSource {
    async fn read(&self, run: &ActionJob) -> Result<ActionOutput, ErrorDetails> {
        let config = config(run);
        let get = |k: &str| config.get(k).cloned().unwrap_or_default();
        let (repo, branch) = (get("RepositoryName"), get("BranchName"));
        let clone_ref = clone_ref(config)?;
        let dir = self
            .repositories
            .dir(&run.account, &run.input.region, &repo)
            .ok_or_else(|| {
                failed(format!(
                    "The repository {repo} does not exist in account {} and region {}",
                    run.account, run.input.region
                ))
            })?;
        let missing = |revision: Option<&str>| match revision {
            Some(commit) => failed(format!(
                "The commit {commit} does not exist in repository {repo}"
            )),
            None => failed(format!(
                "The branch {branch} does not exist in repository {repo}"
            )),
        };
        let info = read_and_publish(
            &dir,
            &branch,
            clone_ref,
            run,
            self.objects.as_ref(),
            self.max_bytes,
            missing,
        )
        .await?;
        let committer = git(&dir, &["log", "-1", "--format=%cI", &info.id, "--"])
            .await
            .map(|o| String::from_utf8_lossy(&o).trim().to_string())
            .unwrap_or_default();
        let summary = info.message.lines().next().unwrap_or_default().to_string();
        Ok(ActionOutput {
            output_artifacts: run.planned_outputs.clone(),
            external_execution_id: Some(info.id.clone()),
            external_execution_summary: Some(summary),
            output_variables: [
                ("AuthorDate", info.author_date.clone()),
                ("BranchName", branch.clone()),
                ("CommitId", info.id.clone()),
                ("CommitMessage", info.message.clone()),
                ("CommitterDate", committer),
                ("RepositoryName", repo.clone()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            revision: Some(info.id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_ids_stay_under_the_root() {
        let root = Path::new("/repos");
        assert_eq!(
            repository_dir(root, "acme/web"),
            Some(PathBuf::from("/repos/acme/web"))
        );
        assert_eq!(
            repository_dir(root, "group/sub/web"),
            Some(PathBuf::from("/repos/group/sub/web"))
        );
        for bad in [
            "web",
            "acme/../etc",
            "/etc/passwd",
            "acme//web",
            "acme/.",
            "a\\b/c",
        ] {
            assert_eq!(repository_dir(root, bad), None, "{bad}");
        }
    }
}
