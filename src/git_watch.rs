//! Starts pipelines on Git pushes to the repositories under `git_repos_dir`: every
//! `git_poll_interval_ms`, each watched repository's branches and tags are read (`git
//! for-each-ref`) and compared with what was seen last; a ref that moved starts each pipeline
//! whose trigger (see `codepipeline::triggers`) selects it, through the pipeline's one door,
//! with trigger `WebhookV2` and the new commit as the source action's revision.
//!
//! What was seen is recorded in the log (one stream per account and region,
//! `gittriggers:<account>:<region>`), so a commit made while the server was down starts its
//! pipeline once the server is back; and each start carries a client request token made of the
//! pipeline, action, ref and commit, so that the same push never starts two executions, also
//! across a crash between the start and its record.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::codepipeline::actions::{git, repository_dir};
use crate::codepipeline::actors::{PipelineRegistry, StartExecution};
use crate::codepipeline::execution::Trigger;
use crate::codepipeline::ids::PipelineKey;
use crate::codepipeline::model::Declaration;
use crate::codepipeline::triggers::{watches, Push, Watch};
use crate::codepipeline::views::executions::ExecutionViews;
use crate::codepipeline::views::{declaration_of_output, PipelineViews};
use crate::eventstore::{EventStore, EventType};
use crate::regional::Regional;

/// The prefix of the seen-refs streams.
pub const STREAM_PREFIX: &str = "gittriggers:";

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
        "GitRefsSeen"
    }

    fn owns(type_name: &str) -> bool {
        type_name == "GitRefsSeen"
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
    Regional::new(log, STREAM_PREFIX, "git_triggers", fold)
}

/// The watcher.
pub struct GitWatch {
    /// Where the repositories are.
    pub repos_dir: PathBuf,
    /// The pipelines.
    pub views: Arc<PipelineViews>,
    /// What was seen.
    pub seen: Arc<Seen>,
    /// The executions, for what a pipeline read last.
    pub executions: Arc<ExecutionViews>,
    /// Declarations already read, by pipeline key: (version, watches).
    cache: HashMap<String, (u64, Vec<Watch>)>,
}

impl GitWatch {
    /// A watcher of the repositories under `repos_dir`.
    pub fn new(
        repos_dir: PathBuf,
        views: Arc<PipelineViews>,
        seen: Arc<Seen>,
        executions: Arc<ExecutionViews>,
    ) -> Self {
        GitWatch {
            repos_dir,
            views,
            seen,
            executions,
            cache: HashMap::new(),
        }
    }

