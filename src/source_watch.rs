//! Starts pipelines when their sources change: Git pushes to the repositories under
//! `git_repos_dir` (connection sources), pull requests opened, updated or closed on them (see
//! `connections::pull_requests`), and new versions of S3 source objects (S3 sources that
//! poll, `PollForSourceChanges`). Every `source_poll_interval_ms` — and at once when the embedded
//! S3 takes an object — each watched repository's branches and tags (`git for-each-ref`) and
//! each watched object's newest version are compared with what was seen last; a ref that moved
//! starts each pipeline whose trigger (see `codepipeline::triggers`) selects it, through the
//! pipeline's one door: trigger `WebhookV2` for a push, `PollForSourceChanges` for an object or
//! CodeCommit commit of a source that polls, and `CloudWatchEvent` for one of a source that does
//! not when an EventBridge rule targets the pipeline (see `events`), with the new commit or
//! version as the source action's revision.
//!
//! What was seen is recorded in the log (one stream per account and region,
//! `sourcewatch:<account>:<region>`), so a change made while the server was down starts its
//! pipeline once the server is back; and each start carries a client request token made of the
//! pipeline, action, ref and revision, so that the same change never starts two executions,
//! also across a crash between the start and its record.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::codepipeline::actions::RepositoryLookup;
use crate::codepipeline::actions::{git, repository_dir};
use crate::codepipeline::actors::{PipelineRegistry, StartExecution};
use crate::codepipeline::execution::Trigger;
use crate::codepipeline::ids::PipelineKey;
use crate::codepipeline::model::Declaration;
use crate::codepipeline::triggers::{
    object_watches, repository_watches, watches, ObjectWatch, PullRequestChange, Push,
    RepositoryWatch, Watch,
};
use crate::codepipeline::views::executions::ExecutionViews;
use crate::codepipeline::views::{declaration_of_output, PipelineViews};
use crate::connections::pull_requests::PullRequests;
use crate::events::{codecommit_push, s3_object_created, Events};
use crate::eventstore::{EventStore, EventType};
use crate::regional::Regional;
use crate::s3::objects::ObjectStore;

/// The prefix of the seen-refs streams.
pub const STREAM_PREFIX: &str = "sourcewatch:";

/// What a watch saw last: the commit of each ref.
pub type Refs = BTreeMap<String, String>;

/// What the watches of a region saw last, by pipeline then source action.
pub type RegionSeen = BTreeMap<String, BTreeMap<String, Refs>>;

/// What happens to the seen refs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SeenEvent {
    /// A watch read its repository's refs (and started what they selected).
    Seen {
        /// The pipeline.
        pipeline: String,
        /// The source action.
        action: String,
        /// Every branch and tag, with its commit.
        refs: Refs,
    },
    /// The pipeline is gone (deleted) or no longer watches.
    Forgotten {
        /// The pipeline.
        pipeline: String,
    },
}

impl EventType for SeenEvent {
    fn type_name(&self) -> &'static str {
        "SourceRefsSeen"
    }

    fn owns(type_name: &str) -> bool {
        type_name == "SourceRefsSeen"
    }

    fn decode(_: &str, data: &Value) -> Result<Self, serde_json::Error> {
        SeenEvent::deserialize(data)
    }
}

fn fold(seen: &mut RegionSeen, event: SeenEvent) {
    match event {
        SeenEvent::Seen {
            pipeline,
            action,
            refs,
        } => {
            seen.entry(pipeline).or_default().insert(action, refs);
        }
        SeenEvent::Forgotten { pipeline } => {
            seen.remove(&pipeline);
        }
    }
}

/// The seen refs of every account and region.
pub type Seen = Regional<SeenEvent, RegionSeen>;

/// The seen refs, empty, from `log`.
pub fn seen(log: Arc<dyn EventStore>) -> Seen {
    Regional::new(log, STREAM_PREFIX, "source_watch", fold)
}

/// What a pipeline watches.
#[derive(Debug, Clone, Default)]
struct Watches {
    git: Vec<Watch>,
    objects: Vec<ObjectWatch>,
    repositories: Vec<RepositoryWatch>,
}

impl Watches {
    fn is_empty(&self) -> bool {
        self.git.is_empty() && self.objects.is_empty() && self.repositories.is_empty()
    }
}

/// Which kinds of sources a poll looks at.
#[derive(Debug, Clone, Copy)]
pub struct Look {
    git: bool,
    objects: bool,
    repositories: bool,
}

