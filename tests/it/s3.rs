//! The embedded S3 through aws-sdk-s3: buckets, objects, versions, listings, multipart uploads,
//! S3's own error codes, and durability across SIGKILL.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CompletedMultipartUpload,
    CreateBucketConfiguration, Delete, ObjectIdentifier, VersioningConfiguration,
};

use crate::common::Server;

/// The error code and HTTP status of a failed S3 call.
fn s3_failure<E: ProvideErrorMetadata + std::fmt::Debug, T: std::fmt::Debug>(
    result: Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) -> (String, u16) {
    let err = result.expect_err("the call should have failed");
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    (err.code().unwrap_or_default().to_string(), status)
}

async fn body_of(out: aws_sdk_s3::operation::get_object::GetObjectOutput) -> Vec<u8> {
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

async fn enable_versioning(s3: &aws_sdk_s3::Client, bucket: &str) {
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn buckets_are_created_listed_located_and_deleted() {
    let server = Server::start();
    let s3 = server.s3();
    s3.create_bucket().bucket("plain").send().await.unwrap();
    s3.create_bucket()
        .bucket("placed")
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::UsWest2)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let names: Vec<String> = s3
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .map(|b| b.name().unwrap().to_string())
        .collect();
    assert_eq!(names, ["placed", "plain"]);
    let located = s3
        .get_bucket_location()
        .bucket("placed")
        .send()
        .await
        .unwrap();
    assert_eq!(
        located.location_constraint(),
        Some(&BucketLocationConstraint::UsWest2)
    );
    let signed = s3
        .get_bucket_location()
        .bucket("plain")
        .send()
        .await
        .unwrap();
    assert_eq!(
        signed.location_constraint(),
        Some(&BucketLocationConstraint::EuCentral1)
    );
    s3.head_bucket().bucket("plain").send().await.unwrap();

    assert_eq!(
        s3_failure(s3.create_bucket().bucket("plain").send().await),
        ("BucketAlreadyOwnedByYou".to_string(), 409)
    );
    assert_eq!(
        s3_failure(s3.create_bucket().bucket("Bad_Name").send().await).0,
        "InvalidBucketName"
    );
    s3.put_object()
        .bucket("plain")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        s3_failure(s3.delete_bucket().bucket("plain").send().await),
        ("BucketNotEmpty".to_string(), 409)
    );
    s3.delete_object()
        .bucket("plain")
        .key("k")
        .send()
        .await
        .unwrap();
    s3.delete_bucket().bucket("plain").send().await.unwrap();
    assert_eq!(
        s3_failure(s3.head_bucket().bucket("plain").send().await).1,
        404
    );
    assert_eq!(
        s3_failure(s3.list_objects_v2().bucket("plain").send().await),
        ("NoSuchBucket".to_string(), 404)
    );
}

