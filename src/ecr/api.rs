//! ECR's JSON 1.1 API (`AmazonEC2ContainerRegistry_V20150921`), checked against AWS's model.

use std::sync::LazyLock;

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use base64::Engine;
use serde_json::{json, Value};

use super::{arn, digest_of, uri, Ecr, EcrEvent, Image, Registry, Repository};
use super::{MAX_IMAGES, MAX_REPOSITORIES};
use crate::aws::model::ServiceModel;
use crate::aws::pagination;
use crate::aws::{json as wire, AwsError, RequestContext};
use crate::regional::RegionalFailure;

static MODEL: LazyLock<ServiceModel> =
    LazyLock::new(|| ServiceModel::parse(include_str!("../../models/ecr-2015-09-21.json")));

const SERVED: &[&str] = &[
    "CreateRepository",
    "DescribeRepositories",
    "DeleteRepository",
    "PutImage",
    "BatchGetImage",
    "DescribeImages",
    "ListImages",
    "BatchDeleteImage",
    "GetAuthorizationToken",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
];

/// The media type of a manifest that names none (Docker's image manifest, version 2).
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// How long an authorization token is good for (AWS: 12 hours).
const TOKEN_SECONDS: f64 = 12.0 * 3600.0;

/// Whether a request is ECR's: the SigV4 scope `ecr`, or (unsigned) its target.
pub fn is_ecr(service: &str, target: &str) -> bool {
    service == "ecr"
        || (service.is_empty() && target.starts_with(&format!("{}.", MODEL.target_prefix)))
}

/// Answers an ECR request.
pub async fn handle(ecr: &Ecr, ctx: &RequestContext, target: &str, body: &[u8]) -> HttpResponse {
    let result = run(ecr, ctx, target, body).await;
    crate::aws::service::respond(ctx, target, result)
}

/// One operation called in-process, with AWS's JSON input: the path a client's request takes.
pub async fn call(
    ecr: &Ecr,
    ctx: &RequestContext,
    operation: &str,
    input: &Value,
) -> Result<Value, AwsError> {
    let target = format!("{}.{operation}", MODEL.target_prefix);
    let out = run(ecr, ctx, &target, input.to_string().as_bytes()).await?;
    serde_json::from_slice(&out).map_err(|e| AwsError::internal(e.to_string()))
}

fn not_found(account: &str, name: &str) -> AwsError {
    AwsError::new(
        "RepositoryNotFoundException",
        format!(
            "The repository with name '{name}' does not exist in the registry with id '{account}'"
        ),
    )
}

fn repository_json(account: &str, region: &str, r: &Repository) -> Value {
    json!({
        "repositoryArn": arn(account, region, &r.name),
        "registryId": account,
        "repositoryName": r.name,
        "repositoryUri": uri(account, region, &r.name),
        "createdAt": r.created,
        "imageTagMutability": r.tag_mutability,
        "imageScanningConfiguration": {"scanOnPush": r.scan_on_push},
        "encryptionConfiguration": {"encryptionType": r.encryption},
    })
}

/// The sum of the layer sizes a manifest names (its own length when it names none).
fn size_of(manifest: &Value, text: &str) -> u64 {
    let layers: u64 = manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["size"].as_u64())
        .sum();
    if layers > 0 {
        layers
    } else {
        text.len() as u64
    }
}