impl Look {
    /// Every kind.
    pub const ALL: Look = Look {
        git: true,
        objects: true,
        repositories: true,
    };
    /// S3 objects only.
    pub const OBJECTS: Look = Look {
        git: false,
        objects: true,
        repositories: false,
    };
    /// Local repositories (and their pull requests) only.
    pub const GIT: Look = Look {
        git: true,
        objects: false,
        repositories: false,
    };
    /// CodeCommit repositories only.
    pub const REPOSITORIES: Look = Look {
        git: false,
        objects: false,
        repositories: true,
    };
}

/// A ref that moved since it was seen: (ref, commit or version before, now).
type Moved = (String, Option<String>, String);

/// What a watcher reads.
pub struct Sources {
    /// Where the repositories of connection sources are, if anywhere.
    pub repos_dir: Option<PathBuf>,
    /// Where S3 sources are.
    pub objects: Arc<dyn ObjectStore>,
    /// Where CodeCommit sources are.
    pub repositories: Arc<dyn RepositoryLookup>,
    /// The pipelines.
    pub views: Arc<PipelineViews>,
    /// What was seen.
    pub seen: Arc<Seen>,
    /// The executions, for what a pipeline read last.
    pub executions: Arc<ExecutionViews>,
    /// Pull requests on the local repositories.
    pub pull_requests: Arc<PullRequests>,
    /// EventBridge's rules.
    pub events: Arc<Events>,
}

/// The watcher.
pub struct SourceWatch {
    /// Where the repositories are, if anywhere.
    pub repos_dir: Option<PathBuf>,
    /// Where S3 sources are.
    pub objects: Arc<dyn ObjectStore>,
    /// Where CodeCommit sources are.
    pub repositories: Arc<dyn RepositoryLookup>,
    /// The pipelines.
    pub views: Arc<PipelineViews>,
    /// What was seen.
    pub seen: Arc<Seen>,
    /// The executions, for what a pipeline read last.
    pub executions: Arc<ExecutionViews>,
    /// Pull requests on the local repositories.
    pub pull_requests: Arc<PullRequests>,
    /// EventBridge's rules, for the sources that do not poll.
    pub events: Arc<Events>,
    /// Declarations already read, by pipeline key: (version, watches).
    cache: HashMap<String, (u64, Watches)>,
}

impl SourceWatch {
    /// A watcher of what `sources` names.
    pub fn new(sources: Sources) -> Self {
        SourceWatch {
            repos_dir: sources.repos_dir,
            objects: sources.objects,
            repositories: sources.repositories,
            views: sources.views,
            seen: sources.seen,
            executions: sources.executions,
            pull_requests: sources.pull_requests,
            events: sources.events,
            cache: HashMap::new(),
        }
    }

    /// Polls everything every `interval`; S3 sources as soon as `objects_changed` is notified
    /// (the embedded S3 took an object), CodeCommit sources as soon as `pushed` is (a push
    /// ended) and local repositories as soon as a pull request is opened or closed, starting
    /// pipelines through `registry`.
    pub async fn run(
        mut self,
        interval: Duration,
        objects_changed: Arc<tokio::sync::Notify>,
        pushed: Arc<tokio::sync::Notify>,
        registry: &PipelineRegistry,
    ) {
        let mut next = tokio::time::Instant::now() + interval;
        let pull_requests = self.pull_requests.changed.clone();
        loop {
            let look = tokio::select! {
                () = objects_changed.notified() => Look::OBJECTS,
                () = pushed.notified() => Look::REPOSITORIES,
                () = pull_requests.notified() => Look::GIT,
                () = tokio::time::sleep_until(next) => {
                    next = tokio::time::Instant::now() + interval;
                    Look::ALL
                }
            };
            self.poll(registry, look).await;
        }
    }

    /// The pipelines that watch, with their watches; what pipelines that watched are gone.
    fn watched(&mut self) -> (Vec<(PipelineKey, Watches)>, Vec<PipelineKey>) {
        let mut out = Vec::new();
        let mut live = std::collections::HashSet::new();
        for (key, version, bytes) in self.views.current_versions() {
            live.insert(key.clone());
            let fresh = self.cache.get(&key).is_some_and(|(v, _)| *v == version);
            if !fresh {
                let found = declaration_of_output(&bytes)
                    .map(|d: Declaration| Watches {
                        git: watches(&d),
                        objects: object_watches(&d),
                        repositories: repository_watches(&d),
                    })
                    .unwrap_or_default();
                self.cache.insert(key.clone(), (version, found));
            }
            let (_, found) = &self.cache[&key];
            if let (false, Some(parsed)) = (found.is_empty(), PipelineKey::parse(&key)) {
                out.push((parsed, found.clone()));
            }
        }
        let gone = self
            .cache
            .iter()
            .filter(|(k, (_, w))| !live.contains(*k) && !w.is_empty())
            .filter_map(|(k, _)| PipelineKey::parse(k))
            .collect();
        self.cache.retain(|k, _| live.contains(k));
        (out, gone)
    }

