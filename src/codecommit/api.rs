//! CodeCommit's JSON 1.1 API (`CodeCommit_20150413`), checked against AWS's model.

use std::path::Path;
use std::sync::LazyLock;

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use base64::Engine;
use serde_json::{json, Value};

use super::{CodeCommit, Repository, RepositoryEvent, MAX_REPOSITORIES};
use crate::aws::model::ServiceModel;
use crate::aws::{json as wire, AwsError, RequestContext};
use crate::codepipeline::actions::git;
use crate::regional::RegionalFailure;

static MODEL: LazyLock<ServiceModel> =
    LazyLock::new(|| ServiceModel::parse(include_str!("../../models/codecommit-2015-04-13.json")));

/// The largest file GetFile returns (AWS: 6 MB).
const MAX_FILE_BYTES: u64 = 6 * 1024 * 1024;

const SERVED: &[&str] = &[
    "CreateRepository",
    "GetRepository",
    "ListRepositories",
    "DeleteRepository",
    "GetBranch",
    "ListBranches",
    "GetCommit",
    "GetFolder",
    "GetFile",
];

/// Answers a CodeCommit request.
pub async fn handle(
    codecommit: &CodeCommit,
    ctx: &RequestContext,
    target: &str,
    body: &[u8],
) -> HttpResponse {
    let result = run(codecommit, ctx, target, body).await;
    crate::aws::service::respond(ctx, target, result)
}

fn repo_missing(name: &str) -> AwsError {
    AwsError::new(
        "RepositoryDoesNotExistException",
        format!("{name} does not exist"),
    )
}

/// The branch a repository's HEAD names if it exists, else its first branch.
pub async fn default_branch(dir: &Path) -> Option<String> {
    let head = git(dir, &["symbolic-ref", "--short", "HEAD"]).await.ok();
    let branches = git(
        dir,
        &["for-each-ref", "--format=%(refname:short)", "refs/heads"],
    )
    .await
    .ok()?;
    let branches = String::from_utf8_lossy(&branches).to_string();
    let list: Vec<&str> = branches.lines().collect();
    let head = head.map(|h| String::from_utf8_lossy(&h).trim().to_string());
    match head {
        Some(h) if list.contains(&h.as_str()) => Some(h),
        _ => list.first().map(|s| s.to_string()),
    }
}

async fn run(
    codecommit: &CodeCommit,
    ctx: &RequestContext,
    target: &str,
    body: &[u8],
) -> Result<Bytes, AwsError> {
    let operation = crate::aws::service::operation("CodeCommit", &MODEL, target, |name| {
        SERVED.contains(&name).then_some(name.to_string())
    })?;
    let input = wire::parse_body(body)?;
    MODEL.validate_input(&operation, &input)?;
    let (account, region) = (ctx.account_id.as_str(), ctx.region.as_str());
    let text = |k: &str| input[k].as_str().unwrap_or_default().to_string();
    let name = text("repositoryName");
    let recorded = |e: RegionalFailure<AwsError>| match e {
        RegionalFailure::Refused(e) => e,
        RegionalFailure::Store(e) => AwsError::internal(e.to_string()),
    };
    let out = match operation.as_str() {
        "CreateRepository" => {
            let repo = Repository {
                name: name.clone(),
                id: uuid::Uuid::new_v4().to_string(),
                description: input["repositoryDescription"].as_str().map(str::to_string),
                created: crate::aws::now_epoch(),
            };
            if codecommit.get(account, region, &name).is_some() {
                return Err(AwsError::new(
                    "RepositoryNameExistsException",
                    format!("Repository named {name} already exists"),
                ));
            }
            // The bare repository first: a repository recorded is one that can be pushed to.
            let dir = codecommit.dir_of(account, region, &repo.id);
            super::init_bare(&dir).await.map_err(|e| {
                AwsError::internal(format!("the repository could not be created: {e}"))
            })?;
            let created = repo.clone();
            let result = codecommit
                .repositories
                .record(account, region, |all| {
                    if all.contains_key(&created.name) {
                        return Err(AwsError::new(
                            "RepositoryNameExistsException",
                            format!("Repository named {} already exists", created.name),
                        ));
                    }
                    if all.len() >= MAX_REPOSITORIES {
                        return Err(AwsError::new(
                            "RepositoryLimitExceededException",
                            format!(
                                "An account may have {MAX_REPOSITORIES} repositories in a region"
                            ),
                        ));
                    }
                    Ok(vec![RepositoryEvent::Created(Box::new(created))])
                })
                .await;
            if let Err(e) = result {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(recorded(e));
            }
            json!({ "repositoryMetadata": repo.to_wire(ctx, None) })
        }
        "GetRepository" => {
            let repo = codecommit
                .get(account, region, &name)
                .ok_or_else(|| repo_missing(&name))?;
            let dir = codecommit.dir_of(account, region, &repo.id);
            let branch = default_branch(&dir).await;
            json!({ "repositoryMetadata": repo.to_wire(ctx, branch) })
        }
        "ListRepositories" => {
            let mut repos: Vec<Repository> = codecommit
                .repositories
                .read(account, region, |all| all.values().cloned().collect());
            if input["sortBy"].as_str() == Some("lastModifiedDate") {
                repos.sort_by(|a, b| a.created.total_cmp(&b.created));
            }
            if input["order"].as_str() == Some("descending") {
                repos.reverse();
            }
            let start = match input["nextToken"].as_str() {
                Some(t) => crate::aws::pagination::decode(t)
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| {
                        AwsError::new(
                            "InvalidContinuationTokenException",
                            "The token is not valid",
                        )
                    })?,
                None => 0,
            };
            let page: Vec<Value> = repos
                .iter()
                .skip(start)
                .take(1000)
                .map(|r| json!({"repositoryName": r.name, "repositoryId": r.id}))
                .collect();
            let mut out = json!({ "repositories": page });
            if repos.len() > start + 1000 {
                out["nextToken"] =
                    crate::aws::pagination::encode(&(start + 1000).to_string()).into();
            }
            out
        }
        "DeleteRepository" => {
            // Deleting a repository that does not exist answers no id, as on AWS.
            let Some(repo) = codecommit.get(account, region, &name) else {
                return Ok(Bytes::from("{}"));
            };
            let deleted = name.clone();
            codecommit
                .repositories
                .record(account, region, |_| {
                    Ok(vec![RepositoryEvent::Deleted(deleted)])
                })
                .await
                .map_err(recorded)?;
            let _ = std::fs::remove_dir_all(codecommit.dir_of(account, region, &repo.id));
            json!({ "repositoryId": repo.id })
        }
        _ => {
            let repo = codecommit
                .get(account, region, &name)
                .ok_or_else(|| repo_missing(&name))?;
            let dir = codecommit.dir_of(account, region, &repo.id);
            read(&dir, &operation, &input).await?
        }
    };
    Ok(Bytes::from(out.to_string()))
}

