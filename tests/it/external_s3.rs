//! The object store behind pipeline actions: the embedded store and an external S3 (moto_server
//! standing in for MinIO or AWS) answer the same.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use bytes::Bytes;
use codepipeline_local::eventstore::memory::MemoryStore;
use codepipeline_local::s3::events::Versioning;
use codepipeline_local::s3::objects::{ObjectStore, PutAttributes};
use codepipeline_local::s3::remote::{RemoteConfig, RemoteStore};
use codepipeline_local::s3::store::{BodyStream, LocalStore, S3StoreError};
use futures_util::StreamExt;

use crate::common::Server;

/// A moto_server process on a free port; killed when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server must be installed (pip install 'moto[server]')");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    fn client(&self) -> aws_sdk_s3::Client {
        crate::common::s3_client(&self.endpoint, "us-east-1")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn body(bytes: &'static [u8]) -> BodyStream {
    futures_util::stream::iter([Ok(Bytes::from_static(bytes))]).boxed()
}

async fn read(stream: BodyStream) -> Vec<u8> {
    stream
        .map(|c| c.unwrap().to_vec())
        .collect::<Vec<_>>()
        .await
        .concat()
}

/// The same checks on any store whose bucket `versioned` has versioning on and `plain` has not.
async fn exercise(store: &dyn ObjectStore) {
    assert_eq!(
        store.versioning("versioned").await.unwrap(),
        Versioning::Enabled
    );
    assert_eq!(
        store.versioning("plain").await.unwrap(),
        Versioning::Unversioned
    );
    assert_eq!(
        store.versioning("missing").await.unwrap_err(),
        S3StoreError::NoSuchBucket
    );

    let first = store
        .put(
            "versioned",
            "file",
            &PutAttributes {
                content_type: Some("text/plain".into()),
                ..Default::default()
            },
            body(b"one"),
        )
        .await
        .unwrap();
    let second = store
        .put("versioned", "file", &PutAttributes::default(), body(b"two"))
        .await
        .unwrap();
    assert!(first.version_id.is_some());
    assert_ne!(first.version_id, second.version_id);
    assert_eq!(first.etag, "f97c5d29941bfb1b2fdab0874906ab82"); // MD5 of "one"
    assert_eq!(first.size, 3);

    let (info, bytes) = store.get("versioned", "file", None).await.unwrap();
    assert_eq!(info.version_id, second.version_id);
    assert_eq!(read(bytes).await, b"two");
    let (_, old) = store
        .get("versioned", "file", first.version_id.as_deref())
        .await
        .unwrap();
    assert_eq!(read(old).await, b"one");
    let head = store
        .head("versioned", "file", first.version_id.as_deref())
        .await
        .unwrap();
    assert_eq!(
        (head.size, head.etag.as_str()),
        (3, "f97c5d29941bfb1b2fdab0874906ab82")
    );

    let plain = store
        .put(
            "plain",
            "artifact.zip",
            &PutAttributes::default(),
            body(b"zip"),
        )
        .await
        .unwrap();
    assert_eq!(plain.version_id, None);
    assert!(matches!(
        store.get("plain", "nothing", None).await.map(|(i, _)| i),
        Err(S3StoreError::NoSuchKey)
    ));
}

#[tokio::test]
async fn the_embedded_store_answers_as_an_object_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::open(dir.path(), Arc::new(MemoryStore::new())).unwrap());
    store.create_bucket("versioned", "us-east-1").await.unwrap();
    store.set_versioning("versioned", true).await.unwrap();
    store.create_bucket("plain", "us-east-1").await.unwrap();
    exercise(&store).await;
}

#[tokio::test]
async fn an_external_s3_answers_the_same() {
    let moto = Moto::start();
    let s3 = moto.client();
    s3.create_bucket().bucket("versioned").send().await.unwrap();
    s3.put_bucket_versioning()
        .bucket("versioned")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    s3.create_bucket().bucket("plain").send().await.unwrap();
    let staging = tempfile::tempdir().unwrap();
    let remote = RemoteStore::new(
        &RemoteConfig {
            endpoint: moto.endpoint.clone(),
            region: "us-east-1".into(),
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
        },
        staging.path().to_path_buf(),
    );
    exercise(&remote).await;
    // The artifact is really in the external S3.
    let got = s3
        .get_object()
        .bucket("plain")
        .key("artifact.zip")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"zip"
    );
}

#[test]
fn with_an_external_s3_the_endpoint_does_not_serve_s3() {
    let server = Server::start_with(&[("CODEPIPELINE_LOCAL_S3_ENDPOINT", "http://127.0.0.1:9")]);
    let r = server.client().http("GET", "/", "localhost", b"");
    assert_eq!(r.status, 501);
    assert!(
        r.text().contains("external S3 at http://127.0.0.1:9"),
        "{}",
        r.text()
    );
    assert_eq!(
        server.call("ListPipelines", serde_json::json!({})).status,
        200
    );
}