#[tokio::test]
async fn objects_keep_their_bytes_type_metadata_and_etag() {
    let server = Server::start();
    let s3 = server.s3();
    s3.create_bucket().bucket("objects").send().await.unwrap();
    let put = s3
        .put_object()
        .bucket("objects")
        .key("dir/file.txt")
        .content_type("text/plain")
        .cache_control("max-age=60")
        .metadata("purpose", "tutorial")
        .body(ByteStream::from_static(b"Hello LocalStack!\n"))
        .send()
        .await
        .unwrap();
    // MD5 of the body, as S3 computes it.
    assert_eq!(put.e_tag(), Some("\"4a7b4601a673d2c7bcb6018bfd1178e2\""));
    assert_eq!(put.version_id(), None);

    let got = s3
        .get_object()
        .bucket("objects")
        .key("dir/file.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("text/plain"));
    assert_eq!(got.cache_control(), Some("max-age=60"));
    assert_eq!(got.metadata().unwrap()["purpose"], "tutorial");
    assert_eq!(got.content_length(), Some(18));
    assert_eq!(body_of(got).await, b"Hello LocalStack!\n");

    let head = s3
        .head_object()
        .bucket("objects")
        .key("dir/file.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(18));
    assert_eq!(head.e_tag(), put.e_tag());

    let ranged = s3
        .get_object()
        .bucket("objects")
        .key("dir/file.txt")
        .range("bytes=6-15")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.content_range(), Some("bytes 6-15/18"));
    assert_eq!(body_of(ranged).await, b"LocalStack");

    assert_eq!(
        s3_failure(
            s3.get_object()
                .bucket("objects")
                .key("missing")
                .send()
                .await
        ),
        ("NoSuchKey".to_string(), 404)
    );
    assert_eq!(
        s3_failure(
            s3.head_object()
                .bucket("objects")
                .key("missing")
                .send()
                .await
        )
        .1,
        404
    );
    assert_eq!(
        s3_failure(s3.get_object().bucket("nope").key("k").send().await),
        ("NoSuchBucket".to_string(), 404)
    );
}

#[tokio::test]
async fn versioning_keeps_every_version_and_delete_markers_hide_keys() {
    let server = Server::start();
    let s3 = server.s3();
    s3.create_bucket().bucket("versions").send().await.unwrap();
    let status = s3
        .get_bucket_versioning()
        .bucket("versions")
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), None);
    enable_versioning(&s3, "versions").await;
    let status = s3
        .get_bucket_versioning()
        .bucket("versions")
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), Some(&BucketVersioningStatus::Enabled));

    let one = s3
        .put_object()
        .bucket("versions")
        .key("k")
        .body(ByteStream::from_static(b"one"))
        .send()
        .await
        .unwrap();
    let two = s3
        .put_object()
        .bucket("versions")
        .key("k")
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .unwrap();
    let (v1, v2) = (
        one.version_id().unwrap().to_string(),
        two.version_id().unwrap().to_string(),
    );
    assert_ne!(v1, v2);
    let latest = s3
        .get_object()
        .bucket("versions")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(latest.version_id(), Some(v2.as_str()));
    assert_eq!(body_of(latest).await, b"two");
    let old = s3
        .get_object()
        .bucket("versions")
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(body_of(old).await, b"one");

    let deleted = s3
        .delete_object()
        .bucket("versions")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.delete_marker(), Some(true));
    let marker = deleted.version_id().unwrap().to_string();
    assert_eq!(
        s3_failure(s3.get_object().bucket("versions").key("k").send().await).0,
        "NoSuchKey"
    );
    let old = s3
        .get_object()
        .bucket("versions")
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(body_of(old).await, b"one");

    let versions = s3
        .list_object_versions()
        .bucket("versions")
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = versions
        .versions()
        .iter()
        .map(|v| v.version_id().unwrap())
        .collect();
    assert_eq!(ids, [v2.as_str(), v1.as_str()]);
    assert_eq!(versions.delete_markers().len(), 1);
    assert_eq!(
        versions.delete_markers()[0].version_id(),
        Some(marker.as_str())
    );
    assert_eq!(versions.delete_markers()[0].is_latest(), Some(true));
    let listed = s3
        .list_objects_v2()
        .bucket("versions")
        .send()
        .await
        .unwrap();
    assert!(listed.contents().is_empty());

    // Removing the marker brings the key back; removing a version deletes it for good.
    s3.delete_object()
        .bucket("versions")
        .key("k")
        .version_id(&marker)
        .send()
        .await
        .unwrap();
    let back = s3
        .get_object()
        .bucket("versions")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(body_of(back).await, b"two");
    s3.delete_object()
        .bucket("versions")
        .key("k")
        .version_id(&v2)
        .send()
        .await
        .unwrap();
    let back = s3
        .get_object()
        .bucket("versions")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(body_of(back).await, b"one");
    assert_eq!(
        s3_failure(
            s3.get_object()
                .bucket("versions")
                .key("k")
                .version_id("no-such-version")
                .send()
                .await
        )
        .0,
        "NoSuchVersion"
    );
}