/// The reads of a repository's contents.
async fn read(dir: &Path, operation: &str, input: &Value) -> Result<Value, AwsError> {
    let text = |k: &str| input[k].as_str().unwrap_or_default().to_string();
    match operation {
        "GetBranch" => {
            let branch = text("branchName");
            let commit = git(
                dir,
                &[
                    "rev-parse",
                    "--verify",
                    "-q",
                    &format!("refs/heads/{branch}"),
                ],
            )
            .await
            .map_err(|_| {
                AwsError::new(
                    "BranchDoesNotExistException",
                    format!("Branch {branch} does not exist"),
                )
            })?;
            let commit = String::from_utf8_lossy(&commit).trim().to_string();
            Ok(json!({"branch": {"branchName": branch, "commitId": commit}}))
        }
        "ListBranches" => {
            let out = git(
                dir,
                &["for-each-ref", "--format=%(refname:short)", "refs/heads"],
            )
            .await
            .map_err(AwsError::internal)?;
            let branches: Vec<String> = String::from_utf8_lossy(&out)
                .lines()
                .map(str::to_string)
                .collect();
            Ok(json!({ "branches": branches }))
        }
        "GetCommit" => {
            let id = text("commitId");
            let missing = || {
                AwsError::new(
                    "CommitIdDoesNotExistException",
                    format!("Commit {id} does not exist"),
                )
            };
            if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(AwsError::new(
                    "InvalidCommitIdException",
                    format!("{id} is not a commit id"),
                ));
            }
            let out = git(
                dir,
                &[
                    "log",
                    "-1",
                    "--date=raw",
                    "--format=%H%x00%T%x00%P%x00%an%x00%ae%x00%ad%x00%cn%x00%ce%x00%cd%x00%B",
                    &format!("{id}^{{commit}}"),
                    "--",
                ],
            )
            .await
            .map_err(|_| missing())?;
            let text = String::from_utf8_lossy(&out);
            let f: Vec<&str> = text.splitn(10, '\0').collect();
            if f.len() < 10 {
                return Err(missing());
            }
            let parents: Vec<&str> = f[2].split_whitespace().collect();
            Ok(json!({"commit": {
                "commitId": f[0], "treeId": f[1], "parents": parents,
                "message": f[9].trim_end_matches('\n'),
                "author": {"name": f[3], "email": f[4], "date": f[5]},
                "committer": {"name": f[6], "email": f[7], "date": f[8]},
                "additionalData": "",
            }}))
        }
        "GetFolder" => get_folder(dir, input).await,
        _ => get_file(dir, input).await,
    }
}

