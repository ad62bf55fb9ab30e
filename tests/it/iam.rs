//! IAM roles and STS on the query protocol, and CreatePipeline's role check.

use serde_json::json;

use crate::common::{tutorial_declaration, Server};

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"codepipeline.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn create_role(server: &Server, name: &str, trust: &str) -> crate::common::RawResponse {
    server.query(
        "iam",
        &form(&[
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", name),
            ("AssumeRolePolicyDocument", trust),
        ]),
    )
}

#[test]
fn roles_are_created_read_and_refused_as_iam_does() {
    let server = Server::start();
    let created = create_role(&server, "role", TRUST);
    assert_eq!(created.status, 200, "{}", created.text());
    assert!(created
        .text()
        .contains("<Arn>arn:aws:iam::000000000000:role/role</Arn>"));
    assert!(created
        .text()
        .contains("<CreateRoleResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">"));

    let again = create_role(&server, "role", TRUST);
    assert_eq!(again.status, 409);
    assert!(again.text().contains("<Code>EntityAlreadyExists</Code>"));
    let bad = create_role(&server, "other", "not json");
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("<Code>MalformedPolicyDocument</Code>"));

    let missing = server.query("iam", &form(&[("Action", "GetRole"), ("RoleName", "nope")]));
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("<Code>NoSuchEntity</Code>"));
    let unknown = server.query("iam", &form(&[("Action", "CreateUser"), ("UserName", "u")]));
    assert_eq!(unknown.status, 400);
    assert!(unknown.text().contains("<Code>InvalidAction</Code>"));

    let put = server.query(
        "iam",
        &form(&[
            ("Action", "PutRolePolicy"),
            ("RoleName", "role"),
            ("PolicyName", "p"),
            ("PolicyDocument", r#"{"Statement":[]}"#),
        ]),
    );
    assert_eq!(put.status, 200);
    let conflict = server.query(
        "iam",
        &form(&[("Action", "DeleteRole"), ("RoleName", "role")]),
    );
    assert_eq!(conflict.status, 409);
    assert!(conflict.text().contains("<Code>DeleteConflict</Code>"));
    let listed = server.query(
        "iam",
        &form(&[("Action", "ListRolePolicies"), ("RoleName", "role")]),
    );
    assert!(listed
        .text()
        .contains("<PolicyNames><member>p</member></PolicyNames>"));
}

#[test]
fn caller_identity_names_the_account() {
    let server = Server::start();
    let who = server.query("sts", "Action=GetCallerIdentity&Version=2011-06-15");
    assert_eq!(who.status, 200);
    assert!(who.text().contains("<Account>000000000000</Account>"));
}

#[test]
fn roles_survive_kill_9() {
    let server = Server::start();
    assert_eq!(create_role(&server, "kept", TRUST).status, 200);
    let before = server
        .query("iam", &form(&[("Action", "GetRole"), ("RoleName", "kept")]))
        .text();
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    let restarted = Server::start_in(&dir);
    let after = restarted
        .query("iam", &form(&[("Action", "GetRole"), ("RoleName", "kept")]))
        .text();
    let strip = |s: &str| {
        s.split("<ResponseMetadata>")
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(strip(&before), strip(&after));
}

#[test]
fn enforced_roles_must_exist_and_trust_codepipeline() {
    let server = Server::start_with(&[("CODEPIPELINE_LOCAL_IAM_ENFORCE_ROLES", "true")]);
    let create = |name: &str| {
        server.call(
            "CreatePipeline",
            json!({"pipeline": tutorial_declaration(name)}),
        )
    };
    let refused = create("p1");
    assert_eq!(refused.status, 400);
    assert_eq!(refused.error_code(), "InvalidStructureException");
    assert_eq!(
        refused.json()["message"],
        "CodePipeline is not authorized to perform AssumeRole on role arn:aws:iam::000000000000:role/role"
    );
    let untrusting = TRUST.replace("codepipeline", "codebuild");
    assert_eq!(create_role(&server, "role", &untrusting).status, 200);
    assert_eq!(create("p1").error_code(), "InvalidStructureException");
    let update = server.query(
        "iam",
        &form(&[
            ("Action", "UpdateAssumeRolePolicy"),
            ("RoleName", "role"),
            ("PolicyDocument", TRUST),
        ]),
    );
    assert_eq!(update.status, 200);
    assert_eq!(create("p1").status, 200);

    // Off by default.
    let lax = Server::start();
    assert_eq!(
        lax.call(
            "CreatePipeline",
            json!({"pipeline": tutorial_declaration("p")})
        )
        .status,
        200
    );
}

/// IAM's constraints (from its model) and policy grammar: refused with IAM's codes, and a refused
/// request stores nothing.
#[test]
fn iam_refuses_what_aws_refuses_and_stores_nothing() {
    let server = Server::start();
    let long = "r".repeat(65);
    for name in ["../x", "a b", "nul\0", long.as_str()] {
        let r = create_role(&server, name, TRUST);
        assert_eq!(
            (r.status, r.xml_code().as_str()),
            (400, "ValidationError"),
            "{name:?}: {}",
            r.text()
        );
        let got = server.query(
            "iam",
            &form(&[
                ("Action", "GetRole"),
                ("Version", "2010-05-08"),
                ("RoleName", name),
            ]),
        );
        assert_ne!(got.status, 200, "{name:?} was stored");
    }
    for document in [
        r#"{"Statement": 5}"#,
        "{}",
        "[1]",
        r#"{"Statement":[{"Effect":"Maybe"}]}"#,
    ] {
        let r = create_role(&server, "doc", document);
        assert_eq!(r.xml_code(), "MalformedPolicyDocument", "{document}");
    }
    assert_eq!(create_role(&server, "role", TRUST).status, 200);
    let put = |policy: &str, document: &str| {
        server.query(
            "iam",
            &form(&[
                ("Action", "PutRolePolicy"),
                ("Version", "2010-05-08"),
                ("RoleName", "role"),
                ("PolicyName", policy),
                ("PolicyDocument", document),
            ]),
        )
    };
    assert_eq!(put(&"p".repeat(129), TRUST).xml_code(), "ValidationError");
    assert_eq!(put("p", "{}").xml_code(), "MalformedPolicyDocument");
    let update = server.query(
        "iam",
        &form(&[
            ("Action", "UpdateAssumeRolePolicy"),
            ("Version", "2010-05-08"),
            ("RoleName", "role"),
            ("PolicyDocument", r#"{"Statement": 5}"#),
        ]),
    );
    assert_eq!(update.xml_code(), "MalformedPolicyDocument");
    for (key, value) in [
        ("MaxItems", "-1"),
        ("MaxItems", "0"),
        ("MaxItems", "abc"),
        ("PathPrefix", "no-slash"),
    ] {
        let r = server.query(
            "iam",
            &form(&[
                ("Action", "ListRoles"),
                ("Version", "2010-05-08"),
                (key, value),
            ]),
        );
        assert_eq!(r.xml_code(), "ValidationError", "{key}={value}");
    }
    let tagged = server.query(
        "iam",
        &form(&[
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", "tagged"),
            ("AssumeRolePolicyDocument", TRUST),
            ("Tags.member.1.Key", ""),
            ("Tags.member.1.Value", "v"),
        ]),
    );
    assert_eq!(tagged.xml_code(), "ValidationError");
    // The role is as it was: its trust policy unchanged, no inline policy.
    let got = server.query(
        "iam",
        &form(&[
            ("Action", "ListRolePolicies"),
            ("Version", "2010-05-08"),
            ("RoleName", "role"),
        ]),
    );
    assert!(
        got.text().contains("<PolicyNames></PolicyNames>"),
        "{}",
        got.text()
    );
}

#[test]
fn assume_role_gives_credentials_in_aws_shape_for_a_role_that_exists() {
    let server = Server::start();
    let cli = |args: &[&str]| {
        let out = server.aws_cli(args);
        match out.status.success() {
            true => Ok(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()),
            false => Err(String::from_utf8_lossy(&out.stderr).to_string()),
        }
    };
    cli(&[
        "iam", "create-role", "--role-name", "deploy",
        "--assume-role-policy-document", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#,
    ])
    .unwrap();
    let arn = "arn:aws:iam::000000000000:role/deploy";
    let assumed = cli(&[
        "sts",
        "assume-role",
        "--role-arn",
        arn,
        "--role-session-name",
        "cdk",
    ])
    .unwrap();
    let credentials = &assumed["Credentials"];
    let key = credentials["AccessKeyId"].as_str().unwrap();
    assert!(key.starts_with("ASIA") && key.len() == 20, "{key}");
    assert_eq!(credentials["SecretAccessKey"].as_str().unwrap().len(), 40);
    assert!(credentials["SessionToken"].is_string());
    assert!(credentials["Expiration"].is_string());
    assert_eq!(
        assumed["AssumedRoleUser"]["Arn"],
        "arn:aws:sts::000000000000:assumed-role/deploy/cdk"
    );
    assert!(assumed["AssumedRoleUser"]["AssumedRoleId"]
        .as_str()
        .unwrap()
        .ends_with(":cdk"));
    let web = cli(&[
        "sts",
        "assume-role-with-web-identity",
        "--role-arn",
        arn,
        "--role-session-name",
        "ci",
        "--web-identity-token",
        "token",
    ])
    .unwrap();
    assert!(web["Credentials"]["AccessKeyId"]
        .as_str()
        .unwrap()
        .starts_with("ASIA"));
    // The credentials work against the endpoint.
    let out = std::process::Command::new("aws")
        .args([
            "--endpoint-url",
            &server.endpoint,
            "sts",
            "get-caller-identity",
        ])
        .env("AWS_ACCESS_KEY_ID", key)
        .env(
            "AWS_SECRET_ACCESS_KEY",
            credentials["SecretAccessKey"].as_str().unwrap(),
        )
        .env(
            "AWS_SESSION_TOKEN",
            credentials["SessionToken"].as_str().unwrap(),
        )
        .env("AWS_DEFAULT_REGION", "eu-central-1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = cli(&[
        "sts",
        "assume-role",
        "--role-arn",
        "arn:aws:iam::000000000000:role/none",
        "--role-session-name",
        "x1",
    ])
    .unwrap_err();
    assert!(e.contains("AccessDenied"), "{e}");
    let e = cli(&[
        "sts",
        "assume-role",
        "--role-arn",
        arn,
        "--role-session-name",
        "x1",
        "--duration-seconds",
        "7200",
    ])
    .unwrap_err();
    assert!(e.contains("ValidationError"), "{e}");
}