#[tokio::test]
async fn listings_page_and_roll_up_prefixes() {
    let server = Server::start();
    let s3 = server.s3();
    s3.create_bucket().bucket("listing").send().await.unwrap();
    for key in ["a.txt", "b/1.txt", "b/2.txt", "c/d/3.txt", "e.txt"] {
        s3.put_object()
            .bucket("listing")
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    let rolled = s3
        .list_objects_v2()
        .bucket("listing")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = rolled.contents().iter().map(|o| o.key().unwrap()).collect();
    let prefixes: Vec<&str> = rolled
        .common_prefixes()
        .iter()
        .map(|p| p.prefix().unwrap())
        .collect();
    assert_eq!(keys, ["a.txt", "e.txt"]);
    assert_eq!(prefixes, ["b/", "c/"]);

    let under = s3
        .list_objects_v2()
        .bucket("listing")
        .prefix("b/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = under.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(keys, ["b/1.txt", "b/2.txt"]);

    let mut all = Vec::new();
    let mut token = None;
    for _ in 0..10 {
        let page = s3
            .list_objects_v2()
            .bucket("listing")
            .max_keys(2)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        all.extend(page.contents().iter().map(|o| o.key().unwrap().to_string()));
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(all, ["a.txt", "b/1.txt", "b/2.txt", "c/d/3.txt", "e.txt"]);

    let v1 = s3
        .list_objects()
        .bucket("listing")
        .max_keys(10)
        .send()
        .await
        .unwrap();
    assert_eq!(v1.contents().len(), 5);
    assert_eq!(v1.is_truncated(), Some(false));
}

#[tokio::test]
async fn copy_and_delete_many() {
    let server = Server::start();
    let s3 = server.s3();
    s3.create_bucket().bucket("copies").send().await.unwrap();
    s3.put_object()
        .bucket("copies")
        .key("src")
        .content_type("application/zip")
        .body(ByteStream::from_static(b"payload"))
        .send()
        .await
        .unwrap();
    let copied = s3
        .copy_object()
        .bucket("copies")
        .key("dst")
        .copy_source("copies/src")
        .send()
        .await
        .unwrap();
    assert!(copied.copy_object_result().unwrap().e_tag().is_some());
    let got = s3
        .get_object()
        .bucket("copies")
        .key("dst")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("application/zip"));
    assert_eq!(body_of(got).await, b"payload");

    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key("src").build().unwrap())
        .objects(ObjectIdentifier::builder().key("dst").build().unwrap())
        .build()
        .unwrap();
    let out = s3
        .delete_objects()
        .bucket("copies")
        .delete(delete)
        .send()
        .await
        .unwrap();
    assert_eq!(out.deleted().len(), 2);
    assert!(s3
        .list_objects_v2()
        .bucket("copies")
        .send()
        .await
        .unwrap()
        .contents()
        .is_empty());
}

/// Uploads `parts` (numbered from 1) to a multipart upload of `key`; the upload id and the
/// completed parts to finish it with.
async fn upload_parts(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    parts: &[Vec<u8>],
) -> (String, Vec<aws_sdk_s3::types::CompletedPart>) {
    let upload = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .content_type("application/octet-stream")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap().to_string();
    let mut completed = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        completed.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    (id, completed)
}

#[tokio::test]
async fn multipart_uploads_join_their_parts() {
    let server = Server::start();
    let s3 = server.s3();
    s3.create_bucket().bucket("multipart").send().await.unwrap();
    let part1 = vec![b'a'; 5 * 1024 * 1024];
    let part2 = b"tail".to_vec();
    let (id, completed) =
        upload_parts(&s3, "multipart", "big", &[part1.clone(), part2.clone()]).await;
    let id = id.as_str();
    let parts = s3
        .list_parts()
        .bucket("multipart")
        .key("big")
        .upload_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(parts.parts().len(), 2);
    assert_eq!(parts.parts()[1].size(), Some(4));
    let done = s3
        .complete_multipart_upload()
        .bucket("multipart")
        .key("big")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        done.e_tag().unwrap().ends_with("-2\""),
        "{:?}",
        done.e_tag()
    );
    let got = s3
        .get_object()
        .bucket("multipart")
        .key("big")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.content_length(),
        Some((part1.len() + part2.len()) as i64)
    );
    let bytes = body_of(got).await;
    assert_eq!(&bytes[..part1.len()], &part1[..]);
    assert_eq!(&bytes[part1.len()..], &part2[..]);

    assert_eq!(
        s3_failure(
            s3.upload_part()
                .bucket("multipart")
                .key("big")
                .upload_id(id)
                .part_number(1)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
        ),
        ("NoSuchUpload".to_string(), 404)
    );
    let aborted = s3
        .create_multipart_upload()
        .bucket("multipart")
        .key("gone")
        .send()
        .await
        .unwrap();
    s3.abort_multipart_upload()
        .bucket("multipart")
        .key("gone")
        .upload_id(aborted.upload_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        s3_failure(s3.get_object().bucket("multipart").key("gone").send().await).0,
        "NoSuchKey"
    );
}

#[tokio::test]
async fn keys_never_become_paths() {
    let server = Server::start();
    let s3 = server.s3();
    s3.create_bucket().bucket("traversal").send().await.unwrap();
    let outside = server.data_dir.join("escaped");
    for key in [
        "../escaped",
        "../../../../tmp/escaped",
        "/abs/escaped",
        "a/../../escaped",
    ] {
        s3.put_object()
            .bucket("traversal")
            .key(key)
            .body(ByteStream::from_static(b"inside"))
            .send()
            .await
            .unwrap();
        let got = s3
            .get_object()
            .bucket("traversal")
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(body_of(got).await, b"inside", "{key}");
    }
    assert!(!outside.exists());
    assert!(!server.data_dir.parent().unwrap().join("escaped").exists());
    let listed = s3
        .list_objects_v2()
        .bucket("traversal")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 4);
}

