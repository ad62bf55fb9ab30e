//! CodeBuild projects on the endpoint, with the official SDK: create, read, list, update, delete,
//! AWS's error codes, the operations not served yet, and SIGKILL.

use aws_sdk_codebuild::error::ProvideErrorMetadata;
use aws_sdk_codebuild::types::{
    ArtifactsType, ComputeType, EnvironmentType, EnvironmentVariable, ProjectArtifacts,
    ProjectEnvironment, ProjectSortByType, ProjectSource, SortOrderType, SourceType,
};
use serde_json::json;

use crate::common::Server;

fn create(
    cb: &aws_sdk_codebuild::Client,
    name: &str,
) -> aws_sdk_codebuild::operation::create_project::builders::CreateProjectFluentBuilder {
    cb.create_project()
        .name(name)
        .source(
            ProjectSource::builder()
                .r#type(SourceType::Codepipeline)
                .buildspec("version: 0.2\nphases:\n  build:\n    commands:\n      - echo hello\n")
                .build()
                .unwrap(),
        )
        .artifacts(
            ProjectArtifacts::builder()
                .r#type(ArtifactsType::Codepipeline)
                .build()
                .unwrap(),
        )
        .environment(
            ProjectEnvironment::builder()
                .r#type(EnvironmentType::LinuxContainer)
                .image("aws/codebuild/standard:7.0")
                .compute_type(ComputeType::BuildGeneral1Small)
                .environment_variables(
                    EnvironmentVariable::builder()
                        .name("STAGE")
                        .value("test")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .service_role("arn:aws:iam::000000000000:role/role")
}

#[tokio::test]
async fn projects_are_created_read_listed_updated_and_deleted() {
    let server = Server::start();
    let cb = server.codebuild();
    let created = create(&cb, "app-build").send().await.unwrap();
    let p = created.project().unwrap();
    assert_eq!(p.name(), Some("app-build"));
    assert_eq!(
        p.arn(),
        Some("arn:aws:codebuild:eu-central-1:000000000000:project/app-build")
    );
    assert_eq!(p.timeout_in_minutes(), Some(60));
    assert_eq!(p.queued_timeout_in_minutes(), Some(480));
    assert_eq!(
        p.environment().unwrap().environment_variables()[0].value(),
        "test"
    );
    assert!(p.created().is_some());
    // A name in use.
    let err = create(&cb, "app-build").send().await.unwrap_err();
    assert_eq!(err.code(), Some("ResourceAlreadyExistsException"));

    create(&cb, "another").send().await.unwrap();
    let got = cb
        .batch_get_projects()
        .names("app-build")
        .names("arn:aws:codebuild:eu-central-1:000000000000:project/another")
        .names("missing")
        .send()
        .await
        .unwrap();
    let names: Vec<_> = got.projects().iter().map(|p| p.name().unwrap()).collect();
    assert_eq!(names, ["app-build", "another"]);
    assert_eq!(got.projects_not_found(), ["missing"]);

    let listed = cb
        .list_projects()
        .sort_by(ProjectSortByType::Name)
        .sort_order(SortOrderType::Descending)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.projects(), ["app-build", "another"]);

    let updated = cb
        .update_project()
        .name("app-build")
        .timeout_in_minutes(5)
        .send()
        .await
        .unwrap();
    let p = updated.project().unwrap();
    assert_eq!(p.timeout_in_minutes(), Some(5));
    assert_eq!(
        p.environment().unwrap().image(),
        "aws/codebuild/standard:7.0"
    );
    let err = cb
        .update_project()
        .name("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    cb.delete_project().name("another").send().await.unwrap();
    // Deleting what does not exist succeeds, as on AWS.
    cb.delete_project().name("another").send().await.unwrap();
    let listed = cb.list_projects().send().await.unwrap();
    assert_eq!(listed.projects(), ["app-build"]);

    // Everything acknowledged survives SIGKILL.
    let before = server
        .raw_codebuild(
            "BatchGetProjects",
            json!({"names": ["app-build", "another"]}),
        )
        .text();
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    let restarted = Server::start_in(&dir);
    assert_eq!(
        restarted
            .raw_codebuild(
                "BatchGetProjects",
                json!({"names": ["app-build", "another"]})
            )
            .text(),
        before
    );
}

#[tokio::test]
async fn bad_input_and_operations_not_served_get_aws_errors() {
    let server = Server::start();
    let cb = server.codebuild();
    // The model's limits: a name of 1 character is too short (2 to 150).
    let err = create(&cb, "x").send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidInputException"));
    assert!(cb
        .list_projects()
        .send()
        .await
        .unwrap()
        .projects()
        .is_empty());
    let r = server.raw_codebuild("StartBuild", json!({"projectName": "app-build"}));
    assert_eq!(r.status, 501);
    assert_eq!(r.error_code(), "NotImplementedException");
    assert!(r.text().contains("StartBuild"), "{}", r.text());
    let r = server.raw_codebuild("NoSuchOperation", json!({}));
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "UnknownOperationException");
}