    /// One look at every watched source of the kinds `look` names.
    pub async fn poll(&mut self, registry: &PipelineRegistry, look: Look) {
        let (watched, gone) = self.watched();
        for key in gone {
            let event = SeenEvent::Forgotten {
                pipeline: key.name.clone(),
            };
            self.record(&key, event).await;
        }
        let mut refs_of: HashMap<PathBuf, Option<Refs>> = HashMap::new();
        for (key, found) in watched {
            for watch in found.git.iter().filter(|_| look.git) {
                let Some(dir) = self
                    .repos_dir
                    .as_ref()
                    .and_then(|root| repository_dir(root, &watch.repository))
                else {
                    continue;
                };
                if !refs_of.contains_key(&dir) {
                    let refs = read_refs(&dir).await;
                    refs_of.insert(dir.clone(), refs);
                }
                let Some(Some(refs)) = refs_of.get(&dir) else {
                    continue;
                };
                let mut refs = refs.clone();
                if !watch.pull_requests.is_empty() {
                    refs.extend(self.pull_request_refs(&watch.repository, &refs));
                }
                let branch = format!("refs/heads/{}", watch.branch);
                let Some(moved) = self.moved(&key, &watch.action, &refs, &branch) else {
                    continue;
                };
                for (refname, old, commit) in moved {
                    if let Some(number) = refname.strip_prefix(PULL_PREFIX) {
                        let Some((event, commit)) = pull_request_event(old.as_deref(), &commit)
                        else {
                            continue;
                        };
                        let pr = self
                            .pull_requests
                            .of(&watch.repository)
                            .into_iter()
                            .find(|p| p.number.to_string() == number);
                        let Some(pr) = pr else { continue };
                        let files = pull_request_files(&dir, &pr.destination, commit).await;
                        let change = PullRequestChange {
                            event,
                            destination: &pr.destination,
                            files: files.as_deref(),
                        };
                        if watch.starts_on_pull_request(&change) {
                            let trigger = ("WebhookV2", watch.connection.as_str());
                            let what = format!("{refname} {event}");
                            start(registry, &key, &watch.action, trigger, &what, commit).await;
                        }
                        continue;
                    }
                    let files = match &old {
                        Some(old) => changed_files(&dir, old, &commit).await,
                        None => None,
                    };
                    let push = Push {
                        refname: &refname,
                        files: files.as_deref(),
                    };
                    if watch.starts_on(&push) {
                        let trigger = ("WebhookV2", watch.connection.as_str());
                        start(registry, &key, &watch.action, trigger, &refname, &commit).await;
                    }
                }
                self.seen_now(&key, &watch.action, &refs).await;
            }
            for watch in found.objects.iter().filter(|_| look.objects) {
                let Ok(info) = self.objects.head(&watch.bucket, &watch.key, None).await else {
                    continue;
                };
                let object = format!("s3://{}/{}", watch.bucket, watch.key);
                let version = info.version_id.unwrap_or_else(|| "null".into());
                let refs: Refs = [(object.clone(), version)].into();
                let Some(moved) = self.moved(&key, &watch.action, &refs, &object) else {
                    continue;
                };
                for (_, _, version) in moved {
                    if watch.polls {
                        let trigger = ("PollForSourceChanges", watch.action.as_str());
                        start(registry, &key, &watch.action, trigger, &object, &version).await;
                        continue;
                    }
                    let (account, region) = (key.account.as_str(), key.region.as_str());
                    let made =
                        s3_object_created(account, region, &watch.bucket, &watch.key, &version);
                    self.start_by_rule(registry, &key, &watch.action, &made, &object, &version)
                        .await;
                }
                self.seen_now(&key, &watch.action, &refs).await;
            }
            for watch in found.repositories.iter().filter(|_| look.repositories) {
                let Some(dir) = self
                    .repositories
                    .dir(&key.account, &key.region, &watch.repository)
                else {
                    continue;
                };
                let Some(all) = read_refs(&dir).await else {
                    continue;
                };
                let branch = format!("refs/heads/{}", watch.branch);
                let refs: Refs = all.into_iter().filter(|(r, _)| *r == branch).collect();
                let detail = format!(
                    "arn:aws:codecommit:{}:{}:{}",
                    key.region, key.account, watch.repository
                );
                let Some(moved) = self.moved(&key, &watch.action, &refs, &branch) else {
                    continue;
                };
                for (_, old, commit) in moved {
                    if watch.polls {
                        let trigger = ("PollForSourceChanges", detail.as_str());
                        start(registry, &key, &watch.action, trigger, &branch, &commit).await;
                        continue;
                    }
                    let (account, region) = (key.account.as_str(), key.region.as_str());
                    let made = codecommit_push(
                        account,
                        region,
                        &watch.repository,
                        &watch.branch,
                        old.as_deref(),
                        &commit,
                    );
                    self.start_by_rule(registry, &key, &watch.action, &made, &branch, &commit)
                        .await;
                }
                self.seen_now(&key, &watch.action, &refs).await;
            }
        }
    }