#[test]
fn virtual_host_addressing_names_the_bucket() {
    let server = Server::start();
    let raw = server.client();
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    let host = format!("vhost.localhost:{port}");
    assert_eq!(raw.http("PUT", "/", &host, b"").status, 200);
    assert_eq!(raw.http("PUT", "/key.txt", &host, b"virtual").status, 200);
    let got = raw.http("GET", "/vhost/key.txt", "localhost", b"");
    assert_eq!((got.status, got.body.as_slice()), (200, &b"virtual"[..]));
    let got = raw.http("GET", "/key.txt", &host, b"");
    assert_eq!(got.body, b"virtual");
    let head = raw.http("HEAD", "/key.txt", &host, b"");
    assert_eq!(head.header("content-length"), Some("7"));
    let missing = raw.http("GET", "/missing", &host, b"");
    assert_eq!(missing.status, 404);
    assert!(String::from_utf8_lossy(&missing.body).contains("<Code>NoSuchKey</Code>"));
}

#[tokio::test]
async fn buckets_objects_and_versions_survive_kill_9() {
    let server = Server::start();
    let s3 = server.s3();
    s3.create_bucket().bucket("keep").send().await.unwrap();
    enable_versioning(&s3, "keep").await;
    let one = s3
        .put_object()
        .bucket("keep")
        .key("k")
        .body(ByteStream::from_static(b"one"))
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket("keep")
        .key("k")
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .unwrap();
    s3.create_bucket().bucket("gone").send().await.unwrap();
    s3.delete_bucket().bucket("gone").send().await.unwrap();
    let before = s3
        .list_object_versions()
        .bucket("keep")
        .send()
        .await
        .unwrap();

    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    let restarted = Server::start_in(&dir);
    let s3 = restarted.s3();
    let after = s3
        .list_object_versions()
        .bucket("keep")
        .send()
        .await
        .unwrap();
    assert_eq!(before.versions(), after.versions());
    let old = s3
        .get_object()
        .bucket("keep")
        .key("k")
        .version_id(one.version_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(body_of(old).await, b"one");
    let names: Vec<String> = s3
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .map(|b| b.name().unwrap().to_string())
        .collect();
    assert_eq!(names, ["keep"]);
    // The name of a deleted bucket can be taken again.
    s3.create_bucket().bucket("gone").send().await.unwrap();
}

#[test]
fn uploads_with_expect_100_continue_are_invited_then_stored() {
    use std::io::{BufRead, BufReader, Read, Write};
    let server = Server::start();
    assert_eq!(
        server
            .client()
            .http("PUT", "/expecting", "localhost", b"")
            .status,
        200
    );
    let body = vec![b'e'; 100_000];
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "PUT /expecting/object HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 100"), "{line}");
    stream.write_all(&body).unwrap();
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("HTTP/1.1 200"), "{rest}");
    let got = server
        .client()
        .http("GET", "/expecting/object", "localhost", b"");
    assert_eq!(got.body, body);
}

#[test]
fn a_crash_during_an_upload_leaves_no_half_object() {
    use std::io::Write;
    let server = Server::start();
    let raw = server.client();
    assert_eq!(raw.http("PUT", "/crashing", "localhost", b"").status, 200);
    assert_eq!(
        raw.http("PUT", "/crashing/whole", "localhost", b"complete")
            .status,
        200
    );
    // Half of a 10 MB body, then the server dies.
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    let head = "PUT /crashing/half HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10485760\r\n\r\n";
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&vec![b'h'; 5 * 1024 * 1024]).unwrap();
    stream.flush().unwrap();
    let dir = server.data_dir.clone();
    // The half-written upload is on disk before the kill: its temporary file exists.
    let tmp = dir.join("s3").join("tmp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_dir(&tmp).unwrap().next().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never reached the disk"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _keep = server.kill9();
    let restarted = Server::start_in(&dir);
    let raw = restarted.client();
    assert_eq!(
        raw.http("GET", "/crashing/half", "localhost", b"").status,
        404
    );
    assert_eq!(
        raw.http("GET", "/crashing/whole", "localhost", b"").body,
        b"complete"
    );
    assert!(
        std::fs::read_dir(&tmp).unwrap().next().is_none(),
        "temporary files were left behind"
    );
}

