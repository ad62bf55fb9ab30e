//! Which source changes start a pipeline, decided without I/O: the connection source actions a
//! pipeline watches, its V2 `triggers` push filters (branches, tags and file paths, with AWS's
//! glob rules) and pull-request filters (events, destination branches, file paths), and, for a
//! source action no trigger names, a push to its `BranchName` unless `DetectChanges` is `false`;
//! and the S3 and CodeCommit source actions, which poll (`PollForSourceChanges`, true unless
//! `false`) or are started by EventBridge rules.

use regex::Regex;

use super::model::{Declaration, GitPullRequestFilter, GitPushFilter, Patterns};

/// A source action that starts its pipeline on pushes.
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    /// The source action.
    pub action: String,
    /// Its `ConnectionArn`.
    pub connection: String,
    /// Its `FullRepositoryId`.
    pub repository: String,
    /// Its `BranchName`.
    pub branch: String,
    /// The push filters of its trigger; `None`: a push to `branch`.
    pub filters: Option<Vec<GitPushFilter>>,
    /// The pull-request filters of its trigger.
    pub pull_requests: Vec<GitPullRequestFilter>,
}

/// The connection source actions of a declaration that start it on pushes.
pub fn watches(declaration: &Declaration) -> Vec<Watch> {
    let triggers = declaration.triggers.as_deref().unwrap_or_default();
    declaration
        .stages
        .iter()
        .flat_map(|s| &s.actions)
        .filter(|a| {
            let id = &a.action_type_id;
            id.category == "Source"
                && id.owner == "AWS"
                && id.provider == "CodeStarSourceConnection"
        })
        .filter_map(|a| {
            let config = a.configuration();
            let get = |k: &str| config.get(k).cloned().unwrap_or_default();
            let trigger = triggers
                .iter()
                .find(|t| t.git_configuration.source_action_name == a.name);
            let filters = match trigger {
                Some(t) => Some(t.git_configuration.push.clone().unwrap_or_default()),
                None if get("DetectChanges").eq_ignore_ascii_case("false") => return None,
                None => None,
            };
            Some(Watch {
                action: a.name.clone(),
                connection: get("ConnectionArn"),
                repository: get("FullRepositoryId"),
                branch: get("BranchName"),
                filters,
                pull_requests: trigger
                    .and_then(|t| t.git_configuration.pull_request.clone())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Checks a declaration's `triggers` as AWS does: each names a connection source action of the
/// pipeline, at most one trigger per action; a push filter selects tags or branches (a tag filter
/// takes no branches or file paths); every pattern is a glob.
pub fn validate(declaration: &Declaration) -> Result<(), String> {
    let sources: Vec<&str> = declaration
        .stages
        .iter()
        .flat_map(|s| &s.actions)
        .filter(|a| {
            let id = &a.action_type_id;
            id.category == "Source" && id.provider == "CodeStarSourceConnection"
        })
        .map(|a| a.name.as_str())
        .collect();
    let mut seen = std::collections::HashSet::new();
    for trigger in declaration.triggers.iter().flatten() {
        let action = trigger.git_configuration.source_action_name.as_str();
        if !sources.contains(&action) {
            return Err(format!(
                "The trigger's sourceActionName {action} is not a CodeStarSourceConnection source action of the pipeline"
            ));
        }
        if !seen.insert(action) {
            return Err(format!(
                "The source action {action} has more than one trigger"
            ));
        }
        for push in trigger.git_configuration.push.iter().flatten() {
            match (&push.tags, &push.branches, &push.file_paths) {
                (Some(_), None, None) | (None, Some(_), _) => {}
                (Some(_), _, _) => {
                    return Err(format!(
                        "A push filter of the trigger on {action} with tags cannot also have branches or file paths"
                    ))
                }
                (None, None, _) => {
                    return Err(format!(
                        "A push filter of the trigger on {action} must select branches or tags"
                    ))
                }
            }
            check_globs(action, [&push.tags, &push.branches, &push.file_paths])?;
        }
        for pull in trigger.git_configuration.pull_request.iter().flatten() {
            if let Some(event) = pull
                .events
                .iter()
                .flatten()
                .find(|e| !PULL_REQUEST_EVENTS.contains(&e.as_str()))
            {
                return Err(format!(
                    "The pull request event '{event}' of the trigger on {action} is not one of OPEN, UPDATED, CLOSED"
                ));
            }
            check_globs(action, [&pull.branches, &pull.file_paths])?;
        }
    }
    Ok(())
}

/// The events of a pull request.
pub const PULL_REQUEST_EVENTS: [&str; 3] = ["OPEN", "UPDATED", "CLOSED"];

fn check_globs<const N: usize>(action: &str, lists: [&Option<Patterns>; N]) -> Result<(), String> {
    for patterns in lists.into_iter().flatten() {
        let all = patterns
            .includes
            .iter()
            .flatten()
            .chain(patterns.excludes.iter().flatten());
        for pattern in all {
            if glob(pattern).is_none() {
                return Err(format!(
                    "The pattern '{pattern}' of the trigger on {action} is not a valid glob"
                ));
            }
        }
    }
    Ok(())
}

/// An S3 source action: a new version of its object starts its pipeline, by polling
/// (`PollForSourceChanges`, true unless `false`, trigger `PollForSourceChanges`) or, when it is
/// `false`, through an EventBridge rule that targets the pipeline (trigger `CloudWatchEvent`).
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectWatch {
    /// The source action.
    pub action: String,
    /// Its `S3Bucket`.
    pub bucket: String,
    /// Its `S3ObjectKey`.
    pub key: String,
    /// Whether it polls.
    pub polls: bool,
}

/// The S3 source actions of a declaration.
pub fn object_watches(declaration: &Declaration) -> Vec<ObjectWatch> {
    declaration
        .stages
        .iter()
        .flat_map(|s| &s.actions)
        .filter(|a| {
            let id = &a.action_type_id;
            id.category == "Source" && id.owner == "AWS" && id.provider == "S3"
        })
        .map(|a| {
            let config = a.configuration();
            let polls = config
                .get("PollForSourceChanges")
                .is_none_or(|p| !p.eq_ignore_ascii_case("false"));
            ObjectWatch {
                action: a.name.clone(),
                bucket: config.get("S3Bucket").cloned().unwrap_or_default(),
                key: config.get("S3ObjectKey").cloned().unwrap_or_default(),
                polls,
            }
        })
        .collect()
}

/// A CodeCommit source action: a commit on its branch starts its pipeline, by polling
/// (`PollForSourceChanges`, true unless `false`, trigger `PollForSourceChanges`) or, when it is
/// `false`, through an EventBridge rule that targets the pipeline (trigger `CloudWatchEvent`).
#[derive(Debug, Clone, PartialEq)]
pub struct RepositoryWatch {
    /// The source action.
    pub action: String,
    /// Its `RepositoryName`.
    pub repository: String,
    /// Its `BranchName`.
    pub branch: String,
    /// Whether it polls.
    pub polls: bool,
}

/// The CodeCommit source actions of a declaration.
pub fn repository_watches(declaration: &Declaration) -> Vec<RepositoryWatch> {
    declaration
        .stages
        .iter()
        .flat_map(|s| &s.actions)
        .filter(|a| {
            let id = &a.action_type_id;
            id.category == "Source" && id.owner == "AWS" && id.provider == "CodeCommit"
        })
        .map(|a| {
            let config = a.configuration();
            RepositoryWatch {
                action: a.name.clone(),
                repository: config.get("RepositoryName").cloned().unwrap_or_default(),
                branch: config.get("BranchName").cloned().unwrap_or_default(),
                polls: config
                    .get("PollForSourceChanges")
                    .is_none_or(|p| !p.eq_ignore_ascii_case("false")),
            }
        })
        .collect()
}

/// A push: a ref that moved (`refs/heads/…` or `refs/tags/…`) and the files its new commit
/// changed (`None` when unknown: a new ref).
#[derive(Debug, Clone, PartialEq)]
pub struct Push<'a> {
    /// The ref.
    pub refname: &'a str,
    /// The files changed.
    pub files: Option<&'a [String]>,
}

/// A pull-request event: `OPEN`, `UPDATED` or `CLOSED`, of a pull request into `destination`
/// (a branch) whose changes are `files` (`None` when unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct PullRequestChange<'a> {
    /// The event.
    pub event: &'a str,
    /// The destination branch.
    pub destination: &'a str,
    /// The files the pull request changes.
    pub files: Option<&'a [String]>,
}

impl Watch {
    /// Whether the pull-request event starts the pipeline: a filter takes its event (every
    /// event, without `events`), its destination branch and one of its files.
    pub fn starts_on_pull_request(&self, change: &PullRequestChange<'_>) -> bool {
        self.pull_requests.iter().any(|f| {
            f.events
                .as_ref()
                .is_none_or(|events| events.iter().any(|e| e == change.event))
                && f.branches
                    .as_ref()
                    .is_none_or(|b| selects(b, change.destination))
                && files_pass(f.file_paths.as_ref(), change.files)
        })
    }

    /// Whether the push starts the pipeline.
    pub fn starts_on(&self, push: &Push<'_>) -> bool {
        let branch = push.refname.strip_prefix("refs/heads/");
        let tag = push.refname.strip_prefix("refs/tags/");
        match &self.filters {
            None => branch == Some(self.branch.as_str()),
            Some(filters) => filters
                .iter()
                .any(|f| filter_matches(f, branch, tag, push.files)),
        }
    }
}

fn filter_matches(
    filter: &GitPushFilter,
    branch: Option<&str>,
    tag: Option<&str>,
    files: Option<&[String]>,
) -> bool {
    if let Some(tags) = &filter.tags {
        // A tag filter is about tag pushes only.
        return tag.is_some_and(|t| selects(tags, t));
    }
    let Some(branch) = branch else {
        return false;
    };
    if !filter.branches.as_ref().is_none_or(|b| selects(b, branch)) {
        return false;
    }
    files_pass(filter.file_paths.as_ref(), files)
}

fn files_pass(paths: Option<&Patterns>, files: Option<&[String]>) -> bool {
    match (paths, files) {
        (None, _) => true,
        // A new branch: its files are not known to have changed, so it passes.
        (Some(_), None) => true,
        (Some(paths), Some(files)) => files.iter().any(|f| selects(paths, f)),
    }
}

/// Whether `value` is included (by any include, or there are none) and not excluded: excludes
/// win.
fn selects(patterns: &Patterns, value: &str) -> bool {
    let any = |list: &Option<Vec<String>>| {
        list.iter()
            .flatten()
            .any(|p| glob(p).is_some_and(|re| re.is_match(value)))
    };
    let included =
        patterns.includes.as_ref().is_none_or(|l| l.is_empty()) || any(&patterns.includes);
    included && !any(&patterns.excludes)
}

/// A glob as AWS reads trigger filters: `*` any characters within a path part, `**` any
/// characters across parts, `?` one character, `[…]` (with `!` negating) one of a set,
/// `{a,b}` either, `\` escaping. `None` for a pattern that is not a glob.
pub fn glob(pattern: &str) -> Option<Regex> {
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    let mut braces = 0;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` also matches no directory at all.
                if chars.peek() == Some(&'/') {
                    chars.next();
                    re.push_str("(?:.*/)?");
                } else {
                    re.push_str(".*");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '\\' => re.push_str(&regex::escape(&chars.next()?.to_string())),
            '[' => {
                re.push('[');
                if chars.peek() == Some(&'!') {
                    chars.next();
                    re.push('^');
                }
                loop {
                    match chars.next()? {
                        ']' => break,
                        c @ ('\\' | '[' | '^' | '&' | '~') => {
                            re.push('\\');
                            re.push(c);
                        }
                        c => re.push(c),
                    }
                }
                re.push(']');
            }
            '{' => {
                braces += 1;
                re.push_str("(?:");
            }
            '}' if braces > 0 => {
                braces -= 1;
                re.push(')');
            }
            ',' if braces > 0 => re.push('|'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    if braces > 0 {
        return None;
    }
    re.push('$');
    Regex::new(&re).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, value: &str) -> bool {
        glob(pattern).unwrap().is_match(value)
    }

    #[test]
    fn globs_follow_aws_rules() {
        assert!(m("release/*", "release/1.0"));
        assert!(!m("release/*", "release/1.0/hotfix"));
        assert!(m("feature/**", "feature/a/b"));
        assert!(m("**/README.md", "README.md"));
        assert!(m("**/README.md", "docs/x/README.md"));
        assert!(m("docs/**", "docs/a.md"));
        assert!(!m("docs/**", "src/docs.md"));
        assert!(m("*.{java,class}", "A.class"));
        assert!(!m("*.{java,class}", "A.kt"));
        assert!(m("foo.?", "foo.c"));
        assert!(m("v[0-9]*", "v1.2"));
        assert!(!m("v[!0-9]*", "v1.2"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(glob("{a,b").is_none());
    }

    fn filter(value: serde_json::Value) -> GitPushFilter {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn push_filters_match_branches_tags_and_files() {
        let watch = |filters: Vec<GitPushFilter>| Watch {
            action: "Source".into(),
            connection: String::new(),
            repository: "acme/web".into(),
            branch: "main".into(),
            filters: Some(filters),
            pull_requests: Vec::new(),
        };
        fn push<'a>(refname: &'a str, files: Option<&'a [String]>) -> Push<'a> {
            Push { refname, files }
        }
        let files = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let branches = watch(vec![filter(serde_json::json!({
            "branches": {"includes": ["main", "release/*"], "excludes": ["release/old"]},
            "filePaths": {"excludes": ["docs/**"]}}))]);
        let code = files(&["src/app.rs"]);
        let docs = files(&["docs/guide.md"]);
        assert!(branches.starts_on(&push("refs/heads/main", Some(&code))));
        assert!(branches.starts_on(&push("refs/heads/release/2", Some(&code))));
        assert!(!branches.starts_on(&push("refs/heads/release/old", Some(&code))));
        assert!(!branches.starts_on(&push("refs/heads/dev", Some(&code))));
        assert!(!branches.starts_on(&push("refs/heads/main", Some(&docs))));
        assert!(!branches.starts_on(&push("refs/tags/main", None)));
        let tags = watch(vec![filter(
            serde_json::json!({"tags": {"includes": ["v*"]}}),
        )]);
        assert!(tags.starts_on(&push("refs/tags/v1", None)));
        assert!(!tags.starts_on(&push("refs/tags/x1", None)));
        assert!(!tags.starts_on(&push("refs/heads/main", Some(&code))));
        let default = Watch {
            filters: None,
            ..tags.clone()
        };
        assert!(default.starts_on(&push("refs/heads/main", Some(&docs))));
        assert!(!default.starts_on(&push("refs/heads/dev", Some(&docs))));
    }

    #[test]
    fn pull_request_filters_match_events_destinations_and_files() {
        let watch = Watch {
            action: "Source".into(),
            connection: String::new(),
            repository: "acme/web".into(),
            branch: "main".into(),
            filters: Some(Vec::new()),
            pull_requests: vec![serde_json::from_value(serde_json::json!({
                "events": ["OPEN", "UPDATED"],
                "branches": {"includes": ["main"]},
                "filePaths": {"includes": ["src/**"]}}))
            .unwrap()],
        };
        let code = vec!["src/app.rs".to_string()];
        let docs = ["docs/a.md".to_string()];
        let change = |event, destination, files| PullRequestChange {
            event,
            destination,
            files,
        };
        assert!(watch.starts_on_pull_request(&change("OPEN", "main", Some(&code[..]))));
        assert!(watch.starts_on_pull_request(&change("UPDATED", "main", Some(&code[..]))));
        assert!(!watch.starts_on_pull_request(&change("CLOSED", "main", Some(&code[..]))));
        assert!(!watch.starts_on_pull_request(&change("OPEN", "dev", Some(&code[..]))));
        assert!(!watch.starts_on_pull_request(&change("OPEN", "main", Some(&docs[..]))));
        assert!(!watch.starts_on(&Push {
            refname: "refs/heads/main",
            files: Some(&code),
        }));
        let every = Watch {
            pull_requests: vec![serde_json::from_value(serde_json::json!({})).unwrap()],
            ..watch
        };
        assert!(every.starts_on_pull_request(&change("CLOSED", "dev", None)));
    }
}