    /// Starts the pipeline as the first enabled EventBridge rule that targets it and matches
    /// one of `events` (a source's change) would; nothing when no rule does.
    async fn start_by_rule(
        &self,
        registry: &PipelineRegistry,
        key: &PipelineKey,
        action: &str,
        events: &[Value],
        refname: &str,
        revision: &str,
    ) {
        let rule = self
            .events
            .rule_starting(&key.account, &key.region, &key.name, events);
        match rule {
            Some(rule) => {
                let token = token(&key.name, action, refname, revision);
                let source = Some((action, revision, token));
                crate::events::api::start(registry, key, &rule, source).await;
            }
            None => log::debug!(
                "{refname} moved to {revision}: no EventBridge rule starts pipeline {}",
                key.name
            ),
        }
    }

    /// A repository's pull requests as refs of their own: `pull/<number>` at `OPEN <commit>`
    /// (the source branch's commit in `refs`) or `CLOSED <commit>`.
    fn pull_request_refs(&self, repository: &str, refs: &Refs) -> Refs {
        self.pull_requests
            .of(repository)
            .into_iter()
            .map(|pr| {
                let source = refs.get(&format!("refs/heads/{}", pr.source));
                let value = match (pr.open, source) {
                    (true, Some(commit)) => format!("OPEN {commit}"),
                    (true, None) => format!("OPEN {}", pr.commit),
                    (false, _) => format!("CLOSED {}", pr.commit),
                };
                (format!("{PULL_PREFIX}{}", pr.number), value)
            })
            .collect()
    }

    /// The refs that moved since the watch saw them. The first look takes what is there as
    /// seen, except that `read_ref` counts as at the revision the pipeline's newest execution
    /// read: a change since starts it; while that execution has yet to read, `None`: look again
    /// later.
    fn moved(
        &self,
        key: &PipelineKey,
        action: &str,
        refs: &Refs,
        read_ref: &str,
    ) -> Option<Vec<Moved>> {
        let before = self.seen.read(&key.account, &key.region, |s| {
            s.get(&key.name).and_then(|p| p.get(action)).cloned()
        });
        let before = match before {
            Some(before) => before,
            None => {
                let mut base = refs.clone();
                if let Some(read) = self.last_read(key, action).ok()? {
                    base.insert(read_ref.to_string(), read);
                }
                base
            }
        };
        Some(
            refs.iter()
                .filter(|(r, now)| before.get(*r) != Some(now))
                .map(|(r, now)| (r.clone(), before.get(r).cloned(), now.clone()))
                .collect(),
        )
    }

    /// Records what a watch sees now, if it is not what it saw.
    async fn seen_now(&self, key: &PipelineKey, action: &str, refs: &Refs) {
        let unchanged = self.seen.read(&key.account, &key.region, |s| {
            s.get(&key.name).and_then(|p| p.get(action)) == Some(refs)
        });
        if !unchanged {
            let event = SeenEvent::Seen {
                pipeline: key.name.clone(),
                action: action.to_string(),
                refs: refs.clone(),
            };
            self.record(key, event).await;
        }
    }

    async fn record(&self, key: &PipelineKey, event: SeenEvent) {
        if let Err(e) = self
            .seen
            .record(&key.account, &key.region, |_| Ok::<_, ()>(vec![event]))
            .await
        {
            log::warn!(
                "what pipeline {}'s sources are at was not recorded: {e:?}",
                key.name
            );
        }
    }

    /// What the pipeline's newest execution read with the source action: `Ok(Some(revision))`,
    /// `Ok(None)` when it read nothing (or there is none), `Err(())` while it has yet to read.
    fn last_read(&self, key: &PipelineKey, action: &str) -> Result<Option<String>, ()> {
        let mut read = Ok(None);
        let _ = self.executions.walk_newest(&key.key(), 0, 1, |summary, _| {
            let revision = summary
                .source_revisions
                .iter()
                .find(|(a, _)| a == action)
                .map(|(_, r)| r.clone());
            read = match revision {
                Some(r) => Ok(Some(r)),
                None if summary.status.is_running() => Err(()),
                None => Ok(None),
            };
            Ok::<bool, ()>(false)
        });
        read
    }
}