/// Keys that XML or URLs mangle reach boto3 intact through `EncodingType=url`, which boto3 (and
/// `aws s3 sync`) always asks for.
#[test]
fn listed_keys_reach_boto3_intact() {
    let server = Server::start();
    let script = r#"
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="eu-central-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
s3.create_bucket(Bucket="odd", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
keys = ["plus+percent %41.txt", "nul\x00key", "caf\u00e9/\u00fcber & <x>.txt"]
for k in keys:
    s3.put_object(Bucket="odd", Key=k, Body=b"x")
v2 = [o["Key"] for o in s3.list_objects_v2(Bucket="odd")["Contents"]]
v1 = [o["Key"] for o in s3.list_objects(Bucket="odd")["Contents"]]
assert sorted(v2) == sorted(keys), v2
assert sorted(v1) == sorted(keys), v1
pre = s3.list_objects_v2(Bucket="odd", Delimiter="/")["CommonPrefixes"]
assert [p["Prefix"] for p in pre] == ["caf\u00e9/"], pre
print("ok")
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &server.endpoint])
        .output()
        .expect("python3 with boto3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn buckets_and_batch_deletes_that_s3_refuses_are_refused() {
    let server = Server::start();
    let s3 = server.s3();
    let bad = s3
        .create_bucket()
        .bucket("escape")
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from("../../x"))
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some("InvalidLocationConstraint"));
    assert!(s3.head_bucket().bucket("escape").send().await.is_err());
    s3.create_bucket().bucket("many").send().await.unwrap();
    let objects: Vec<_> = (0..1001)
        .map(|i| {
            aws_sdk_s3::types::ObjectIdentifier::builder()
                .key(format!("k{i}"))
                .build()
                .unwrap()
        })
        .collect();
    let too_many = s3
        .delete_objects()
        .bucket("many")
        .delete(
            aws_sdk_s3::types::Delete::builder()
                .set_objects(Some(objects))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Some("MalformedXML"));
}

/// Sends `head` and `body` on one connection, closes its writing half, and reads the answer.
fn put_raw(server: &Server, head: &str, body: &[u8]) -> crate::common::RawResponse {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    crate::common::RawResponse::parse(&raw)
}