    /// Polls for ever, every `interval`, starting pipelines through `registry`.
    pub async fn run(mut self, interval: Duration, registry: &PipelineRegistry) {
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.poll(registry).await;
        }
    }

    /// The pipelines that watch, with their watches; what pipelines that watched are gone.
    fn watched(&mut self) -> (Vec<(PipelineKey, Vec<Watch>)>, Vec<PipelineKey>) {
        let mut out = Vec::new();
        let mut live = std::collections::HashSet::new();
        for (key, version, bytes) in self.views.current_versions() {
            live.insert(key.clone());
            let fresh = self.cache.get(&key).is_some_and(|(v, _)| *v == version);
            if !fresh {
                let watches = declaration_of_output(&bytes)
                    .map(|d: Declaration| watches(&d))
                    .unwrap_or_default();
                self.cache.insert(key.clone(), (version, watches));
            }
            let (_, watches) = &self.cache[&key];
            if let (false, Some(parsed)) = (watches.is_empty(), PipelineKey::parse(&key)) {
                out.push((parsed, watches.clone()));
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

    /// One look at every watched repository.
    pub async fn poll(&mut self, registry: &PipelineRegistry) {
        let (watched, gone) = self.watched();
        for key in gone {
            let event = SeenEvent::Forgotten {
                pipeline: key.name.clone(),
            };
            if let Err(e) = self
                .seen
                .record(&key.account, &key.region, |_| Ok::<_, ()>(vec![event]))
                .await
            {
                log::warn!(
                    "the refs seen for pipeline {} were not forgotten: {e:?}",
                    key.name
                );
            }
        }
        let mut refs_of: HashMap<PathBuf, Option<Refs>> = HashMap::new();
        for (key, watches) in watched {
            for watch in watches {
                let Some(dir) = repository_dir(&self.repos_dir, &watch.repository) else {
                    continue;
                };
                if !refs_of.contains_key(&dir) {
                    let refs = read_refs(&dir).await;
                    refs_of.insert(dir.clone(), refs);
                }
                let Some(Some(refs)) = refs_of.get(&dir) else {
                    continue;
                };
                self.look(registry, &key, &watch, &dir, refs).await;
            }
        }
    }

    /// Compares a watch's refs with what it saw last; starts what moved refs select.
    async fn look(
        &self,
        registry: &PipelineRegistry,
        key: &PipelineKey,
        watch: &Watch,
        dir: &Path,
        refs: &Refs,
    ) {
        let before = self.seen.read(&key.account, &key.region, |s| {
            s.get(&key.name).and_then(|p| p.get(&watch.action)).cloned()
        });
        if before.as_ref() == Some(refs) {
            return;
        }
        // The first look takes what is there as seen, except that the branch the pipeline's
        // newest execution read counts as at the commit it read: a commit made since starts it.
        let before = before.unwrap_or_else(|| {
            let mut base = refs.clone();
            if let Some(read) = self.last_read(key, &watch.action) {
                base.insert(format!("refs/heads/{}", watch.branch), read);
            }
            base
        });
        {
            for (refname, commit) in refs {
                let old = before.get(refname);
                if old == Some(commit) {
                    continue;
                }
                let files = match old {
                    Some(old) => changed_files(dir, old, commit).await,
                    None => None,
                };
                let push = Push {
                    refname,
                    files: files.as_deref(),
                };
                if watch.starts_on(&push) {
                    start(registry, key, watch, refname, commit).await;
                }
            }
        }
        let event = SeenEvent::Seen {
            pipeline: key.name.clone(),
            action: watch.action.clone(),
            refs: refs.clone(),
        };
        if let Err(e) = self
            .seen
            .record(&key.account, &key.region, |_| Ok::<_, ()>(vec![event]))
            .await
        {
            log::warn!(
                "the refs seen for pipeline {} were not recorded: {e:?}",
                key.name
            );
        }
    }
}

impl GitWatch {
    /// The commit the pipeline's newest execution read with the source action, if it read one.
    fn last_read(&self, key: &PipelineKey, action: &str) -> Option<String> {
        let mut read = None;
        let _ = self.executions.walk_newest(&key.key(), 0, 1, |summary, _| {
            read = summary
                .source_revisions
                .iter()
                .find(|(a, _)| a == action)
                .map(|(_, r)| r.clone());
            Ok::<bool, ()>(false)
        });
        read
    }
}

/// Starts the pipeline for a push that its watch selects.
async fn start(
    registry: &PipelineRegistry,
    key: &PipelineKey,
    watch: &Watch,
    refname: &str,
    commit: &str,
) {
    {
        let start = StartExecution {
            trigger: Trigger {
                trigger_type: "WebhookV2".into(),
                trigger_detail: Some(watch.connection.clone()),
            },
            variables: BTreeMap::new(),
            source_revisions: [(watch.action.clone(), commit.to_string())].into(),
            client_request_token: Some(token(&key.name, &watch.action, refname, commit)),
            rollback: None,
        };
        match registry.start(key, start).await {
            Ok(id) => log::info!(
                "{refname} of {} moved to {commit}: pipeline {} started execution {id}",
                watch.repository,
                key.name
            ),
            Err(e) => log::warn!(
                "{refname} of {} moved to {commit}, but pipeline {} did not start: {e:?}",
                watch.repository,
                key.name
            ),
        }
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