/// Starts the pipeline for a change its watch selects: `trigger` is (type, detail), `revision`
/// the source action's.
async fn start(
    registry: &PipelineRegistry,
    key: &PipelineKey,
    action: &str,
    (trigger_type, detail): (&str, &str),
    refname: &str,
    revision: &str,
) {
    let start = StartExecution {
        trigger: Trigger {
            trigger_type: trigger_type.into(),
            trigger_detail: Some(detail.to_string()),
        },
        variables: BTreeMap::new(),
        source_revisions: [(action.to_string(), revision.to_string())].into(),
        client_request_token: Some(token(&key.name, action, refname, revision)),
        rollback: None,
    };
    match registry.start(key, start).await {
        Ok(id) => log::info!(
            "{refname} moved to {revision}: pipeline {} started execution {id}",
            key.name
        ),
        Err(e) => log::warn!(
            "{refname} moved to {revision}, but pipeline {} did not start: {e:?}",
            key.name
        ),
    }
}

/// The client request token of the start a push makes: the same push, the same token.
fn token(pipeline: &str, action: &str, refname: &str, commit: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{pipeline}\0{action}\0{refname}\0{commit}"));
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("git-{hex}")
}

/// A repository's branches and tags with their commits (tags peeled); `None` when it cannot be
/// read (not there yet, not a repository).
pub async fn read_refs(dir: &Path) -> Option<Refs> {
    let out = git(
        dir,
        &[
            "for-each-ref",
            "--format=%(objectname) %(*objectname) %(refname)",
            "refs/heads",
            "refs/tags",
        ],
    )
    .await
    .ok()?;
    let text = String::from_utf8_lossy(&out);
    Some(
        text.lines()
            .filter_map(|line| {
                let mut parts = line.splitn(3, ' ');
                let object = parts.next()?;
                let peeled = parts.next()?;
                let refname = parts.next()?;
                let commit = if peeled.is_empty() { object } else { peeled };
                Some((refname.to_string(), commit.to_string()))
            })
            .collect(),
    )
}

/// The prefix of the refs that stand for pull requests in what a watch saw.
const PULL_PREFIX: &str = "pull/";

/// The event of a pull request that was at `before` (`OPEN <commit>`, `CLOSED <commit>`, or
/// unseen) and is at `now`, with the commit it is at; `None` when nothing happened.
fn pull_request_event<'a>(before: Option<&str>, now: &'a str) -> Option<(&'static str, &'a str)> {
    let (state, commit) = now.split_once(' ')?;
    let event = match (before.and_then(|b| b.split_once(' ')), state) {
        (None, "OPEN") => "OPEN",
        (None | Some(("OPEN", _)), "CLOSED") => "CLOSED",
        (Some(("OPEN", old)), "OPEN") if old != commit => "UPDATED",
        _ => return None,
    };
    Some((event, commit))
}

/// The files a pull request at `commit` changes: those that differ between it and where it
/// left `destination`.
async fn pull_request_files(dir: &Path, destination: &str, commit: &str) -> Option<Vec<String>> {
    let base = format!("refs/heads/{destination}");
    let out = git(dir, &["merge-base", &base, commit]).await.ok()?;
    let base = String::from_utf8_lossy(&out).trim().to_string();
    changed_files(dir, &base, commit).await
}

/// The files that differ between two commits; `None` when Git cannot tell.
async fn changed_files(dir: &Path, old: &str, new: &str) -> Option<Vec<String>> {
    let out = git(dir, &["diff", "--name-only", "-z", old, new, "--"])
        .await
        .ok()?;
    Some(
        out.split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_request_events_follow_their_states() {
        assert_eq!(pull_request_event(None, "OPEN a"), Some(("OPEN", "a")));
        assert_eq!(pull_request_event(Some("OPEN a"), "OPEN a"), None);
        assert_eq!(
            pull_request_event(Some("OPEN a"), "OPEN b"),
            Some(("UPDATED", "b"))
        );
        assert_eq!(
            pull_request_event(Some("OPEN a"), "CLOSED b"),
            Some(("CLOSED", "b"))
        );
        assert_eq!(pull_request_event(None, "CLOSED b"), Some(("CLOSED", "b")));
        assert_eq!(pull_request_event(Some("CLOSED b"), "CLOSED b"), None);
    }
}
