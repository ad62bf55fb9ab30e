//! SSM Parameter Store with the real AWS CLI: versions, selectors, paths, filters, AWS's errors,
//! kill -9; and CodeBuild's PARAMETER_STORE variables read from it.

use aws_sdk_codebuild::types::{EnvironmentVariable, EnvironmentVariableType, StatusType};
use serde_json::Value;

use crate::common::Server;

pub(crate) fn ssm(server: &Server, args: &[&str]) -> Result<Value, String> {
    let mut all = vec!["ssm"];
    all.extend(args);
    let out = server.aws_cli(&all);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).to_string());
    }
    if out.stdout.is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn parameters_are_versioned_found_by_path_and_refused_as_aws_words_it() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_in(data.path());
    let put = |args: &[&str]| ssm(&server, &[&["put-parameter"], args].concat());
    let made = put(&[
        "--name",
        "/app/db/url",
        "--value",
        "db://one",
        "--type",
        "String",
    ])
    .unwrap();
    assert_eq!(made["Version"], 1);
    assert_eq!(made["Tier"], "Standard");
    put(&[
        "--name",
        "/app/db/user",
        "--value",
        "admin",
        "--type",
        "SecureString",
        "--description",
        "who",
    ])
    .unwrap();
    put(&[
        "--name",
        "/app/name",
        "--value",
        "a,b",
        "--type",
        "StringList",
    ])
    .unwrap();
    put(&["--name", "plain", "--value", "p", "--type", "String"]).unwrap();

    let refused = put(&["--name", "/app/db/url", "--value", "x"]).unwrap_err();
    assert!(refused.contains("ParameterAlreadyExists"), "{refused}");
    let again = put(&[
        "--name",
        "/app/db/url",
        "--value",
        "db://two",
        "--overwrite",
    ])
    .unwrap();
    assert_eq!(again["Version"], 2);
    for (args, code) in [
        (
            vec!["--name", "/new", "--value", "x"],
            "ValidationException",
        ),
        (
            vec!["--name", "/aws/mine", "--value", "x", "--type", "String"],
            "ValidationException",
        ),
        (
            vec!["--name", "bad name", "--value", "x", "--type", "String"],
            "ValidationException",
        ),
        (
            vec![
                "--name",
                "/p",
                "--value",
                "abc",
                "--type",
                "String",
                "--allowed-pattern",
                "^[0-9]+$",
            ],
            "ParameterPatternMismatchException",
        ),
        (
            vec!["--name", "/p", "--value", "x", "--type", "Nope"],
            "ValidationException",
        ),
    ] {
        let e = put(&args).unwrap_err();
        assert!(e.contains(code), "{args:?}: {e}");
    }

    let got = ssm(&server, &["get-parameter", "--name", "/app/db/url"]).unwrap();
    let p = &got["Parameter"];
    assert_eq!(p["Value"], "db://two");
    assert_eq!(p["Version"], 2);
    assert_eq!(p["Type"], "String");
    assert_eq!(
        p["ARN"],
        "arn:aws:ssm:eu-central-1:000000000000:parameter/app/db/url"
    );
    assert!(p["LastModifiedDate"].is_number() || p["LastModifiedDate"].is_string());
    let old = ssm(&server, &["get-parameter", "--name", "/app/db/url:1"]).unwrap();
    assert_eq!(old["Parameter"]["Value"], "db://one");
    assert_eq!(old["Parameter"]["Selector"], ":1");
    let e = ssm(&server, &["get-parameter", "--name", "/app/db/url:9"]).unwrap_err();
    assert!(e.contains("ParameterVersionNotFound"), "{e}");
    let e = ssm(&server, &["get-parameter", "--name", "/nothing"]).unwrap_err();
    assert!(e.contains("ParameterNotFound"), "{e}");

    let some = ssm(
        &server,
        &["get-parameters", "--names", "/app/name", "/missing"],
    )
    .unwrap();
    assert_eq!(some["Parameters"][0]["Value"], "a,b");
    assert_eq!(some["InvalidParameters"], serde_json::json!(["/missing"]));
    let names = |v: &Value| -> Vec<String> {
        v["Parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["Name"].as_str().unwrap().to_string())
            .collect()
    };
    let one_level = ssm(&server, &["get-parameters-by-path", "--path", "/app"]).unwrap();
    assert_eq!(names(&one_level), ["/app/name"]);
    let all = ssm(
        &server,
        &["get-parameters-by-path", "--path", "/app", "--recursive"],
    )
    .unwrap();
    assert_eq!(names(&all), ["/app/db/url", "/app/db/user", "/app/name"]);
    let described = ssm(
        &server,
        &[
            "describe-parameters",
            "--parameter-filters",
            "Key=Name,Option=BeginsWith,Values=/app/db",
        ],
    )
    .unwrap();
    assert_eq!(names(&described), ["/app/db/url", "/app/db/user"]);
    assert_eq!(described["Parameters"][1]["Description"], "who");
    let history = ssm(&server, &["get-parameter-history", "--name", "/app/db/url"]).unwrap();
    let values: Vec<&str> = history["Parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["db://one", "db://two"]);

    ssm(&server, &["delete-parameter", "--name", "plain"]).unwrap();
    let e = ssm(&server, &["delete-parameter", "--name", "plain"]).unwrap_err();
    assert!(e.contains("ParameterNotFound"), "{e}");
    let deleted = ssm(
        &server,
        &["delete-parameters", "--names", "/app/name", "/missing"],
    )
    .unwrap();
    assert_eq!(
        deleted["DeletedParameters"],
        serde_json::json!(["/app/name"])
    );
    assert_eq!(
        deleted["InvalidParameters"],
        serde_json::json!(["/missing"])
    );
    let e = ssm(
        &server,
        &[
            "send-command",
            "--document-name",
            "x",
            "--instance-ids",
            "i-1",
        ],
    )
    .unwrap_err();
    assert!(e.contains("SendCommand"), "{e}");

    server.kill9();
    let server = Server::start_in(data.path());
    let got = ssm(&server, &["get-parameter", "--name", "/app/db/url"]).unwrap();
    assert_eq!(got["Parameter"]["Version"], 2);
    let gone = ssm(
        &server,
        &["get-parameters", "--names", "/app/name", "plain"],
    )
    .unwrap();
    assert_eq!(gone["Parameters"], serde_json::json!([]));
}

#[tokio::test]
async fn builds_read_parameter_store_variables() {
    let server = Server::start();
    ssm(
        &server,
        &[
            "put-parameter",
            "--name",
            "/build/token",
            "--value",
            "s3cret",
            "--type",
            "SecureString",
        ],
    )
    .unwrap();
    ssm(
        &server,
        &[
            "put-parameter",
            "--name",
            "/build/region",
            "--value",
            "north",
            "--type",
            "String",
        ],
    )
    .unwrap();
    let cb = server.codebuild();
    crate::codebuild::project_with(
        &cb,
        "params",
        "version: 0.2\nenv:\n  parameter-store:\n    WHERE: /build/region\n  exported-variables:\n    - WHERE\n    - TOKEN\nphases:\n  build:\n    commands:\n      - echo \"$WHERE $TOKEN\"\n",
    )
    .await;
    let var = |value: &str| {
        EnvironmentVariable::builder()
            .name("TOKEN")
            .value(value)
            .r#type(EnvironmentVariableType::ParameterStore)
            .build()
            .unwrap()
    };
    let started = cb
        .start_build()
        .project_name("params")
        .environment_variables_override(var("/build/token"))
        .send()
        .await
        .unwrap();
    let id = started.build_value().unwrap().id().unwrap().to_string();
    let b = crate::codebuild::completed(&cb, &id).await;
    assert_eq!(b.build_status(), Some(&StatusType::Succeeded));
    let exported: Vec<(String, String)> = b
        .exported_environment_variables()
        .iter()
        .map(|v| {
            (
                v.name().unwrap().to_string(),
                v.value().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        exported.contains(&("WHERE".into(), "north".into())),
        "{exported:?}"
    );
    assert!(
        exported.contains(&("TOKEN".into(), "s3cret".into())),
        "{exported:?}"
    );
    let e = cb
        .start_build()
        .project_name("params")
        .environment_variables_override(var("/build/missing"))
        .send()
        .await
        .unwrap_err();
    let message = format!("{:?}", e.into_service_error());
    assert!(message.contains("/build/missing"), "{message}");
}
