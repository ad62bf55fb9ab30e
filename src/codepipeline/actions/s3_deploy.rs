//! The S3 deploy action: puts the input artifact into a bucket, as one object (`Extract` false,
//! under `ObjectKey`) or as the files of the zip it is (`Extract` true, under the `ObjectKey`
//! prefix when one is given). `CacheControl` is stored on every object written; `CannedACL` is
//! accepted and has no effect (the embedded S3 has no ACLs).

use std::io::Read;

use super::{body_of, failed, read_artifact, store_failure, ActionContext};
use crate::codepipeline::execution::{ActionOutput, ActionRun, ErrorDetails};
use crate::s3::objects::PutAttributes;

pub(super) async fn run(
    ctx: &ActionContext,
    run: &ActionRun,
) -> Result<ActionOutput, ErrorDetails> {
    let config = &run.input.resolved_configuration;
    let bucket = config
        .get("BucketName")
        .ok_or_else(|| failed("BucketName is not configured"))?;
    let extract = config
        .get("Extract")
        .is_some_and(|e| e.eq_ignore_ascii_case("true"));
    let input = run
        .input
        .input_artifacts
        .first()
        .ok_or_else(|| failed("The S3 deploy action has no input artifact"))?;
    let bytes = read_artifact(ctx, input).await?;
    let cache_control = config.get("CacheControl").cloned();
    if !extract {
        let key = config
            .get("ObjectKey")
            .ok_or_else(|| failed("ObjectKey must be configured when Extract is false"))?;
        let attributes = PutAttributes {
            content_type: None,
            cache_control,
        };
        let put = ctx
            .objects
            .put(bucket, key, &attributes, body_of(bytes))
            .await
            .map_err(|e| store_failure(e, bucket, key))?;
        return Ok(ActionOutput {
            external_execution_id: Some(put.etag.chars().take(8).collect()),
            external_execution_summary: Some("Deployment Succeeded".into()),
            ..Default::default()
        });
    }
    let prefix = config
        .get("ObjectKey")
        .map(|p| p.trim_matches('/').to_string())
        .filter(|p| !p.is_empty());
    let files = unzip(&bytes, &input.name)?;
    let count = files.len();
    for (name, content) in files {
        let key = match &prefix {
            Some(prefix) => format!("{prefix}/{name}"),
            None => name.clone(),
        };
        let attributes = PutAttributes {
            content_type: Some(content_type_of(&name).to_string()),
            cache_control: cache_control.clone(),
        };
        ctx.objects
            .put(bucket, &key, &attributes, body_of(content.into()))
            .await
            .map_err(|e| store_failure(e, bucket, &key))?;
    }
    Ok(ActionOutput {
        external_execution_id: Some(format!("{count} files")),
        external_execution_summary: Some("Deployment Succeeded".into()),
        ..Default::default()
    })
}

/// The files of a zip artifact, by their path inside it. An entry whose path would leave the
/// deployment prefix (`../`, an absolute path) fails the action.
pub(super) fn unzip(bytes: &[u8], artifact: &str) -> Result<Vec<(String, Vec<u8>)>, ErrorDetails> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| {
        failed(format!(
            "The input artifact {artifact} is not a zip file: {e}"
        ))
    })?;
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| {
            failed(format!(
                "The input artifact {artifact} is not readable: {e}"
            ))
        })?;
        if entry.is_dir() {
            continue;
        }
        let raw = entry.name().map(|n| n.to_string()).map_err(|e| {
            failed(format!(
                "An entry of {artifact} has an unreadable name: {e}"
            ))
        })?;
        let safe = entry
            .enclosed_name()
            .filter(|p| !raw.starts_with('/') && !raw.contains("..") && p.components().count() > 0)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .ok_or_else(|| failed(format!("The input artifact {artifact} has an entry {raw} that would be deployed outside its prefix")))?;
        let mut content = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut content).map_err(|e| {
            failed(format!(
                "The entry {raw} of {artifact} is not readable: {e}"
            ))
        })?;
        files.push((safe, content));
    }
    Ok(files)
}

/// The Content-Type S3 deploy gives a file, by its extension.
fn content_type_of(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" => "application/javascript",
        "json" => "application/json",
        "txt" => "text/plain",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}
