//! Git's smart HTTP protocol at `/v1/repos/<name>` (the repository in the server's region) and
//! `/v1/repos/<region>/<name>`, served by `git http-backend` as a CGI program: the request body
//! streams to it, its answer streams back. A push that ends tells the source watch at once.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use super::{CodeCommit, CLONE_PREFIX};

/// What follows a repository in the URLs Git's smart HTTP protocol uses.
const SUFFIXES: &[&str] = &[
    "/info/refs",
    "/git-upload-pack",
    "/git-receive-pack",
    "/HEAD",
];

/// Whether a request is one of Git's smart HTTP requests (not an S3 request to a bucket `v1`).
pub fn is_git_request(path: &str) -> bool {
    path.strip_prefix(CLONE_PREFIX)
        .is_some_and(|rest| SUFFIXES.iter().any(|s| rest.ends_with(s)))
}

/// (region, repository name, suffix) of a Git request path.
fn parse(path: &str, default_region: &str) -> Option<(String, String, String)> {
    let rest = path.strip_prefix(CLONE_PREFIX)?;
    let suffix = SUFFIXES.iter().find(|s| rest.ends_with(*s))?;
    let repo = rest.strip_suffix(suffix)?.trim_end_matches(".git");
    let (region, name) = match repo.split_once('/') {
        Some((region, name)) => (region.to_string(), name.to_string()),
        None => (default_region.to_string(), repo.to_string()),
    };
    (!name.is_empty() && !name.contains('/')).then(|| (region, name, suffix.to_string()))
}

fn plain(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain")
        .body(format!("{message}\n"))
}

/// Serves one Git request for the account `account`.
pub async fn serve(
    codecommit: &CodeCommit,
    account: &str,
    default_region: &str,
    req: &HttpRequest,
    mut payload: web::Payload,
) -> HttpResponse {
    let Some((region, name, suffix)) = parse(req.path(), default_region) else {
        return plain(StatusCode::NOT_FOUND, "Not a repository URL");
    };
    let Some(dir) = codecommit.dir(account, &region, &name) else {
        return plain(
            StatusCode::NOT_FOUND,
            &format!("Repository {name} does not exist in {region}"),
        );
    };
    let (Some(root), Some(file)) = (dir.parent(), dir.file_name()) else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "Bad repository path");
    };
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", format!("/{}{suffix}", file.to_string_lossy()))
        .env("REQUEST_METHOD", req.method().as_str())
        .env("QUERY_STRING", req.query_string())
        .env("CONTENT_TYPE", header("content-type"))
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env(
            "REMOTE_ADDR",
            req.peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let length = header("content-length");
    if !length.is_empty() {
        command.env("CONTENT_LENGTH", length);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("git http-backend could not be run: {e}"),
            )
        }
    };
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "git http-backend has no pipes",
        );
    };
    // The body streams in while the answer streams out.
    actix_rt::spawn(async move {
        while let Some(Ok(chunk)) = payload.next().await {
            if stdin.write_all(&chunk).await.is_err() {
                break;
            }
        }
        drop(stdin);
    });
    let pushed = suffix == "/git-receive-pack";
    let notify = codecommit.pushed.clone();
    let mut reader = tokio::io::BufReader::new(stdout);
    let mut builder = HttpResponse::Ok();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().and_then(|c| c.parse().ok());
            if let Some(status) = code.and_then(|c| StatusCode::from_u16(c).ok()) {
                builder.status(status);
            }
        } else {
            builder.insert_header((name.to_string(), value.to_string()));
        }
    }
    let body =
        futures_util::stream::unfold(Some((reader, child, notify)), move |state| async move {
            let (mut reader, mut child, notify) = state?;
            let mut buf = vec![0u8; 64 * 1024];
            match reader.read(&mut buf).await {
                Ok(n) if n > 0 => {
                    buf.truncate(n);
                    Some((
                        Ok::<Bytes, std::io::Error>(Bytes::from(buf)),
                        Some((reader, child, notify)),
                    ))
                }
                _ => {
                    let _ = child.wait().await;
                    if pushed {
                        notify.notify_one();
                    }
                    None
                }
            }
        });
    builder.streaming(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_paths_name_a_region_and_a_repository() {
        assert!(is_git_request("/v1/repos/app/info/refs"));
        assert!(!is_git_request("/v1/repos/app/file.txt"));
        assert_eq!(
            parse("/v1/repos/app/info/refs", "us-east-1"),
            Some(("us-east-1".into(), "app".into(), "/info/refs".into()))
        );
        assert_eq!(
            parse("/v1/repos/eu-west-1/app.git/git-upload-pack", "us-east-1"),
            Some(("eu-west-1".into(), "app".into(), "/git-upload-pack".into()))
        );
        assert_eq!(parse("/v1/repos/a/b/c/info/refs", "us-east-1"), None);
    }
}
