//! Buildspecs (version 0.2): what a build runs, read from YAML.

use yaml_rust2::{Yaml, YamlLoader};

/// The phases a buildspec may declare, in the order they run.
pub const PHASES: [(&str, &str); 4] = [
    ("install", "INSTALL"),
    ("pre_build", "PRE_BUILD"),
    ("build", "BUILD"),
    ("post_build", "POST_BUILD"),
];

/// One phase of a buildspec.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Phase {
    /// `INSTALL`, `PRE_BUILD`, `BUILD` or `POST_BUILD`.
    pub phase_type: &'static str,
    /// The commands, run one after the other until one fails.
    pub commands: Vec<String>,
    /// Commands run after `commands`, whether they failed or not.
    pub finally: Vec<String>,
    /// `ABORT` (the default) or `CONTINUE`.
    pub on_failure: String,
}

/// The `artifacts` section.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Artifacts {
    /// Glob patterns of the files to pack (`**/*` for everything).
    pub files: Vec<String>,
    /// The directory the patterns are relative to.
    pub base_directory: Option<String>,
    /// Pack files without their directories.
    pub discard_paths: bool,
    /// The artifact's name.
    pub name: Option<String>,
}

/// A parsed buildspec.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buildspec {
    /// `env.variables`, in order.
    pub variables: Vec<(String, String)>,
    /// `env.exported-variables`.
    pub exported: Vec<String>,
    /// `env.parameter-store`: variable, parameter name.
    pub parameter_store: Vec<(String, String)>,
    /// `env.shell` (only `bash` runs here).
    pub shell: Option<String>,
    /// The declared phases, in run order.
    pub phases: Vec<Phase>,
    /// The `artifacts` section.
    pub artifacts: Option<Artifacts>,
    /// `artifacts.secondary-artifacts`, by identifier.
    pub secondary_artifacts: Vec<(String, Artifacts)>,
}

fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Real(r) => Some(r.clone()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn strings(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::Array(items) => items.iter().filter_map(scalar).collect(),
        other => scalar(other).into_iter().collect(),
    }
}

/// Reads a buildspec; the error says what is wrong with it, as CodeBuild's would.
pub fn parse(text: &str) -> Result<Buildspec, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("YAML_FILE_ERROR: {e}"))?;
    let doc = docs
        .into_iter()
        .next()
        .ok_or("YAML_FILE_ERROR: the buildspec is empty")?;
    if doc.as_hash().is_none() {
        return Err("YAML_FILE_ERROR: the buildspec is not a YAML map".into());
    }
    let version = scalar(&doc["version"]).unwrap_or_default();
    if version != "0.2" && version != "0.1" {
        return Err(format!(
            "YAML_FILE_ERROR: invalid buildspec version {version:?}: 0.2 is supported"
        ));
    }
    let mut spec = Buildspec::default();
    let env = &doc["env"];
    if let Some(vars) = env["variables"].as_hash() {
        for (k, v) in vars {
            if let (Some(k), Some(v)) = (scalar(k), scalar(v)) {
                spec.variables.push((k, v));
            }
        }
    }
    if let Some(vars) = env["parameter-store"].as_hash() {
        for (k, v) in vars {
            if let (Some(k), Some(v)) = (scalar(k), scalar(v)) {
                spec.parameter_store.push((k, v));
            }
        }
    }
    if !env["secrets-manager"].is_badvalue() {
        return Err(
            "YAML_FILE_ERROR: env.secrets-manager is not served by codepipeline-local (no Secrets Manager)"
                .into(),
        );
    }
    spec.exported = strings(&env["exported-variables"]);
    spec.shell = scalar(&env["shell"]);
    for (key, phase_type) in PHASES {
        let p = &doc["phases"][key];
        if p.is_badvalue() || p.is_null() {
            continue;
        }
        spec.phases.push(Phase {
            phase_type,
            commands: strings(&p["commands"]),
            finally: strings(&p["finally"]),
            on_failure: scalar(&p["on-failure"]).unwrap_or_else(|| "ABORT".into()),
        });
    }
    let read = |a: &Yaml| Artifacts {
        files: strings(&a["files"]),
        base_directory: scalar(&a["base-directory"]),
        discard_paths: matches!(scalar(&a["discard-paths"]).as_deref(), Some("yes" | "true")),
        name: scalar(&a["name"]),
    };
    let a = &doc["artifacts"];
    if a.as_hash().is_some() {
        if !a["files"].is_badvalue() {
            spec.artifacts = Some(read(a));
        }
        for (id, section) in a["secondary-artifacts"].as_hash().into_iter().flatten() {
            if let Some(id) = scalar(id) {
                spec.secondary_artifacts.push((id, read(section)));
            }
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_buildspec_is_read() {
        let spec = parse(
            r#"
version: 0.2
env:
  variables:
    GREETING: hello
    COUNT: 3
  exported-variables:
    - VERSION
phases:
  install:
    commands:
      - echo installing
  build:
    on-failure: CONTINUE
    commands:
      - echo $GREETING
      - export VERSION=1.2.3
    finally:
      - echo done
artifacts:
  files:
    - '**/*'
  base-directory: out
  discard-paths: yes
"#,
        )
        .unwrap();
        assert_eq!(
            spec.variables,
            vec![
                ("GREETING".into(), "hello".into()),
                ("COUNT".into(), "3".into())
            ]
        );
        assert_eq!(spec.exported, vec!["VERSION".to_string()]);
        let types: Vec<_> = spec.phases.iter().map(|p| p.phase_type).collect();
        assert_eq!(types, ["INSTALL", "BUILD"]);
        assert_eq!(spec.phases[1].commands.len(), 2);
        assert_eq!(spec.phases[1].finally, vec!["echo done".to_string()]);
        assert_eq!(spec.phases[1].on_failure, "CONTINUE");
        let a = spec.artifacts.unwrap();
        assert_eq!(a.files, vec!["**/*".to_string()]);
        assert_eq!(a.base_directory.as_deref(), Some("out"));
        assert!(a.discard_paths);
    }

    #[test]
    fn secondary_artifacts_are_read_by_identifier() {
        let spec = parse(
            "version: 0.2\nartifacts:\n  files: ['a.txt']\n  secondary-artifacts:\n    docs:\n      files: ['docs/**/*']\n      base-directory: site\n",
        )
        .unwrap();
        assert_eq!(spec.artifacts.unwrap().files, vec!["a.txt".to_string()]);
        let (id, docs) = &spec.secondary_artifacts[0];
        assert_eq!(id, "docs");
        assert_eq!(docs.base_directory.as_deref(), Some("site"));
    }

    #[test]
    fn broken_buildspecs_are_named() {
        assert!(parse("version: 0.2\nphases: [")
            .unwrap_err()
            .starts_with("YAML_FILE_ERROR"));
        assert!(parse("- a list").unwrap_err().contains("not a YAML map"));
        assert!(parse("version: 9\n").unwrap_err().contains("version"));
    }
}
