//! TagResource, UntagResource, ListTagsForResource.

use aws_sdk_codepipeline::types::Tag;

use crate::common::Server;
use crate::declarations::*;

const ARN: &str = "arn:aws:codepipeline:eu-central-1:000000000000:pipeline";

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build().unwrap()
}

#[tokio::test]
async fn tags_are_added_replaced_listed_and_removed() {
    let server = Server::start();
    let cp = server.codepipeline();
    cp.create_pipeline()
        .pipeline(tutorial("pipeline"))
        .send()
        .await
        .unwrap();
    cp.tag_resource()
        .resource_arn(ARN)
        .tags(tag("purpose", "tutorial"))
        .tags(tag("team", "a"))
        .send()
        .await
        .unwrap();
    cp.tag_resource()
        .resource_arn(ARN)
        .tags(tag("team", "b"))
        .send()
        .await
        .unwrap();
    let listed = cp
        .list_tags_for_resource()
        .resource_arn(ARN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.tags(),
        &[tag("purpose", "tutorial"), tag("team", "b")]
    );

    let page = cp
        .list_tags_for_resource()
        .resource_arn(ARN)
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(page.tags(), &[tag("purpose", "tutorial")]);
    let rest = cp
        .list_tags_for_resource()
        .resource_arn(ARN)
        .next_token(page.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.tags(), &[tag("team", "b")]);
    assert!(rest.next_token().is_none());

    cp.untag_resource()
        .resource_arn(ARN)
        .tag_keys("purpose")
        .tag_keys("never-there")
        .send()
        .await
        .unwrap();
    let listed = cp
        .list_tags_for_resource()
        .resource_arn(ARN)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.tags(), &[tag("team", "b")]);
}

#[tokio::test]
async fn tag_errors_are_aws_errors() {
    let server = Server::start();
    let cp = server.codepipeline();
    cp.create_pipeline()
        .pipeline(tutorial("pipeline"))
        .send()
        .await
        .unwrap();

    let (code, _, status) = failure(
        cp.tag_resource()
            .resource_arn(ARN)
            .tags(tag("aws:reserved", "x"))
            .send()
            .await,
    );
    assert_eq!((code.as_str(), status), ("InvalidTagsException", 400));
    let (code, _, _) = failure(
        cp.create_pipeline()
            .pipeline(tutorial("other"))
            .tags(tag("aws:x", "y"))
            .send()
            .await,
    );
    assert_eq!(code, "InvalidTagsException");

    let fifty: Vec<Tag> = (0..50).map(|i| tag(&format!("k{i}"), "v")).collect();
    cp.tag_resource()
        .resource_arn(ARN)
        .set_tags(Some(fifty))
        .send()
        .await
        .unwrap();
    let (code, _, status) = failure(
        cp.tag_resource()
            .resource_arn(ARN)
            .tags(tag("one-more", "v"))
            .send()
            .await,
    );
    assert_eq!((code.as_str(), status), ("TooManyTagsException", 400));
    // Replacing an existing key does not add one.
    cp.tag_resource()
        .resource_arn(ARN)
        .tags(tag("k0", "w"))
        .send()
        .await
        .unwrap();
    let listed = cp
        .list_tags_for_resource()
        .resource_arn(ARN)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.tags().len(), 50);

    let missing = "arn:aws:codepipeline:eu-central-1:000000000000:missing";
    let (code, _, status) = failure(
        cp.tag_resource()
            .resource_arn(missing)
            .tags(tag("a", "b"))
            .send()
            .await,
    );
    assert_eq!((code.as_str(), status), ("ResourceNotFoundException", 400));
    let (code, _, _) = failure(
        cp.list_tags_for_resource()
            .resource_arn(missing)
            .send()
            .await,
    );
    assert_eq!(code, "ResourceNotFoundException");
    let (code, _, _) = failure(
        cp.untag_resource()
            .resource_arn(missing)
            .tag_keys("a")
            .send()
            .await,
    );
    assert_eq!(code, "ResourceNotFoundException");

    for malformed in [
        "not-an-arn",
        "arn:aws:s3:::bucket",
        "arn:aws:codepipeline:eu-central-1:12:p",
    ] {
        let (code, _, status) = failure(
            cp.list_tags_for_resource()
                .resource_arn(malformed)
                .send()
                .await,
        );
        assert_eq!(
            (code.as_str(), status),
            ("InvalidArnException", 400),
            "{malformed}"
        );
    }
}