#[test]
fn short_and_misframed_bodies_are_refused_and_not_stored() {
    let server = Server::start();
    assert_eq!(
        server
            .client()
            .http("PUT", "/bodies", "localhost", b"")
            .status,
        200
    );
    let short = put_raw(
        &server,
        "PUT /bodies/short HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n",
        b"abc",
    );
    assert_eq!(short.status, 400, "{}", short.text());
    assert_eq!(short.xml_code(), "IncompleteBody");
    let chunked = |name: &str, decoded: usize, body: &[u8]| {
        put_raw(
            &server,
            &format!(
                "PUT /bodies/{name} HTTP/1.1\r\nHost: localhost\r\nContent-Encoding: aws-chunked\r\n\
                 x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\n\
                 x-amz-decoded-content-length: {decoded}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ),
            body,
        )
    };
    let garbled = chunked("garbled", 3, b"zz\r\nabc\r\n0\r\n\r\n");
    assert_eq!(garbled.status, 400, "{}", garbled.text());
    let undersized = chunked("undersized", 10, b"3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(undersized.status, 400, "{}", undersized.text());
    for key in ["short", "garbled", "undersized"] {
        let got = server
            .client()
            .http("GET", &format!("/bodies/{key}"), "localhost", b"");
        assert_eq!(got.status, 404, "{key} was stored");
    }
    // A well-formed chunked upload still goes in.
    let fine = chunked("fine", 3, b"3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(fine.status, 200, "{}", fine.text());
}

#[tokio::test]
async fn objects_are_read_by_part_number() {
    let server = Server::start();
    let s3 = server.s3();
    s3.create_bucket().bucket("parts").send().await.unwrap();
    let (id, completed) =
        upload_parts(&s3, "parts", "big", &[vec![b'a'; 5 << 20], b"bcd".to_vec()]).await;
    let id = id.as_str();
    s3.complete_multipart_upload()
        .bucket("parts")
        .key("big")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let second = s3
        .get_object()
        .bucket("parts")
        .key("big")
        .part_number(2)
        .send()
        .await
        .unwrap();
    assert_eq!(second.parts_count(), Some(2));
    assert_eq!(
        second.content_range(),
        Some("bytes 5242880-5242882/5242883")
    );
    assert_eq!(body_of(second).await, b"bcd");
    let head = s3
        .head_object()
        .bucket("parts")
        .key("big")
        .part_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(5 << 20));
    assert_eq!(head.parts_count(), Some(2));
    let raw = server
        .client()
        .http("HEAD", "/parts/big?partNumber=2", "localhost", b"");
    assert_eq!(raw.status, 206);
    assert_eq!(raw.header("x-amz-mp-parts-count"), Some("2"));
    assert_eq!(raw.header("content-length"), Some("3"));
    let (code, status) = s3_failure(
        s3.get_object()
            .bucket("parts")
            .key("big")
            .part_number(3)
            .send()
            .await,
    );
    assert_eq!((code.as_str(), status), ("InvalidPartNumber", 416));
    // An object put whole is one part.
    s3.put_object()
        .bucket("parts")
        .key("small")
        .body(ByteStream::from_static(b"whole"))
        .send()
        .await
        .unwrap();
    let one = s3
        .get_object()
        .bucket("parts")
        .key("small")
        .part_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(one.parts_count(), Some(1));
    assert_eq!(body_of(one).await, b"whole");
    let (code, _) = s3_failure(
        s3.get_object()
            .bucket("parts")
            .key("small")
            .part_number(2)
            .send()
            .await,
    );
    assert_eq!(code, "InvalidPartNumber");
}

/// The tags of an object (of one version), as `key=value`.
async fn tags_of(s3: &aws_sdk_s3::Client, key: &str, version: Option<&str>) -> Vec<String> {
    s3.get_object_tagging()
        .bucket("tagged")
        .key(key)
        .set_version_id(version.map(str::to_string))
        .send()
        .await
        .unwrap()
        .tag_set()
        .iter()
        .map(|t| format!("{}={}", t.key(), t.value()))
        .collect()
}

#[tokio::test]
async fn objects_are_tagged_on_put_and_by_their_own_operations() {
    use aws_sdk_s3::types::{Tag, Tagging, TaggingDirective};
    let server = Server::start();
    let s3 = server.s3();
    s3.create_bucket().bucket("tagged").send().await.unwrap();
    s3.put_object()
        .bucket("tagged")
        .key("k")
        .tagging("team=blue&env=a%20b")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&s3, "k", None).await, ["env=a b", "team=blue"]);
    let object = s3.get_object().bucket("tagged").key("k").send().await;
    assert_eq!(object.unwrap().tag_count(), Some(2));
    let tagging = |pairs: &[(&str, &str)]| {
        Tagging::builder()
            .set_tag_set(Some(
                pairs
                    .iter()
                    .map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap())
                    .collect(),
            ))
            .build()
            .unwrap()
    };
    s3.put_object_tagging()
        .bucket("tagged")
        .key("k")
        .tagging(tagging(&[("owner", "me")]))
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&s3, "k", None).await, ["owner=me"]);

    // A copy keeps the source's tags unless told to replace them.
    s3.copy_object()
        .bucket("tagged")
        .key("kept")
        .copy_source("tagged/k")
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&s3, "kept", None).await, ["owner=me"]);
    s3.copy_object()
        .bucket("tagged")
        .key("replaced")
        .copy_source("tagged/k")
        .tagging_directive(TaggingDirective::Replace)
        .tagging("new=1")
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&s3, "replaced", None).await, ["new=1"]);

    s3.delete_object_tagging()
        .bucket("tagged")
        .key("k")
        .send()
        .await
        .unwrap();
    assert!(tags_of(&s3, "k", None).await.is_empty());

    // What S3 refuses, refused, and nothing changed by it.
    let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
    let eleven: Vec<(&str, &str)> = eleven
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let long_key = "k".repeat(129);
    let long_value = "v".repeat(257);
    let refused = [
        (tagging(&eleven), "BadRequest"),
        (tagging(&[("a", "1"), ("a", "2")]), "InvalidTag"),
        (tagging(&[(long_key.as_str(), "1")]), "InvalidTag"),
        (tagging(&[("a", long_value.as_str())]), "InvalidTag"),
        (tagging(&[("aws:x", "1")]), "InvalidTag"),
        (tagging(&[("a", "<bad>")]), "InvalidTag"),
    ];
    for (t, code) in refused {
        let (got, status) = s3_failure(
            s3.put_object_tagging()
                .bucket("tagged")
                .key("kept")
                .tagging(t)
                .send()
                .await,
        );
        assert_eq!((got.as_str(), status), (code, 400));
    }
    assert_eq!(tags_of(&s3, "kept", None).await, ["owner=me"]);
    let (code, _) = s3_failure(
        s3.put_object()
            .bucket("tagged")
            .key("never")
            .tagging("a=1&a=2")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
    );
    assert_eq!(code, "InvalidTag");
    let (code, _) = s3_failure(s3.get_object().bucket("tagged").key("never").send().await);
    assert_eq!(code, "NoSuchKey");
    let (code, _) = s3_failure(
        s3.get_object_tagging()
            .bucket("tagged")
            .key("missing")
            .send()
            .await,
    );
    assert_eq!(code, "NoSuchKey");

    // In a versioned bucket each version has its own tags; they survive kill -9.
    enable_versioning(&s3, "tagged").await;
    let v1 = s3
        .put_object()
        .bucket("tagged")
        .key("v")
        .tagging("n=1")
        .body(ByteStream::from_static(b"1"))
        .send()
        .await
        .unwrap();
    let v1 = v1.version_id().unwrap().to_string();
    s3.put_object()
        .bucket("tagged")
        .key("v")
        .tagging("n=2")
        .body(ByteStream::from_static(b"2"))
        .send()
        .await
        .unwrap();
    let tagged = s3
        .put_object_tagging()
        .bucket("tagged")
        .key("v")
        .version_id(&v1)
        .tagging(tagging(&[("n", "one")]))
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.version_id(), Some(v1.as_str()));
    let dir = server.kill9().unwrap();
    let server = Server::start_in(dir.path());
    let s3 = server.s3();
    assert_eq!(tags_of(&s3, "v", Some(&v1)).await, ["n=one"]);
    assert_eq!(tags_of(&s3, "v", None).await, ["n=2"]);
}