fn tags_of(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some((
                t["Key"].as_str()?.to_string(),
                t["Value"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// An image identifier, and what it names in a repository: Ok(image) or Err((code, reason)).
fn find<'a>(r: &'a Repository, id: &Value) -> Result<&'a Image, (&'static str, String)> {
    let (digest, tag) = (id["imageDigest"].as_str(), id["imageTag"].as_str());
    match (digest, tag) {
        (None, None) => Err((
            "MissingDigestAndTag",
            "Invalid request parameters: both tag and digest cannot be null".into(),
        )),
        (Some(d), tag) => {
            if !d.starts_with("sha256:") || d.len() != 71 {
                return Err(("InvalidImageDigest", "Invalid image digest".into()));
            }
            let image = r
                .images
                .get(d)
                .ok_or(("ImageNotFound", "Requested image not found".to_string()))?;
            if let Some(t) = tag {
                if !image.tags.iter().any(|x| x == t) {
                    return Err((
                        "ImageTagDoesNotMatchDigest",
                        "Invalid request parameters: image tag does not match digest".into(),
                    ));
                }
            }
            Ok(image)
        }
        (None, Some(t)) => r
            .tagged(t)
            .ok_or(("ImageNotFound", "Requested image not found".to_string())),
    }
}

fn failure(id: &Value, (code, reason): (&str, String)) -> Value {
    json!({"imageId": id, "failureCode": code, "failureReason": reason})
}

async fn run(
    ecr: &Ecr,
    ctx: &RequestContext,
    target: &str,
    body: &[u8],
) -> Result<Bytes, AwsError> {
    let operation = crate::aws::service::operation("ECR", &MODEL, target, |name| {
        SERVED.contains(&name).then_some(name.to_string())
    })?;
    let input = wire::parse_body(body)?;
    // ECR names every invalid input InvalidParameterException (its model lists no other).
    MODEL.validate_input(&operation, &input).map_err(|e| {
        if e.code == "ValidationException" {
            AwsError::new("InvalidParameterException", e.message)
        } else {
            e
        }
    })?;
    let (account, region) = (ctx.account_id.as_str(), ctx.region.as_str());
    if let Some(id) = input["registryId"].as_str().filter(|id| *id != account) {
        return Err(AwsError::new(
            "InvalidParameterException",
            format!("Invalid parameter at 'registryId' failed to satisfy constraint: 'only this account's registry ({account}) is served, not {id}'"),
        ));
    }
    let name = input["repositoryName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let recorded = |e: RegionalFailure<AwsError>| match e {
        RegionalFailure::Refused(e) => e,
        RegionalFailure::Store(e) => AwsError::internal(e.to_string()),
    };
    let read =
        |f: &dyn Fn(&Registry) -> Result<Value, AwsError>| ecr.registries.read(account, region, f);
    let out = match operation.as_str() {
        "CreateRepository" => {
            let repository = Repository {
                name: name.clone(),
                created: crate::aws::now_epoch(),
                tag_mutability: input["imageTagMutability"]
                    .as_str()
                    .unwrap_or("MUTABLE")
                    .to_string(),
                scan_on_push: input["imageScanningConfiguration"]["scanOnPush"]
                    .as_bool()
                    .unwrap_or(false),
                encryption: input["encryptionConfiguration"]["encryptionType"]
                    .as_str()
                    .unwrap_or("AES256")
                    .to_string(),
                tags: tags_of(&input["tags"]),
                images: Default::default(),
            };
            let out = repository_json(account, region, &repository);
            ecr.registries
                .record(account, region, |all| {
                    if all.contains_key(&name) {
                        return Err(AwsError::new(
                            "RepositoryAlreadyExistsException",
                            format!("The repository with name '{name}' already exists in the registry with id '{account}'"),
                        ));
                    }
                    if all.len() >= MAX_REPOSITORIES {
                        return Err(AwsError::new(
                            "LimitExceededException",
                            format!("A registry can have {MAX_REPOSITORIES} repositories in a region."),
                        ));
                    }
                    Ok(vec![EcrEvent::Created(Box::new(repository))])
                })
                .await
                .map_err(recorded)?;
            json!({ "repository": out })
        }
        "DescribeRepositories" => {
            let names: Option<Vec<String>> = input["repositoryNames"].as_array().map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            });
            let max = input["maxResults"].as_u64().unwrap_or(1000) as usize;
            let token = input["nextToken"].as_str();
            read(&|all| {
                let chosen: Vec<&Repository> = match &names {
                    Some(names) => names
                        .iter()
                        .map(|n| all.get(n).ok_or_else(|| not_found(account, n)))
                        .collect::<Result<_, _>>()?,
                    None => all.values().collect(),
                };
                let start = pagination::start_after(chosen.iter().map(|r| r.name.as_str()), token)
                    .ok_or_else(|| {
                        AwsError::new(
                            "InvalidParameterException",
                            "Invalid parameter at 'nextToken'",
                        )
                    })?;
                let page: Vec<&Repository> = chosen.iter().skip(start).take(max).copied().collect();
                let mut out = json!({"repositories": page.iter().map(|r| repository_json(account, region, r)).collect::<Vec<_>>()});
                if start + page.len() < chosen.len() {
                    if let Some(last) = page.last() {
                        out["nextToken"] = pagination::encode(&last.name).into();
                    }
                }
                Ok(out)
            })?
        }
        "DeleteRepository" => {
            let force = input["force"].as_bool().unwrap_or(false);
            let mut gone = None;
            ecr.registries
                .record(account, region, |all| {
                    let r = all.get(&name).ok_or_else(|| not_found(account, &name))?;
                    if !r.images.is_empty() && !force {
                        return Err(AwsError::new(
                            "RepositoryNotEmptyException",
                            format!("The repository with name '{name}' in registry with id '{account}' cannot be deleted because it still contains images"),
                        ));
                    }
                    gone = Some(repository_json(account, region, r));
                    Ok(vec![EcrEvent::Deleted { repository: name.clone() }])
                })
                .await
                .map_err(recorded)?;
            json!({ "repository": gone })
        }
        "PutImage" => {
            let text = input["imageManifest"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let manifest: Value = serde_json::from_str(&text).map_err(|_| {
                AwsError::new(
                    "InvalidParameterException",
                    "Invalid parameter at 'imageManifest' failed to satisfy constraint: 'Invalid JSON syntax'",
                )
            })?;
            let digest = digest_of(text.as_bytes());
            if let Some(given) = input["imageDigest"].as_str().filter(|d| *d != digest) {
                return Err(AwsError::new(
                    "ImageDigestDoesNotMatchException",
                    format!("Invalid parameter at 'imageDigest' failed to satisfy constraint: 'The digest {given} does not match the manifest's digest {digest}'"),
                ));
            }
            let media_type = input["imageManifestMediaType"]
                .as_str()
                .or_else(|| manifest["mediaType"].as_str())
                .unwrap_or(DOCKER_MANIFEST)
                .to_string();
            let tag = input["imageTag"].as_str().map(str::to_string);
            let image = Image {
                digest: digest.clone(),
                manifest: text.clone(),
                media_type: media_type.clone(),
                tags: Vec::new(),
                pushed: crate::aws::now_epoch(),
                size: size_of(&manifest, &text),
            };
            ecr.registries
                .record(account, region, |all| {
                    let r = all.get(&name).ok_or_else(|| not_found(account, &name))?;
                    let existing = r.images.get(&digest);
                    let tagged = tag.as_deref().and_then(|t| r.tagged(t));
                    let same = match (&tag, existing) {
                        (Some(t), Some(e)) => e.tags.contains(t),
                        (None, Some(_)) => true,
                        _ => false,
                    };
                    if same {
                        let shown = tag.clone().unwrap_or_default();
                        return Err(AwsError::new(
                            "ImageAlreadyExistsException",
                            format!("Image with digest '{digest}' and tag '{shown}' already exists in the repository with name '{name}' in registry with id '{account}'"),
                        ));
                    }
                    if let (Some(t), Some(_), "IMMUTABLE") = (&tag, tagged, r.tag_mutability.as_str()) {
                        return Err(AwsError::new(
                            "ImageTagAlreadyExistsException",
                            format!("The image tag '{t}' already exists in the '{name}' repository and cannot be overwritten because the repository is immutable."),
                        ));
                    }
                    if existing.is_none() && r.images.len() >= MAX_IMAGES {
                        return Err(AwsError::new(
                            "LimitExceededException",
                            format!("A repository can hold {MAX_IMAGES} images."),
                        ));
                    }
                    Ok(vec![EcrEvent::ImagePut {
                        repository: name.clone(),
                        image: Box::new(image),
                        tag: tag.clone(),
                    }])
                })
                .await
                .map_err(recorded)?;
            ecr.pushed(super::Pushed {
                account: account.to_string(),
                region: region.to_string(),
                repository: name.clone(),
                tag: tag.clone(),
                digest: digest.clone(),
            });
            let mut id = json!({ "imageDigest": digest });
            if let Some(t) = &tag {
                id["imageTag"] = t.clone().into();
            }
            json!({"image": {"registryId": account, "repositoryName": name, "imageId": id,
                             "imageManifest": text, "imageManifestMediaType": media_type}})
        }
        "BatchGetImage" => read(&|all| {
            let r = all.get(&name).ok_or_else(|| not_found(account, &name))?;
            let (mut images, mut failures) = (Vec::new(), Vec::new());
            for id in input["imageIds"].as_array().into_iter().flatten() {
                match find(r, id) {
                    Ok(image) => images.push(json!({
                        "registryId": account, "repositoryName": name,
                        "imageId": {"imageDigest": image.digest, "imageTag": id["imageTag"].as_str().or(image.tags.first().map(String::as_str))},
                        "imageManifest": image.manifest, "imageManifestMediaType": image.media_type,
                    })),
                    Err(why) => failures.push(failure(id, why)),
                }
            }
            Ok(json!({"images": images, "failures": failures}))
        })?,
        "DescribeImages" => {
            let max = input["maxResults"].as_u64().unwrap_or(100) as usize;
            let token = input["nextToken"].as_str();
            let status = input["filter"]["tagStatus"].as_str().unwrap_or("ANY");
            read(&|all| {
                let r = all.get(&name).ok_or_else(|| not_found(account, &name))?;
                let chosen: Vec<&Image> = match input["imageIds"].as_array() {
                    Some(ids) => ids
                        .iter()
                        .map(|id| {
                            find(r, id).map_err(|_| {
                                AwsError::new(
                                    "ImageNotFoundException",
                                    format!("The image with imageId {{imageDigest:'{}', imageTag:'{}'}} does not exist within the repository with name '{name}' in the registry with id '{account}'",
                                        id["imageDigest"].as_str().unwrap_or("null"), id["imageTag"].as_str().unwrap_or("null")),
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?,
                    None => r
                        .images
                        .values()
                        .filter(|i| match status {
                            "TAGGED" => !i.tags.is_empty(),
                            "UNTAGGED" => i.tags.is_empty(),
                            _ => true,
                        })
                        .collect(),
                };
                let start =
                    pagination::start_after(chosen.iter().map(|i| i.digest.as_str()), token)
                        .ok_or_else(|| {
                            AwsError::new(
                                "InvalidParameterException",
                                "Invalid parameter at 'nextToken'",
                            )
                        })?;
                let page: Vec<&Image> = chosen.iter().skip(start).take(max).copied().collect();
                let details: Vec<Value> = page
                    .iter()
                    .map(|i| {
                        let mut d = json!({
                            "registryId": account, "repositoryName": name, "imageDigest": i.digest,
                            "imageSizeInBytes": i.size, "imagePushedAt": i.pushed,
                            "imageManifestMediaType": i.media_type,
                        });
                        if !i.tags.is_empty() {
                            d["imageTags"] = json!(i.tags);
                        }
                        d
                    })
                    .collect();
                let mut out = json!({ "imageDetails": details });
                if start + page.len() < chosen.len() {
                    if let Some(last) = page.last() {
                        out["nextToken"] = pagination::encode(&last.digest).into();
                    }
                }
                Ok(out)
            })?
        }
        "ListImages" => {
            let max = input["maxResults"].as_u64().unwrap_or(100) as usize;
            let token = input["nextToken"].as_str();
            let status = input["filter"]["tagStatus"].as_str().unwrap_or("ANY");
            read(&|all| {
                let r = all.get(&name).ok_or_else(|| not_found(account, &name))?;
                // One identifier a tag (and one for an untagged image), ordered by digest.
                let mut ids: Vec<(String, Value)> = Vec::new();
                for i in r.images.values() {
                    if i.tags.is_empty() && status != "TAGGED" {
                        ids.push((i.digest.clone(), json!({"imageDigest": i.digest})));
                    }
                    if status != "UNTAGGED" {
                        for t in &i.tags {
                            ids.push((
                                format!("{}:{t}", i.digest),
                                json!({"imageDigest": i.digest, "imageTag": t}),
                            ));
                        }
                    }
                }
                let start = pagination::start_after(ids.iter().map(|(k, _)| k.as_str()), token)
                    .ok_or_else(|| {
                        AwsError::new(
                            "InvalidParameterException",
                            "Invalid parameter at 'nextToken'",
                        )
                    })?;
                let page: Vec<&(String, Value)> = ids.iter().skip(start).take(max).collect();
                let mut out =
                    json!({"imageIds": page.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>()});
                if start + page.len() < ids.len() {
                    if let Some((last, _)) = page.last() {
                        out["nextToken"] = pagination::encode(last).into();
                    }
                }
                Ok(out)
            })?
        }
        "BatchDeleteImage" => {
            let mut answer = json!({});
            ecr.registries
                .record(account, region, |all| {
                    let r = all.get(&name).ok_or_else(|| not_found(account, &name))?;
                    let (mut tags, mut digests, mut deleted, mut failures) =
                        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                    for id in input["imageIds"].as_array().into_iter().flatten() {
                        match find(r, id) {
                            Err(why) => failures.push(failure(id, why)),
                            Ok(image) => match id["imageTag"].as_str() {
                                // A tag goes; the image with it when it was its last.
                                Some(t) if id["imageDigest"].is_null() => {
                                    tags.push(t.to_string());
                                    let left =
                                        image.tags.iter().filter(|x| !tags.contains(x)).count();
                                    if left == 0 && !digests.contains(&image.digest) {
                                        digests.push(image.digest.clone());
                                    }
                                    deleted
                                        .push(json!({"imageDigest": image.digest, "imageTag": t}));
                                }
                                _ => {
                                    if !digests.contains(&image.digest) {
                                        digests.push(image.digest.clone());
                                    }
                                    deleted.push(json!({"imageDigest": image.digest}));
                                }
                            },
                        }
                    }
                    answer = json!({"imageIds": deleted, "failures": failures});
                    if tags.is_empty() && digests.is_empty() {
                        return Ok(vec![]);
                    }
                    Ok(vec![EcrEvent::ImagesDeleted {
                        repository: name.clone(),
                        tags,
                        digests,
                    }])
                })
                .await
                .map_err(recorded)?;
            answer
        }
        "GetAuthorizationToken" => {
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("AWS:{}", uuid::Uuid::new_v4().simple()));
            let host = if ctx.host.is_empty() {
                "localhost:4566"
            } else {
                ctx.host.as_str()
            };
            json!({"authorizationData": [{
                "authorizationToken": token,
                "expiresAt": crate::aws::now_epoch() + TOKEN_SECONDS,
                "proxyEndpoint": format!("http://{host}"),
            }]})
        }
        "TagResource" | "UntagResource" | "ListTagsForResource" => {
            let resource = input["resourceArn"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let prefix = format!("arn:aws:ecr:{region}:{account}:repository/");
            let Some(repository) = resource.strip_prefix(&prefix).map(str::to_string) else {
                return Err(AwsError::new(
                    "InvalidParameterException",
                    format!("Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN {resource}'"),
                ));
            };
            if operation == "ListTagsForResource" {
                read(&|all| {
                    let r = all
                        .get(&repository)
                        .ok_or_else(|| not_found(account, &repository))?;
                    Ok(
                        json!({"tags": r.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>()}),
                    )
                })?
            } else {
                let added = tags_of(&input["tags"]);
                let removed: Vec<String> = input["tagKeys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect();
                ecr.registries
                    .record(account, region, |all| {
                        let r = all
                            .get(&repository)
                            .ok_or_else(|| not_found(account, &repository))?;
                        let mut tags: Vec<(String, String)> = r
                            .tags
                            .iter()
                            .filter(|(k, _)| {
                                !removed.contains(k) && !added.iter().any(|(a, _)| a == k)
                            })
                            .cloned()
                            .collect();
                        tags.extend(added.iter().cloned());
                        if tags.len() > 50 {
                            return Err(AwsError::new(
                                "TooManyTagsException",
                                "A repository can have 50 tags.",
                            ));
                        }
                        Ok(vec![EcrEvent::Tagged {
                            repository: repository.clone(),
                            tags,
                        }])
                    })
                    .await
                    .map_err(recorded)?;
                json!({})
            }
        }
        other => {
            return Err(AwsError::internal(format!(
                "{other} is listed but not served"
            )))
        }
    };
    Ok(Bytes::from(out.to_string()))
}
