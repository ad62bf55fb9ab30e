//! ECR with the official `aws-sdk-ecr` crate: repositories, images put with their digests
//! computed from the manifest, tags moved and removed, AWS's errors, kill -9; and the ECR
//! source action: `imageDetail.json`, output variables used downstream, a digest override, a
//! push starting the pipeline through an EventBridge rule, and its failures.

use aws_sdk_codepipeline::types::{
    PipelineExecutionStatus, SourceRevisionOverride, SourceRevisionType,
};
use aws_sdk_ecr::error::ProvideErrorMetadata;
use aws_sdk_ecr::types::{ImageIdentifier, ImageTagMutability, ListImagesFilter, TagStatus};
use base64::Engine;
use serde_json::{json, Value};

use crate::common::Server;
use crate::engine::{body, finished, latest_execution, tutorial_buckets};

/// A Docker image manifest whose layer is `size` bytes (its digest differs with `size`).
fn manifest(size: u64) -> String {
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7,
                   "digest": format!("sha256:{:064x}", size + 1)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": size,
                    "digest": format!("sha256:{size:064x}")}],
    })
    .to_string()
}

pub(crate) fn digest(text: &str) -> String {
    use sha2::Digest;
    let sum = sha2::Sha256::digest(text.as_bytes());
    format!(
        "sha256:{}",
        sum.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

async fn put(ecr: &aws_sdk_ecr::Client, repository: &str, tag: &str, text: &str) -> String {
    ecr.put_image()
        .repository_name(repository)
        .image_tag(tag)
        .image_manifest(text)
        .send()
        .await
        .unwrap()
        .image()
        .unwrap()
        .image_id()
        .unwrap()
        .image_digest()
        .unwrap()
        .to_string()
}

fn by_tag(tag: &str) -> ImageIdentifier {
    ImageIdentifier::builder().image_tag(tag).build()
}

#[tokio::test]
async fn repositories_and_images_are_kept_as_ecr_keeps_them() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::try_start_in(data.path()).unwrap();
    let ecr = server.ecr();
    let made = ecr
        .create_repository()
        .repository_name("team/web")
        .send()
        .await
        .unwrap();
    let repository = made.repository().unwrap();
    assert_eq!(
        repository.repository_uri(),
        Some("000000000000.dkr.ecr.eu-central-1.amazonaws.com/team/web")
    );
    assert_eq!(
        repository.repository_arn(),
        Some("arn:aws:ecr:eu-central-1:000000000000:repository/team/web")
    );
    let again = ecr
        .create_repository()
        .repository_name("team/web")
        .send()
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some("RepositoryAlreadyExistsException"));
    let bad = ecr
        .create_repository()
        .repository_name("Team Web")
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some("InvalidParameterException"), "{bad:?}");

    // The digest is the manifest's sha256; the same image under the same tag again is refused.
    let (v1, v2) = (manifest(1000), manifest(2000));
    let d1 = put(&ecr, "team/web", "latest", &v1).await;
    assert_eq!(d1, digest(&v1));
    let same = ecr
        .put_image()
        .repository_name("team/web")
        .image_tag("latest")
        .image_manifest(&v1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(same.code(), Some("ImageAlreadyExistsException"));
    let wrong = ecr
        .put_image()
        .repository_name("team/web")
        .image_tag("v0")
        .image_manifest(&v1)
        .image_digest(digest("other"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Some("ImageDigestDoesNotMatchException"));
    let garbage = ecr
        .put_image()
        .repository_name("team/web")
        .image_manifest("not json")
        .send()
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), Some("InvalidParameterException"));
    // `latest` moves to the second image; the first keeps `v1`.
    put(&ecr, "team/web", "v1", &v1).await;
    let d2 = put(&ecr, "team/web", "latest", &v2).await;
    let described = ecr
        .describe_images()
        .repository_name("team/web")
        .image_ids(by_tag("latest"))
        .send()
        .await
        .unwrap();
    let detail = &described.image_details()[0];
    assert_eq!(detail.image_digest(), Some(d2.as_str()));
    assert_eq!(detail.image_tags(), ["latest"]);
    assert_eq!(detail.image_size_in_bytes(), Some(2000));
    let listed = ecr
        .list_images()
        .repository_name("team/web")
        .filter(
            ListImagesFilter::builder()
                .tag_status(TagStatus::Tagged)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(listed.image_ids().len(), 2);
    let missing = ecr
        .describe_images()
        .repository_name("team/web")
        .image_ids(by_tag("nope"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some("ImageNotFoundException"));
    let got = ecr
        .batch_get_image()
        .repository_name("team/web")
        .image_ids(by_tag("v1"))
        .image_ids(by_tag("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.images()[0].image_manifest(), Some(v1.as_str()));
    assert_eq!(
        got.failures()[0].failure_code().map(|c| c.as_str()),
        Some("ImageNotFound")
    );

    // An immutable repository keeps its tags.
    ecr.create_repository()
        .repository_name("fixed")
        .image_tag_mutability(ImageTagMutability::Immutable)
        .send()
        .await
        .unwrap();
    put(&ecr, "fixed", "1.0", &v1).await;
    let moved = ecr
        .put_image()
        .repository_name("fixed")
        .image_tag("1.0")
        .image_manifest(&v2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(moved.code(), Some("ImageTagAlreadyExistsException"));

    // A token a docker login would take: base64 of `AWS:…`.
    let token = ecr.get_authorization_token().send().await.unwrap();
    let data0 = &token.authorization_data()[0];
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data0.authorization_token().unwrap())
        .unwrap();
    assert!(decoded.starts_with(b"AWS:"));
    assert_eq!(data0.proxy_endpoint(), Some(server.endpoint.as_str()));

    // Removing a tag removes the image it was the last tag of.
    let deleted = ecr
        .batch_delete_image()
        .repository_name("team/web")
        .image_ids(by_tag("v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.image_ids()[0].image_digest(), Some(d1.as_str()));
    let left = ecr
        .describe_images()
        .repository_name("team/web")
        .send()
        .await
        .unwrap();
    assert_eq!(left.image_details().len(), 1);
    let full = ecr
        .delete_repository()
        .repository_name("team/web")
        .send()
        .await
        .unwrap_err();
    assert_eq!(full.code(), Some("RepositoryNotEmptyException"));

    // Everything acknowledged survives kill -9.
    server.kill9();
    let server = Server::start_in(data.path());
    let ecr = server.ecr();
    let after = ecr
        .describe_images()
        .repository_name("team/web")
        .send()
        .await
        .unwrap();
    assert_eq!(after.image_details()[0].image_digest(), Some(d2.as_str()));
    ecr.delete_repository()
        .repository_name("team/web")
        .force(true)
        .send()
        .await
        .unwrap();
    let gone = ecr
        .describe_repositories()
        .repository_names("team/web")
        .send()
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Some("RepositoryNotFoundException"));
    assert_eq!(
        gone.message(),
        Some("The repository with name 'team/web' does not exist in the registry with id '000000000000'")
    );
}

/// ECR source (namespace `Image`) → S3 deploy of its artifact under `images/<tag>`.
fn ecr_pipeline(name: &str, tag: &str) -> Value {
    json!({
        "name": name, "pipelineType": "V2", "executionMode": "QUEUED",
        "roleArn": "arn:aws:iam::000000000000:role/role",
        "artifactStore": {"type": "S3", "location": "artifact-store-bucket"},
        "stages": [
            {"name": "Source", "actions": [{"name": "Image", "namespace": "Image",
                "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "ECR", "version": "1"},
                "configuration": {"RepositoryName": "web", "ImageTag": tag},
                "outputArtifacts": [{"name": "image"}]}]},
            {"name": "Deploy", "actions": [{"name": "Deploy",
                "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"BucketName": "target-bucket", "Extract": "true",
                                  "ObjectKey": "images/#{Image.ImageTag}"},
                "inputArtifacts": [{"name": "image"}]}]}
        ]
    })
}

#[tokio::test]
async fn the_ecr_source_gives_the_image_and_a_push_starts_the_pipeline_through_a_rule() {
    let server = Server::start();
    let (cp, s3, ecr) = (server.codepipeline(), server.s3(), server.ecr());
    tutorial_buckets(&s3).await;
    ecr.create_repository()
        .repository_name("web")
        .send()
        .await
        .unwrap();
    let first = put(&ecr, "web", "latest", &manifest(10)).await;
    crate::engine::create(&server, ecr_pipeline("images", "latest"));
    let id = latest_execution(&cp, "images").await;
    assert_eq!(
        finished(&cp, "images", &id).await,
        PipelineExecutionStatus::Succeeded
    );
    let detail: Value =
        serde_json::from_slice(&body(&s3, "target-bucket", "images/latest/imageDetail.json").await)
            .unwrap();
    let uri = format!("000000000000.dkr.ecr.eu-central-1.amazonaws.com/web@{first}");
    assert_eq!(detail["ImageURI"], uri.as_str());
    assert_eq!(detail["ImageDigest"], first.as_str());
    assert_eq!(detail["RepositoryName"], "web");
    assert_eq!(detail["RegistryId"], "000000000000");
    assert_eq!(detail["ImageSizeInBytes"], "10");
    assert_eq!(detail["ImageTags"], json!(["latest"]));
    let source = crate::engine::action_run(&cp, "images", None, "Image").await;
    let variables = source.output().unwrap().output_variables().unwrap();
    assert_eq!(variables["ImageDigest"], first);
    assert_eq!(variables["ImageURI"], uri);
    assert_eq!(variables["ImageTag"], "latest");
    assert_eq!(variables["RepositoryName"], "web");
    assert_eq!(variables["RegistryId"], "000000000000");

    // A push of the tag starts the pipeline through the rule the console would make.
    let rule = crate::events::rule_for(
        &server,
        "on-push",
        json!({"source": ["aws.ecr"], "detail-type": ["ECR Image Action"],
               "detail": {"action-type": ["PUSH"], "result": ["SUCCESS"],
                          "repository-name": ["web"], "image-tag": ["latest"]}}),
        "images",
    );
    put(&ecr, "web", "other", &manifest(30)).await;
    let second = put(&ecr, "web", "latest", &manifest(20)).await;
    let listed = crate::git::executions(&server, "images", 2).await;
    let started = listed[0]["pipelineExecutionId"].as_str().unwrap();
    assert_eq!(
        finished(&cp, "images", started).await,
        PipelineExecutionStatus::Succeeded
    );
    let got = cp
        .get_pipeline_execution()
        .pipeline_name("images")
        .pipeline_execution_id(started)
        .send()
        .await
        .unwrap();
    let execution = got.pipeline_execution().unwrap();
    let trigger = execution.trigger().unwrap();
    assert_eq!(trigger.trigger_type().unwrap().as_str(), "CloudWatchEvent");
    assert_eq!(trigger.trigger_detail(), Some(rule.as_str()));
    assert_eq!(
        execution.artifact_revisions()[0].revision_id(),
        Some(second.as_str())
    );

    // A digest override reads that image; ImageTag is then not an output variable, as on AWS.
    let again = cp
        .start_pipeline_execution()
        .name("images")
        .source_revisions(
            SourceRevisionOverride::builder()
                .action_name("Image")
                .revision_type(SourceRevisionType::ImageDigest)
                .revision_value(&first)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let again = again.pipeline_execution_id().unwrap();
    let status = finished(&cp, "images", again).await;
    let source = crate::engine::action_run(&cp, "images", Some(again), "Image").await;
    let variables = source.output().unwrap().output_variables().unwrap();
    assert_eq!(variables["ImageDigest"], first);
    assert!(!variables.contains_key("ImageTag"), "{variables:?}");
    // Its deploy names the missing tag variable, so it fails, naming it.
    assert_eq!(status, PipelineExecutionStatus::Failed);

    // An unknown tag fails the source with ECR's words.
    crate::engine::create(&server, ecr_pipeline("untagged", "nope"));
    let error = crate::engine::failure_of(&cp, "untagged", 0).await;
    assert_eq!(
        error,
        "The image with imageId {imageDigest:'null', imageTag:'nope'} does not exist within the repository with name 'web' in the registry with id '000000000000'"
    );
    // So does an unknown repository.
    let mut absent = ecr_pipeline("absent", "latest");
    absent["stages"][0]["actions"][0]["configuration"]["RepositoryName"] = json!("absent");
    crate::engine::create(&server, absent);
    let error = crate::engine::failure_of(&cp, "absent", 0).await;
    assert_eq!(
        error,
        "The repository with name 'absent' does not exist in the registry with id '000000000000'"
    );
}

pub(crate) fn registry(
    server: &Server,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> crate::common::RawResponse {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    server.client().exchange(head.as_bytes(), body)
}

#[tokio::test]
async fn an_image_pushed_through_the_registry_api_is_an_ecr_image_and_starts_the_pipeline() {
    let server = Server::start();
    let (cp, ecr) = (server.codepipeline(), server.ecr());
    tutorial_buckets(&server.s3()).await;
    let base = registry(&server, "GET", "/v2/", "", b"");
    assert_eq!(base.status, 200);
    assert_eq!(
        base.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    let unknown = registry(&server, "GET", "/v2/web/tags/list", "", b"");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["errors"][0]["code"], "NAME_UNKNOWN");
    ecr.create_repository()
        .repository_name("web")
        .send()
        .await
        .unwrap();
    crate::engine::create(&server, ecr_pipeline("pushed", "v1"));
    crate::events::rule_for(
        &server,
        "on-push",
        json!({"source": ["aws.ecr"], "detail-type": ["ECR Image Action"],
               "detail": {"repository-name": ["web"], "image-tag": ["v1"]}}),
        "pushed",
    );

    // The config in one request; the layer in two parts.
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = digest(std::str::from_utf8(config).unwrap());
    let made = registry(
        &server,
        "POST",
        &format!("/v2/web/blobs/uploads/?digest={config_digest}"),
        "",
        config,
    );
    assert_eq!(made.status, 201, "{}", made.text());
    let layer = "layer bytes ".repeat(1000);
    let layer_digest = digest(&layer);
    let started = registry(&server, "POST", "/v2/web/blobs/uploads/", "", b"");
    assert_eq!(started.status, 202);
    let location = started.header("location").unwrap().to_string();
    let (first, second) = layer.as_bytes().split_at(5000);
    let part = registry(&server, "PATCH", &location, "", first);
    assert_eq!(part.status, 202);
    assert_eq!(part.header("range"), Some("0-4999"));
    let wrong = registry(
        &server,
        "PUT",
        &format!("{location}?digest={}", digest("other")),
        "",
        second,
    );
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.json()["errors"][0]["code"], "DIGEST_INVALID");
    // The failed end dropped the upload: the layer goes up again.
    let started = registry(&server, "POST", "/v2/web/blobs/uploads/", "", b"");
    let location = started.header("location").unwrap().to_string();
    registry(&server, "PATCH", &location, "", first);
    let done = registry(
        &server,
        "PUT",
        &format!("{location}?digest={layer_digest}"),
        "",
        second,
    );
    assert_eq!(done.status, 201, "{}", done.text());
    let head = registry(
        &server,
        "HEAD",
        &format!("/v2/web/blobs/{layer_digest}"),
        "",
        b"",
    );
    assert_eq!(head.header("content-length"), Some("12000"));
    let got = registry(
        &server,
        "GET",
        &format!("/v2/web/blobs/{layer_digest}"),
        "",
        b"",
    );
    assert!(got.body == layer.as_bytes(), "the blob differs");

    // A manifest naming a blob never pushed is refused; the right one is the image.
    let manifest_of = |layer: &str| {
        json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest},
               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": 12000, "digest": layer}]})
        .to_string()
    };
    let media = "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n";
    let missing = registry(
        &server,
        "PUT",
        "/v2/web/manifests/v1",
        media,
        manifest_of(&digest("never")).as_bytes(),
    );
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
    let manifest = manifest_of(&layer_digest);
    let put = registry(
        &server,
        "PUT",
        "/v2/web/manifests/v1",
        media,
        manifest.as_bytes(),
    );
    assert_eq!(put.status, 201, "{}", put.text());
    let image_digest = digest(&manifest);
    assert_eq!(
        put.header("docker-content-digest"),
        Some(image_digest.as_str())
    );

    // ECR's API sees it.
    let described = ecr
        .describe_images()
        .repository_name("web")
        .image_ids(by_tag("v1"))
        .send()
        .await
        .unwrap();
    let detail = &described.image_details()[0];
    assert_eq!(detail.image_digest(), Some(image_digest.as_str()));
    assert_eq!(detail.image_size_in_bytes(), Some(12000));
    assert_eq!(
        detail.image_manifest_media_type(),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    let pulled = registry(&server, "GET", "/v2/web/manifests/v1", "", b"");
    assert!(pulled.body == manifest.as_bytes(), "the manifest differs");
    assert_eq!(
        pulled.header("content-type"),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    let tags = registry(&server, "GET", "/v2/web/tags/list", "", b"");
    assert_eq!(tags.json(), json!({"name": "web", "tags": ["v1"]}));

    // And the push started the pipeline through the rule, with that image.
    let listed = crate::git::executions(&server, "pushed", 2).await;
    let run = listed[0]["pipelineExecutionId"].as_str().unwrap();
    assert_eq!(
        finished(&cp, "pushed", run).await,
        PipelineExecutionStatus::Succeeded
    );
    let got = cp
        .get_pipeline_execution()
        .pipeline_name("pushed")
        .pipeline_execution_id(run)
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.pipeline_execution().unwrap().artifact_revisions()[0].revision_id(),
        Some(image_digest.as_str())
    );
}
