//! The region and endpoint as the AWS CLI finds them: the environment (`AWS_REGION`,
//! `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL_CODEPIPELINE`, `AWS_ENDPOINT_URL`), then the profile
//! (`AWS_PROFILE`, else `default`) of the shared config file (`AWS_CONFIG_FILE`, else
//! `~/.aws/config`): its `region` and `endpoint_url`.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the user's AWS configuration says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AwsConfig {
    /// The region.
    pub region: Option<String>,
    /// The endpoint.
    pub endpoint_url: Option<String>,
}

/// The largest config file read (a larger one is ignored).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads the configuration through `env` (the process's environment, in a test another).
pub fn load(env: &dyn Fn(&str) -> Option<String>) -> AwsConfig {
    let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let profile = var("AWS_PROFILE")
        .or_else(|| var("AWS_DEFAULT_PROFILE"))
        .unwrap_or_else(|| "default".to_string());
    let file = var("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".aws").join("config")));
    let settings = file
        .filter(|f| std::fs::metadata(f).is_ok_and(|m| m.len() <= MAX_FILE_BYTES))
        .and_then(|f| std::fs::read_to_string(f).ok())
        .map(|text| profile_settings(&text, &profile))
        .unwrap_or_default();
    AwsConfig {
        region: var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .or_else(|| settings.get("region").cloned()),
        endpoint_url: var("AWS_ENDPOINT_URL_CODEPIPELINE")
            .or_else(|| var("AWS_ENDPOINT_URL"))
            .or_else(|| settings.get("endpoint_url").cloned()),
    }
}

/// The settings of `profile` in a config file's text (`[default]`, `[profile NAME]`).
fn profile_settings(text: &str, profile: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let section = section.trim();
            let name = section
                .strip_prefix("profile ")
                .map(str::trim)
                .unwrap_or(section);
            inside = name == profile && (section.starts_with("profile ") || name == "default");
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let value = value.split(" #").next().unwrap_or_default().trim();
            if !value.is_empty() {
                out.insert(key.trim().to_string(), value.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# mine\n[default]\nregion = eu-west-1\n\n[profile ci]\nregion=us-west-2 # the lab\nendpoint_url = http://127.0.0.1:4599\n[ci]\nregion = ignored\n";

    #[test]
    fn the_profile_of_the_config_file_gives_region_and_endpoint() {
        assert_eq!(
            profile_settings(FILE, "default")
                .get("region")
                .map(String::as_str),
            Some("eu-west-1")
        );
        let ci = profile_settings(FILE, "ci");
        assert_eq!(ci.get("region").map(String::as_str), Some("us-west-2"));
        assert_eq!(
            ci.get("endpoint_url").map(String::as_str),
            Some("http://127.0.0.1:4599")
        );
        assert!(profile_settings(FILE, "nope").is_empty());
    }

    #[test]
    fn the_environment_comes_before_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config");
        std::fs::write(&file, FILE).unwrap();
        let path = file.to_str().unwrap().to_string();
        let with = |pairs: Vec<(&'static str, String)>| {
            let pairs: BTreeMap<&str, String> = pairs.into_iter().collect();
            load(&move |k: &str| pairs.get(k).cloned())
        };
        let read = with(vec![
            ("AWS_CONFIG_FILE", path.clone()),
            ("AWS_PROFILE", "ci".into()),
        ]);
        assert_eq!(read.region.as_deref(), Some("us-west-2"));
        assert_eq!(read.endpoint_url.as_deref(), Some("http://127.0.0.1:4599"));
        let read = with(vec![
            ("AWS_CONFIG_FILE", path),
            ("AWS_REGION", "ap-south-1".into()),
            ("AWS_ENDPOINT_URL", "http://localhost:4566".into()),
        ]);
        assert_eq!(read.region.as_deref(), Some("ap-south-1"));
        assert_eq!(read.endpoint_url.as_deref(), Some("http://localhost:4566"));
    }
}