#[tokio::test]
async fn parts_are_copied_from_objects_by_range() {
    let server = Server::start();
    let s3 = server.s3();
    s3.create_bucket().bucket("copies").send().await.unwrap();
    let source: Vec<u8> = (0..(6u32 << 20)).map(|i| (i % 251) as u8).collect();
    let put = s3
        .put_object()
        .bucket("copies")
        .key("source")
        .body(ByteStream::from(source.clone()))
        .send()
        .await
        .unwrap();
    let source_etag = put.e_tag().unwrap().to_string();
    let upload = s3
        .create_multipart_upload()
        .bucket("copies")
        .key("joined")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let copy = |n: i32, range: &str| {
        s3.upload_part_copy()
            .bucket("copies")
            .key("joined")
            .upload_id(id)
            .part_number(n)
            .copy_source("copies/source")
            .copy_source_range(range)
    };
    let split = 5u64 << 20;
    let first = copy(1, &format!("bytes=0-{}", split - 1))
        .copy_source_if_match(&source_etag)
        .send()
        .await
        .unwrap();
    let second = copy(2, &format!("bytes={split}-{}", source.len() - 1))
        .send()
        .await
        .unwrap();
    for (range, code, status) in [
        (format!("bytes=0-{}", source.len()), "InvalidArgument", 400),
        ("bytes=5-2".to_string(), "InvalidArgument", 400),
        ("0-5".to_string(), "InvalidArgument", 400),
    ] {
        let got = s3_failure(copy(3, &range).send().await);
        assert_eq!(got, (code.to_string(), status), "{range}");
    }
    let got = s3_failure(
        copy(3, "bytes=0-1")
            .copy_source_if_match("\"0123\"")
            .send()
            .await,
    );
    assert_eq!(got, ("PreconditionFailed".to_string(), 412));
    let got = s3_failure(
        s3.upload_part_copy()
            .bucket("copies")
            .key("joined")
            .upload_id(id)
            .part_number(3)
            .copy_source("copies/absent")
            .send()
            .await,
    );
    assert_eq!(got.0, "NoSuchKey");
    let part = |n: i32, out: Option<&aws_sdk_s3::types::CopyPartResult>| {
        aws_sdk_s3::types::CompletedPart::builder()
            .part_number(n)
            .e_tag(out.unwrap().e_tag().unwrap())
            .build()
    };
    let parts = vec![
        part(1, first.copy_part_result()),
        part(2, second.copy_part_result()),
    ];
    let listed = s3
        .list_parts()
        .bucket("copies")
        .key("joined")
        .upload_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.parts().len(), 2, "the refused copies left no part");
    s3.complete_multipart_upload()
        .bucket("copies")
        .key("joined")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let got = s3.get_object().bucket("copies").key("joined").send().await;
    let got = got.unwrap();
    assert_eq!(got.e_tag().map(|e| e.ends_with("-2\"")), Some(true));
    assert!(body_of(got).await == source, "the joined object differs");
}

