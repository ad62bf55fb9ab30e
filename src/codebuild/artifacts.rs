//! Build artifacts: the files a buildspec's `artifacts` section names, found and zipped.

use std::io::Write;
use std::path::Path;

use super::buildspec::Artifacts;

/// A buildspec `files` pattern as a regular expression over paths relative to the base dir.
fn pattern(glob: &str) -> Result<regex::Regex, String> {
    let glob = glob.trim_start_matches("./");
    let mut re = String::from("^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                    re.push_str("(?:.*/)?");
                } else {
                    re.push_str(".*");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|e| format!("the files pattern {glob} is not valid: {e}"))
}

fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, base, out);
        } else if let Ok(rel) = path.strip_prefix(base) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// The files an `artifacts` section names, zipped.
pub fn pack(src_dir: &Path, section: Option<&Artifacts>) -> Result<Vec<u8>, String> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buffer);
        if let Some(section) = section {
            for (name, path) in files(src_dir, section)? {
                let content = std::fs::read(&path).map_err(|e| e.to_string())?;
                zip.start_file(name, zip::write::SimpleFileOptions::default())
                    .map_err(|e| e.to_string())?;
                zip.write_all(&content).map_err(|e| e.to_string())?;
            }
        }
        zip.finish().map_err(|e| e.to_string())?;
    }
    Ok(buffer.into_inner())
}

/// The files an `artifacts` section names: (name in the artifact, path on disk).
pub fn files(
    src_dir: &Path,
    section: &Artifacts,
) -> Result<Vec<(String, std::path::PathBuf)>, String> {
    let base = match &section.base_directory {
        Some(b) => src_dir.join(b),
        None => src_dir.to_path_buf(),
    };
    let patterns = section
        .files
        .iter()
        .map(|f| pattern(f))
        .collect::<Result<Vec<_>, _>>()?;
    let mut all = Vec::new();
    walk(&base, &base, &mut all);
    all.sort();
    let mut seen = std::collections::BTreeSet::new();
    Ok(all
        .into_iter()
        .filter(|f| patterns.iter().any(|p| p.is_match(f)))
        .filter_map(|rel| {
            let name = if section.discard_paths {
                rel.rsplit('/').next().unwrap_or(&rel).to_string()
            } else {
                rel.clone()
            };
            seen.insert(name.clone()).then(|| (name, base.join(&rel)))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::pattern;

    #[test]
    fn files_patterns_match_as_codebuild_reads_them() {
        assert!(pattern("**/*").unwrap().is_match("a/b/c.txt"));
        assert!(pattern("**/*").unwrap().is_match("c.txt"));
        assert!(pattern("out/*").unwrap().is_match("out/a.txt"));
        assert!(!pattern("out/*").unwrap().is_match("out/x/a.txt"));
        assert!(pattern("*.txt").unwrap().is_match("a.txt"));
        assert!(!pattern("*.txt").unwrap().is_match("dir/a.txt"));
        assert!(pattern("dist/**/*.js").unwrap().is_match("dist/x/y/app.js"));
    }
}