/// The commit a `commitSpecifier` names (a commit, a branch, a tag; the default branch when
/// none is given).
async fn commit_of(dir: &Path, specifier: Option<&str>) -> Result<String, AwsError> {
    let specifier = match specifier {
        Some(s) => s.to_string(),
        None => default_branch(dir).await.ok_or_else(|| {
            AwsError::new(
                "CommitDoesNotExistException",
                "The repository has no commits",
            )
        })?,
    };
    let out = git(
        dir,
        &[
            "rev-parse",
            "--verify",
            "-q",
            &format!("{specifier}^{{commit}}"),
        ],
    )
    .await
    .map_err(|_| {
        AwsError::new(
            "CommitDoesNotExistException",
            format!("{specifier} does not name a commit"),
        )
    })?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

fn clean_path(path: &str) -> Result<String, AwsError> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(AwsError::new(
            "InvalidPathException",
            format!("{path} is not a valid path"),
        ));
    }
    Ok(parts.join("/"))
}

fn file_mode(mode: &str) -> &'static str {
    match mode {
        "100755" => "EXECUTABLE",
        "120000" => "SYMLINK",
        _ => "NORMAL",
    }
}

async fn get_folder(dir: &Path, input: &Value) -> Result<Value, AwsError> {
    let commit = commit_of(dir, input["commitSpecifier"].as_str()).await?;
    let path = clean_path(input["folderPath"].as_str().unwrap_or_default())?;
    let missing = || {
        AwsError::new(
            "FolderDoesNotExistException",
            format!("Folder /{path} does not exist in commit {commit}"),
        )
    };
    let tree_spec = if path.is_empty() {
        commit.clone()
    } else {
        format!("{commit}:{path}")
    };
    let tree = git(
        dir,
        &[
            "rev-parse",
            "--verify",
            "-q",
            &format!("{tree_spec}^{{tree}}"),
        ],
    )
    .await
    .map_err(|_| missing())?;
    let listing = git(dir, &["ls-tree", "-z", &tree_spec])
        .await
        .map_err(|_| missing())?;
    let (mut files, mut folders, mut links, mut modules) = (vec![], vec![], vec![], vec![]);
    for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        let Some((meta, name)) = entry.split_once('\t') else {
            continue;
        };
        let mut meta = meta.split(' ');
        let (Some(mode), Some(kind), Some(id)) = (meta.next(), meta.next(), meta.next()) else {
            continue;
        };
        let absolute = if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}/{name}")
        };
        match (kind, mode) {
            ("tree", _) => folders.push(json!({"treeId": id, "absolutePath": absolute, "relativePath": name})),
            ("commit", _) => modules.push(json!({"commitId": id, "absolutePath": absolute, "relativePath": name})),
            (_, "120000") => links.push(json!({"blobId": id, "absolutePath": absolute, "relativePath": name, "fileMode": "SYMLINK"})),
            _ => files.push(json!({"blobId": id, "absolutePath": absolute, "relativePath": name, "fileMode": file_mode(mode)})),
        }
    }
    Ok(json!({
        "commitId": commit,
        "folderPath": format!("/{path}"),
        "treeId": String::from_utf8_lossy(&tree).trim(),
        "subFolders": folders, "files": files, "symbolicLinks": links, "subModules": modules,
    }))
}

async fn get_file(dir: &Path, input: &Value) -> Result<Value, AwsError> {
    let commit = commit_of(dir, input["commitSpecifier"].as_str()).await?;
    let path = clean_path(input["filePath"].as_str().unwrap_or_default())?;
    let missing = || {
        AwsError::new(
            "FileDoesNotExistException",
            format!("File /{path} does not exist in commit {commit}"),
        )
    };
    let spec = format!("{commit}:{path}");
    let listing = git(dir, &["ls-tree", &commit, "--", &path])
        .await
        .map_err(|_| missing())?;
    let listing = String::from_utf8_lossy(&listing).to_string();
    let mode = listing.split(' ').next().unwrap_or_default().to_string();
    if !listing.contains(" blob ") {
        return Err(missing());
    }
    let size = git(dir, &["cat-file", "-s", &spec])
        .await
        .map_err(|_| missing())?;
    let size: u64 = String::from_utf8_lossy(&size).trim().parse().unwrap_or(0);
    if size > MAX_FILE_BYTES {
        return Err(AwsError::new(
            "FileTooLargeException",
            format!("File /{path} is {size} bytes; GetFile returns at most {MAX_FILE_BYTES}"),
        ));
    }
    let blob = git(dir, &["rev-parse", &spec])
        .await
        .map_err(|_| missing())?;
    let content = git(dir, &["cat-file", "blob", &spec])
        .await
        .map_err(|_| missing())?;
    Ok(json!({
        "commitId": commit,
        "blobId": String::from_utf8_lossy(&blob).trim(),
        "filePath": path,
        "fileMode": file_mode(&mode),
        "fileSize": size,
        "fileContent": base64::engine::general_purpose::STANDARD.encode(content),
    }))
}
