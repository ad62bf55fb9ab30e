//! Pipeline CRUD through aws-sdk-codepipeline, with AWS's shapes and errors.

use aws_sdk_codepipeline::types::{ActionCategory, ActionOwner, ExecutionMode, PipelineType};

use crate::common::Server;
use crate::declarations::*;

#[tokio::test]
async fn create_returns_the_declaration_with_defaults_and_get_reads_it_back() {
    let server = Server::start();
    let cp = server.codepipeline();
    let created = cp
        .create_pipeline()
        .pipeline(tutorial("pipeline"))
        .tags(
            aws_sdk_codepipeline::types::Tag::builder()
                .key("team")
                .value("ci")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let p = created.pipeline().unwrap();
    assert_eq!(p.version(), Some(1));
    assert_eq!(p.pipeline_type(), Some(&PipelineType::V1));
    assert_eq!(p.execution_mode(), Some(&ExecutionMode::Superseded));
    let action = &p.stages()[0].actions()[0];
    assert_eq!(action.run_order(), Some(1));
    assert!(action.input_artifacts().is_empty());
    assert_eq!(action.configuration().unwrap()["S3Bucket"], "source-bucket");
    assert_eq!(created.tags()[0].key(), "team");

    let got = cp.get_pipeline().name("pipeline").send().await.unwrap();
    assert_eq!(got.pipeline(), created.pipeline());
    let meta = got.metadata().unwrap();
    assert_eq!(
        meta.pipeline_arn(),
        Some("arn:aws:codepipeline:eu-central-1:000000000000:pipeline")
    );
    assert_eq!(meta.created(), meta.updated());
    assert!(meta.created().unwrap().secs() > 1_700_000_000);
}

#[tokio::test]
async fn update_counts_versions_and_keeps_every_version_readable() {
    let server = Server::start();
    let cp = server.codepipeline();
    cp.create_pipeline()
        .pipeline(tutorial("p"))
        .send()
        .await
        .unwrap();
    let first = cp.get_pipeline().name("p").send().await.unwrap();

    let mut v2 = tutorial("p");
    v2.stages[1].actions[0].name = "deploy".into();
    let updated = cp.update_pipeline().pipeline(v2).send().await.unwrap();
    assert_eq!(updated.pipeline().unwrap().version(), Some(2));

    let current = cp.get_pipeline().name("p").send().await.unwrap();
    assert_eq!(
        current.pipeline().unwrap().stages()[1].actions()[0].name(),
        "deploy"
    );
    let (m1, m2) = (first.metadata().unwrap(), current.metadata().unwrap());
    assert_eq!(m1.created(), m2.created());
    assert!(m2.updated().unwrap().as_secs_f64() >= m1.updated().unwrap().as_secs_f64());

    let old = cp.get_pipeline().name("p").version(1).send().await.unwrap();
    assert_eq!(old.pipeline(), first.pipeline());
    let (code, message, status) = failure(cp.get_pipeline().name("p").version(3).send().await);
    assert_eq!(
        (code.as_str(), status),
        ("PipelineVersionNotFoundException", 400)
    );
    assert!(message.contains("'3'"), "{message}");

    let summary = &cp.list_pipelines().send().await.unwrap().pipelines()[0].clone();
    assert_eq!(summary.version(), Some(2));
    assert_eq!(summary.name(), Some("p"));
    assert_eq!(summary.execution_mode(), Some(&ExecutionMode::Superseded));
    assert_eq!(summary.updated(), m2.updated());
}

#[tokio::test]
async fn missing_and_duplicate_pipelines_answer_aws_errors() {
    let server = Server::start();
    let cp = server.codepipeline();
    let (code, message, status) = failure(cp.get_pipeline().name("nope").send().await);
    assert_eq!((code.as_str(), status), ("PipelineNotFoundException", 400));
    assert_eq!(
        message,
        "Account '000000000000' does not have a pipeline with name 'nope'"
    );

    let (code, _, status) = failure(cp.update_pipeline().pipeline(tutorial("nope")).send().await);
    assert_eq!((code.as_str(), status), ("ResourceNotFoundException", 400));

    cp.create_pipeline()
        .pipeline(tutorial("p"))
        .send()
        .await
        .unwrap();
    let (code, message, status) =
        failure(cp.create_pipeline().pipeline(tutorial("p")).send().await);
    assert_eq!((code.as_str(), status), ("PipelineNameInUseException", 400));
    assert!(message.contains("'p'"), "{message}");

    // Delete is idempotent, as on AWS; the pipeline is gone afterwards.
    cp.delete_pipeline().name("p").send().await.unwrap();
    cp.delete_pipeline().name("p").send().await.unwrap();
    let (code, _, _) = failure(cp.get_pipeline().name("p").send().await);
    assert_eq!(code, "PipelineNotFoundException");
    assert!(cp
        .list_pipelines()
        .send()
        .await
        .unwrap()
        .pipelines()
        .is_empty());
    // The name can be used again, and starts again at version 1.
    let again = cp
        .create_pipeline()
        .pipeline(tutorial("p"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.pipeline().unwrap().version(), Some(1));
}

#[tokio::test]
async fn field_constraints_come_from_the_model() {
    let server = Server::start();
    let cp = server.codepipeline();
    let (code, message, status) = failure(
        cp.create_pipeline()
            .pipeline(tutorial("bad name"))
            .send()
            .await,
    );
    assert_eq!((code.as_str(), status), ("ValidationException", 400));
    assert_eq!(
        message,
        "1 validation error detected: Value 'bad name' at 'pipeline.name' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: [A-Za-z0-9.@\\-_]+"
    );
    let mut p = tutorial("p");
    p.stages[1].actions[0].run_order = Some(1000);
    let (code, message, _) = failure(cp.create_pipeline().pipeline(p).send().await);
    assert_eq!(code, "ValidationException");
    assert!(
        message.contains("'pipeline.stages.2.member.actions.1.member.runOrder'"),
        "{message}"
    );
    assert!(message.contains("less than or equal to 999"), "{message}");
    let (code, _, _) = failure(cp.get_pipeline().name("p").version(0).send().await);
    assert_eq!(code, "ValidationException");
    let (code, _, _) = failure(cp.list_pipelines().max_results(1001).send().await);
    assert_eq!(code, "ValidationException");
}

#[tokio::test]
async fn structural_rules_refuse_with_aws_codes_and_store_nothing() {
    let server = Server::start();
    let cp = server.codepipeline();
    let cases = vec![
        (
            pipeline_with("p", vec![stage("stage1", vec![s3_source("a", "out")])]),
            "InvalidStructureException",
            "minimum of 2 stages",
        ),
        (
            pipeline_with(
                "p",
                vec![
                    stage("stage1", vec![s3_source("a", "out")]),
                    stage("stage1", vec![s3_deploy("b", "out")]),
                ],
            ),
            "InvalidStructureException",
            "Stage names must be unique",
        ),
        (
            pipeline_with(
                "p",
                vec![
                    stage("stage1", vec![s3_source("a", "out")]),
                    stage("stage2", vec![s3_deploy("b", "out"), s3_deploy("b", "out")]),
                ],
            ),
            "InvalidStageDeclarationException",
            "Action names must be unique",
        ),
        (
            pipeline_with(
                "p",
                vec![
                    stage("stage1", vec![s3_deploy("a", "out")]),
                    stage("stage2", vec![s3_deploy("b", "out")]),
                ],
            ),
            "InvalidStructureException",
            "first stage",
        ),
        (
            pipeline_with(
                "p",
                vec![
                    stage("stage1", vec![s3_source("a", "out")]),
                    stage("stage2", vec![s3_source("b", "other")]),
                ],
            ),
            "InvalidStructureException",
            "only appear in the first stage",
        ),
        (
            pipeline_with(
                "p",
                vec![
                    stage("stage1", vec![s3_source("a", "out")]),
                    stage("stage2", vec![s3_deploy("b", "missing")]),
                ],
            ),
            "InvalidStructureException",
            "'missing'",
        ),
        (
            pipeline_with(
                "p",
                vec![
                    stage("stage1", vec![s3_source("a", "out"), s3_source("b", "out")]),
                    stage("stage2", vec![s3_deploy("c", "out")]),
                ],
            ),
            "InvalidStructureException",
            "used more than once",
        ),
        (
            {
                let mut p = tutorial("p");
                p.stages[1].actions[0].action_type_id =
                    Some(type_id(ActionCategory::Deploy, "Ftp"));
                p
            },
            "InvalidActionDeclarationException",
            "is not available",
        ),
        (
            {
                let mut p = tutorial("p");
                p.stages[1].actions[0].input_artifacts = Some(vec![]);
                p
            },
            "InvalidActionDeclarationException",
            "0 input artifact",
        ),
        (
            {
                let mut p = tutorial("p");
                p.artifact_stores = Some(
                    [(
                        "eu-central-1".to_string(),
                        p.artifact_store.clone().unwrap(),
                    )]
                    .into_iter()
                    .collect(),
                );
                p
            },
            "InvalidStructureException",
            "not both",
        ),
        (
            {
                let mut p = tutorial("p");
                p.execution_mode = Some(ExecutionMode::Queued);
                p
            },
            "ValidationException",
            "V2",
        ),
    ];
    for (declaration, expected_code, expected_text) in cases {
        let (code, message, status) =
            failure(cp.create_pipeline().pipeline(declaration).send().await);
        assert_eq!((code.as_str(), status), (expected_code, 400), "{message}");
        assert!(
            message.contains(expected_text),
            "{expected_text:?} not in {message:?}"
        );
    }
    assert!(cp
        .list_pipelines()
        .send()
        .await
        .unwrap()
        .pipelines()
        .is_empty());

    // A refused update leaves the stored pipeline as it was.
    cp.create_pipeline()
        .pipeline(tutorial("p"))
        .send()
        .await
        .unwrap();
    let before = server
        .call("GetPipeline", serde_json::json!({"name": "p"}))
        .body;
    let bad = pipeline_with("p", vec![stage("stage1", vec![s3_source("a", "out")])]);
    let (code, _, _) = failure(cp.update_pipeline().pipeline(bad).send().await);
    assert_eq!(code, "InvalidStructureException");
    assert_eq!(
        server
            .call("GetPipeline", serde_json::json!({"name": "p"}))
            .body,
        before
    );
}

#[tokio::test]
async fn a_provider_we_do_not_run_yet_is_accepted() {
    let server = Server::start();
    let cp = server.codepipeline();
    let mut p = tutorial("p");
    let deploy = &mut p.stages[1].actions[0];
    deploy.action_type_id = Some(type_id(ActionCategory::Deploy, "CodeDeploy"));
    deploy.configuration = Some(
        [("ApplicationName", "app"), ("DeploymentGroupName", "group")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    cp.create_pipeline().pipeline(p).send().await.unwrap();
}

#[tokio::test]
async fn list_pipelines_paginates() {
    let server = Server::start();
    let cp = server.codepipeline();
    for i in 0..27 {
        cp.create_pipeline()
            .pipeline(tutorial(&format!("p{i:02}")))
            .send()
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = cp
            .list_pipelines()
            .max_results(10)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        pages += 1;
        names.extend(
            page.pipelines()
                .iter()
                .map(|p| p.name().unwrap().to_string()),
        );
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..27).map(|i| format!("p{i:02}")).collect();
    assert_eq!(names, expected);
    // Without maxResults one page holds them all.
    let all = cp.list_pipelines().send().await.unwrap();
    assert_eq!(all.pipelines().len(), 27);
    assert!(all.next_token().is_none());

    let (code, _, status) = failure(cp.list_pipelines().next_token("garbage").send().await);
    assert_eq!((code.as_str(), status), ("InvalidNextTokenException", 400));
}

#[tokio::test]
async fn pipelines_are_per_region() {
    let server = Server::start();
    let cp = server.codepipeline();
    cp.create_pipeline()
        .pipeline(tutorial("p"))
        .send()
        .await
        .unwrap();
    let other = aws_sdk_codepipeline::Client::from_conf(
        cp.config()
            .to_builder()
            .region(aws_sdk_codepipeline::config::Region::new("us-west-2"))
            .build(),
    );
    assert!(other
        .list_pipelines()
        .send()
        .await
        .unwrap()
        .pipelines()
        .is_empty());
    other
        .create_pipeline()
        .pipeline(tutorial("p"))
        .send()
        .await
        .unwrap();
    let got = other.get_pipeline().name("p").send().await.unwrap();
    assert_eq!(
        got.metadata().unwrap().pipeline_arn(),
        Some("arn:aws:codepipeline:us-west-2:000000000000:p")
    );
}

#[tokio::test]
async fn list_action_types_lists_what_we_run() {
    let server = Server::start();
    let cp = server.codepipeline();
    let types = cp.list_action_types().send().await.unwrap();
    let ids: Vec<(String, String)> = types
        .action_types()
        .iter()
        .map(|t| {
            let id = t.id().unwrap();
            (
                id.category().as_str().to_string(),
                id.provider().to_string(),
            )
        })
        .collect();
    for expected in [
        ("Source", "S3"),
        ("Deploy", "S3"),
        ("Approval", "Manual"),
        ("Build", "CodeBuild"),
    ] {
        assert!(
            ids.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} missing from {ids:?}"
        );
    }
    let s3 = types
        .action_types()
        .iter()
        .find(|t| {
            t.id().unwrap().provider() == "S3"
                && t.id().unwrap().category() == &ActionCategory::Source
        })
        .unwrap();
    assert_eq!(s3.output_artifact_details().unwrap().maximum_count(), 1);
    let custom = cp
        .list_action_types()
        .action_owner_filter(ActionOwner::Custom)
        .send()
        .await
        .unwrap();
    assert!(custom.action_types().is_empty());
}