#[tokio::test]
async fn multipart_uploads_in_progress_are_listed() {
    let server = Server::start();
    let s3 = server.s3();
    s3.create_bucket().bucket("uploads").send().await.unwrap();
    let mut ids = Vec::new();
    for key in ["a", "b/1", "b/2", "c"] {
        let out = s3
            .create_multipart_upload()
            .bucket("uploads")
            .key(key)
            .send()
            .await
            .unwrap();
        ids.push(out.upload_id().unwrap().to_string());
    }
    let list = || s3.list_multipart_uploads().bucket("uploads");
    let keys = |out: &aws_sdk_s3::operation::list_multipart_uploads::ListMultipartUploadsOutput| {
        out.uploads()
            .iter()
            .map(|u| u.key().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let all = list().send().await.unwrap();
    assert_eq!(keys(&all), ["a", "b/1", "b/2", "c"]);
    assert_eq!(all.uploads()[1].upload_id(), Some(ids[1].as_str()));
    assert!(all.uploads()[0].initiated().is_some());
    assert_eq!(all.is_truncated(), Some(false));
    let prefixed = list().prefix("b/").send().await.unwrap();
    assert_eq!(keys(&prefixed), ["b/1", "b/2"]);
    let rolled = list().delimiter("/").send().await.unwrap();
    assert_eq!(keys(&rolled), ["a", "c"]);
    let prefixes: Vec<&str> = rolled
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["b/"]);
    // Pages of two, each starting after the last page's markers.
    let page = list().max_uploads(2).send().await.unwrap();
    assert_eq!(keys(&page), ["a", "b/1"]);
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(page.next_key_marker(), Some("b/1"));
    let next = list()
        .max_uploads(2)
        .key_marker(page.next_key_marker().unwrap())
        .upload_id_marker(page.next_upload_id_marker().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(keys(&next), ["b/2", "c"]);
    assert_eq!(next.is_truncated(), Some(false));
    s3.abort_multipart_upload()
        .bucket("uploads")
        .key("a")
        .upload_id(&ids[0])
        .send()
        .await
        .unwrap();
    assert_eq!(keys(&list().send().await.unwrap()), ["b/1", "b/2", "c"]);
    let (code, _) = s3_failure(s3.list_multipart_uploads().bucket("nowhere").send().await);
    assert_eq!(code, "NoSuchBucket");
}

#[tokio::test]
async fn content_md5_is_verified_and_a_mismatch_stores_nothing() {
    let server = Server::start();
    let s3 = server.s3();
    s3.create_bucket().bucket("digests").send().await.unwrap();
    // base64 of the MD5 of "hello".
    let hello_md5 = "XUFAKrxLKna5cZ2REBfFkg==";
    s3.put_object()
        .bucket("digests")
        .key("right")
        .content_md5(hello_md5)
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();
    let got = s3_failure(
        s3.put_object()
            .bucket("digests")
            .key("wrong")
            .content_md5(hello_md5)
            .body(ByteStream::from_static(b"hellO"))
            .send()
            .await,
    );
    assert_eq!(got, ("BadDigest".to_string(), 400));
    let got = s3_failure(
        s3.put_object()
            .bucket("digests")
            .key("garbled")
            .content_md5("not base64!")
            .body(ByteStream::from_static(b"hello"))
            .send()
            .await,
    );
    assert_eq!(got, ("InvalidDigest".to_string(), 400));
    for key in ["wrong", "garbled"] {
        let (code, _) = s3_failure(s3.get_object().bucket("digests").key(key).send().await);
        assert_eq!(code, "NoSuchKey", "{key}");
    }

    // DeleteObjects: the document is checked before anything is deleted.
    let document = b"<Delete><Object><Key>right</Key></Object></Delete>";
    let delete = |md5: &str| {
        put_raw(
            &server,
            &format!(
                "POST /digests?delete HTTP/1.1\r\nHost: localhost\r\nContent-MD5: {md5}\r\n\
                 Content-Length: {}\r\n\r\n",
                document.len()
            ),
            document,
        )
    };
    let refused = delete(hello_md5);
    assert_eq!(
        (refused.status, refused.xml_code().as_str()),
        (400, "BadDigest")
    );
    let refused = delete("%%%");
    assert_eq!(
        (refused.status, refused.xml_code().as_str()),
        (400, "InvalidDigest")
    );
    assert!(s3
        .head_object()
        .bucket("digests")
        .key("right")
        .send()
        .await
        .is_ok());
    use base64::Engine;
    use md5::Digest;
    let right = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(document));
    let done = delete(&right);
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(
        done.text().contains("<Deleted><Key>right</Key>"),
        "{}",
        done.text()
    );
    let (code, _) = s3_failure(s3.head_object().bucket("digests").key("right").send().await);
    assert_eq!(code, "NotFound");
}

#[test]
fn an_upload_that_stops_sending_times_out() {
    use std::io::{Read, Write};
    let server = Server::start_with(&[("CODEPIPELINE_LOCAL_BODY_TIMEOUT_SECONDS", "1")]);
    assert_eq!(
        server
            .client()
            .http("PUT", "/stalled", "localhost", b"")
            .status,
        200
    );
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(
            b"PUT /stalled/object HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc",
        )
        .unwrap();
    // The connection stays open and sends nothing more: the server answers on its own.
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = crate::common::RawResponse::parse(&answer);
    assert_eq!(
        (answer.status, answer.xml_code().as_str()),
        (400, "RequestTimeout"),
        "{}",
        answer.text()
    );
    let got = server
        .client()
        .http("GET", "/stalled/object", "localhost", b"");
    assert_eq!(got.status, 404);
}
