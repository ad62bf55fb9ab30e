//! Bad input from outside: thousands of malformed requests generated from the services' own
//! models, to every CodePipeline and CodeBuild operation, to IAM and STS, and to S3. None may get a
//! server error (an explicit 501 for an operation not served aside), every error is in its
//! protocol's shape, and nothing stored changes.

use serde_json::{json, Value};

use crate::common::{repo_file, tutorial_declaration, RawResponse, Server};

/// The values every member is tried with: wrong types, oversized and empty strings, an invalid
/// enum, deep nesting.
pub(crate) fn wrong_values() -> Vec<Value> {
    let deep = (0..200).fold(json!(1), |v, _| json!([v]));
    vec![
        json!(null),
        json!(true),
        json!(-1),
        json!(1.5e300),
        json!(""),
        json!("NOT_AN_ENUM_VALUE"),
        json!("x".repeat(100_000)),
        json!([]),
        json!([{"a": 1}]),
        json!({}),
        json!({"name": 5}),
        deep,
    ]
}

/// Bodies that are not a JSON object at all.
pub(crate) const NOT_JSON: &[&[u8]] = &[
    b"",
    b"{",
    b"[]",
    b"null",
    b"\"text\"",
    b"\xff\xfe\x00{",
    b"{\"a\":",
    b"{\"a\": 1, \"a\": 2}",
];

/// Every input member name of every operation of a botocore-shaped model: (operation, members).
fn operations(model: &Value) -> Vec<(String, Vec<String>)> {
    let shapes = &model["shapes"];
    model["operations"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, op)| {
            let members = op["input"]["shape"]
                .as_str()
                .and_then(|s| shapes[s]["members"].as_object())
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            (name.clone(), members)
        })
        .collect()
}

/// What a JSON service answered is acceptable: no server error but an explicit 501, and an error
/// that is AWS's JSON shape.
pub(crate) fn check_json(what: &str, r: &RawResponse) {
    assert!(
        r.status < 500 || (r.status == 501 && r.error_code() == "NotImplementedException"),
        "{what}: {} {}",
        r.status,
        r.text()
    );
    if r.status >= 400 {
        let body = r.json();
        assert!(
            body["__type"].as_str().is_some_and(|t| !t.is_empty()),
            "{what}: {}",
            r.text()
        );
        assert!(body["message"].is_string(), "{what}: {}", r.text());
    }
}

/// What a pipeline, a project, a role and a bucket look like, to compare before and after.
fn snapshot(server: &Server) -> Vec<String> {
    let client = server.client();
    vec![
        client.call("GetPipeline", json!({"name": "kept"})).text(),
        client.call("ListPipelines", json!({})).text(),
        client
            .raw_for(
                "codebuild",
                Some("CodeBuild_20161006.BatchGetProjects"),
                br#"{"names":["kept"]}"#,
            )
            .text(),
        strip_request_ids(
            &client
                .query("iam", "Action=GetRole&Version=2010-05-08&RoleName=kept")
                .text(),
        ),
        strip_request_ids(&client.http("GET", "/kept-bucket", "localhost", b"").text()),
    ]
}

fn strip_request_ids(xml: &str) -> String {
    let mut out = xml.to_string();
    while let Some(start) = out.find("<RequestId>") {
        let end = out[start..]
            .find("</RequestId>")
            .map_or(out.len(), |e| start + e + 12);
        out.replace_range(start..end, "");
    }
    out
}

#[test]
fn malformed_requests_get_aws_errors_and_change_nothing() {
    let server = Server::start();
    let client = server.client();
    // Something of each kind, which no bad request may change.
    assert_eq!(
        client.http("PUT", "/kept-bucket", "localhost", b"").status,
        200
    );
    let created = client.call(
        "CreatePipeline",
        json!({"pipeline": tutorial_declaration("kept")}),
    );
    assert_eq!(created.status, 200, "{}", created.text());
    let project = client.raw_for(
        "codebuild",
        Some("CodeBuild_20161006.CreateProject"),
        br#"{"name":"kept","source":{"type":"NO_SOURCE","buildspec":"version: 0.2"},"artifacts":{"type":"NO_ARTIFACTS"},"environment":{"type":"LINUX_CONTAINER","image":"i","computeType":"BUILD_GENERAL1_SMALL"},"serviceRole":"arn:aws:iam::000000000000:role/r"}"#,
    );
    assert_eq!(project.status, 200, "{}", project.text());
    let role = client.query(
        "iam",
        "Action=CreateRole&Version=2010-05-08&RoleName=kept&AssumeRolePolicyDocument=%7B%22Statement%22%3A%5B%5D%7D",
    );
    assert_eq!(role.status, 200, "{}", role.text());
    let before = snapshot(&server);

    let mut sent = 0;
    for (service, model_file, prefix) in [
        (
            "codepipeline",
            "models/codepipeline-2015-07-09.json",
            "CodePipeline_20150709",
        ),
        (
            "codebuild",
            "models/codebuild-2016-10-06.json",
            "CodeBuild_20161006",
        ),
        (
            "codecommit",
            "models/codecommit-2015-04-13.json",
            "CodeCommit_20150413",
        ),
        (
            "codestar-connections",
            "models/codestar-connections-2019-12-01.json",
            "com.amazonaws.codestar.connections.CodeStar_connections_20191201",
        ),
        (
            "codeconnections",
            "models/codeconnections-2023-12-01.json",
            "com.amazonaws.codeconnections.CodeConnections_20231201",
        ),
        (
            "monitoring",
            "models/monitoring-2010-08-01.json",
            "GraniteServiceVersion20100801",
        ),
    ] {
        let model: Value =
            serde_json::from_str(&std::fs::read_to_string(repo_file(model_file)).unwrap()).unwrap();
        for (op, members) in operations(&model) {
            let target = format!("{prefix}.{op}");
            for body in NOT_JSON {
                let r = client
                    .try_raw_for(service, Some(&target), body)
                    .unwrap_or_else(|| panic!("{target} with {body:?}: no answer"));
                check_json(
                    &format!("{target} with {:?}", String::from_utf8_lossy(body)),
                    &r,
                );
                sent += 1;
            }
            for member in &members {
                for value in wrong_values() {
                    let body = json!({ member: value }).to_string();
                    let shown: String = body.chars().take(80).collect();
                    let r = client
                        .try_raw_for(service, Some(&target), body.as_bytes())
                        .unwrap_or_else(|| panic!("{target} with {shown}: no answer"));
                    check_json(&format!("{target} with {shown}"), &r);
                    sent += 1;
                }
            }
        }
    }

    // IAM and STS: unknown actions, missing and malformed parameters, garbage forms.
    let forms = [
        "",
        "Action=",
        "Action=CreateRole",
        "Action=CreateRole&RoleName=%00&AssumeRolePolicyDocument=x",
        "Action=PutRolePolicy&RoleName=kept&PolicyName=p&PolicyDocument=%5B",
        "Action=ListRoles&MaxItems=99999999999999999999",
        "Action=GetRole&RoleName=",
        "Action=AttachRolePolicy&RoleName=kept&PolicyArn=nonsense",
        "%zz=%zz&&&==",
        "Action=DeleteRole&RoleName=kept-not",
        "Action=GetCallerIdentity&Extra=%FF%FE",
    ];
    for service in ["iam", "sts"] {
        for form in forms {
            let r = client.query(service, form);
            assert!(
                r.status < 500,
                "{service} {form}: {} {}",
                r.status,
                r.text()
            );
            if r.status >= 400 {
                let text = r.text();
                assert!(
                    text.contains("<ErrorResponse") && text.contains("<Code>"),
                    "{service} {form}: {text}"
                );
            }
            sent += 1;
        }
    }

    // S3: malformed XML, bad ranges and headers, odd methods.
    let s3_requests: [(&str, &str, &[u8]); 8] = [
        (
            "PUT",
            "/new-bucket",
            b"<CreateBucketConfiguration><LocationConstraint>",
        ),
        (
            "POST",
            "/kept-bucket?delete",
            b"<Delete><Object><Key>a</Key></Object",
        ),
        ("POST", "/kept-bucket?delete", b"not xml at all"),
        (
            "PUT",
            "/kept-bucket?versioning",
            b"<VersioningConfiguration><Status>Maybe</Status></VersioningConfiguration>",
        ),
        ("GET", "/kept-bucket?list-type=2&max-keys=abc", b""),
        (
            "GET",
            "/kept-bucket?list-type=2&continuation-token=%%%",
            b"",
        ),
        ("PATCH", "/kept-bucket", b""),
        ("GET", "/kept-bucket?versionId=%00", b""),
    ];
    for (method, path, body) in s3_requests {
        let r = client.http(method, path, "localhost", body);
        let not_served = r.status == 501 && r.xml_code() == "NotImplemented";
        assert!(
            r.status < 500 || not_served,
            "{method} {path}: {} {}",
            r.status,
            r.text()
        );
        if r.status >= 400 {
            assert!(r.text().contains("<Code>"), "{method} {path}: {}", r.text());
        }
        sent += 1;
    }

    assert!(sent > 2000, "only {sent} requests were sent");
    assert_eq!(
        snapshot(&server),
        before,
        "a refused request changed what is stored"
    );
}

/// A model installed with botocore (the AWS CLI's and boto3's), as JSON.
fn botocore_model(service: &str) -> Value {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json,sys,botocore.loaders as l; print(json.dumps(l.Loader().load_service_model(sys.argv[1], 'service-2')))",
            service,
        ])
        .output()
        .expect("python3 runs (botocore comes with the AWS CLI that .ci/run installs)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What an S3 answer must be: no server error but an explicit 501, and an `<Error>` with a code
/// (a HEAD answer has no body).
fn check_s3(what: &str, method: &str, r: &RawResponse) {
    let not_served = r.status == 501 && r.xml_code() == "NotImplemented";
    assert!(
        r.status < 500 || not_served,
        "{what}: {} {}",
        r.status,
        r.text()
    );
    if r.status >= 400 && method != "HEAD" {
        let text = r.text();
        assert!(
            text.contains("<Error>") && !r.xml_code().is_empty(),
            "{what}: {text}"
        );
    }
}

/// Everything a refused request to `bucket` could have changed.
fn bucket_state(server: &Server, bucket: &str) -> Vec<String> {
    let client = server.client();
    [
        format!("/{bucket}?versions"),
        format!("/{bucket}?uploads"),
        format!("/{bucket}?versioning"),
        format!("/{bucket}/tagged?tagging"),
        "/".to_string(),
    ]
    .iter()
    .map(|path| strip_request_ids(&client.http("GET", path, "localhost", b"").text()))
    .collect()
}

/// Generated S3 requests: every method on every kind of path, with every sub-resource, odd
/// headers and broken bodies. Each answer is S3-shaped and no server error; each refused request
/// that could write changes nothing.
#[test]
fn generated_s3_requests_get_s3_errors_and_refusals_change_nothing() {
    let server = Server::start();
    let client = server.client();
    assert_eq!(
        client.http("PUT", "/fuzz-bucket", "localhost", b"").status,
        200
    );
    let versioned = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
    let r = client.http("PUT", "/fuzz-bucket?versioning", "localhost", versioned);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = client.http("PUT", "/fuzz-bucket/tagged", "localhost", b"kept");
    assert_eq!(r.status, 200, "{}", r.text());

    let long_key = format!("/fuzz-bucket/{}", "k".repeat(1100));
    let paths = [
        "/fuzz-bucket",
        "/fuzz-bucket/tagged",
        "/fuzz-bucket/a%00b%FF",
        "/missing-bucket/k",
        long_key.as_str(),
        "/%ZZ",
    ];
    let queries = [
        "",
        "?versioning",
        "?tagging",
        "?uploads",
        "?uploadId=nope",
        "?partNumber=0&uploadId=nope",
        "?partNumber=abc",
        "?delete",
        "?list-type=2&max-keys=-1",
        "?versions&key-marker=%FF%FE",
        "?location",
        "?acl",
        "?versionId=nope",
        "?list-type=2&continuation-token=zz",
        "?uploads&max-uploads=-5&key-marker=%00",
        "?uploadId=nope&part-number-marker=abc",
    ];
    let headers = [
        "",
        "Range: bytes=9-1\r\n",
        "x-amz-copy-source: /nope/x\r\n",
        "x-amz-copy-source: fuzz-bucket/tagged\r\nx-amz-copy-source-range: bytes=x\r\n",
        "x-amz-tagging: a=1&a=2\r\n",
        "Content-MD5: zz\r\n",
        "Content-Encoding: aws-chunked\r\nx-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\n\
         x-amz-decoded-content-length: 99999999999999999999\r\n",
    ];
    let nested = "<a>".repeat(5000);
    let bodies: [&[u8]; 6] = [
        b"",
        b"<",
        b"<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>",
        nested.as_bytes(),
        b"\xff\xfe\x00<Delete>",
        b"zz\r\nabc\r\n0\r\n\r\n",
    ];
    let mut state = bucket_state(&server, "fuzz-bucket");
    let mut sent = 0;
    for method in ["GET", "PUT", "POST", "DELETE", "HEAD"] {
        for path in paths {
            for query in queries {
                for header in headers {
                    let body = if matches!(method, "PUT" | "POST") {
                        bodies[sent % bodies.len()]
                    } else {
                        b""
                    };
                    let head = format!(
                        "{method} {path}{query} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
                         {header}Content-Length: {}\r\n\r\n",
                        body.len()
                    );
                    let r = client.exchange(head.as_bytes(), body);
                    let shown: String = format!("{method} {path}{query} {header:?}")
                        .chars()
                        .take(200)
                        .collect();
                    check_s3(&shown, method, &r);
                    sent += 1;
                    if matches!(method, "GET" | "HEAD") {
                        continue;
                    }
                    let now = bucket_state(&server, "fuzz-bucket");
                    if r.status >= 400 {
                        assert_eq!(
                            now, state,
                            "{shown} was refused ({}) but changed the bucket",
                            r.status
                        );
                    }
                    state = now;
                }
            }
        }
    }
    assert!(sent >= 3000, "only {sent} requests were sent");
    // Its versions keep the bucket from being deleted, so every request above met it.
    let r = client.http("GET", "/fuzz-bucket?versions", "localhost", b"");
    assert_eq!(r.status, 200);
}

/// Generated IAM and STS requests from botocore's models: every role action and every STS action,
/// each member with wrong values (empty, oversized, NUL, not UTF-8, wrong numbers, broken JSON).
/// Each answer is query-XML-shaped and no server error; a refused request changes nothing.
#[test]
fn generated_iam_and_sts_requests_get_xml_errors_and_refusals_change_nothing() {
    let server = Server::start();
    let client = server.client();
    let role = client.query(
        "iam",
        "Action=CreateRole&Version=2010-05-08&RoleName=kept&AssumeRolePolicyDocument=%7B%22Statement%22%3A%5B%5D%7D",
    );
    assert_eq!(role.status, 200, "{}", role.text());
    let iam_state = || -> Vec<String> {
        [
            "Action=ListRoles&Version=2010-05-08",
            "Action=GetRole&Version=2010-05-08&RoleName=kept",
            "Action=ListRolePolicies&Version=2010-05-08&RoleName=kept",
            "Action=ListAttachedRolePolicies&Version=2010-05-08&RoleName=kept",
        ]
        .iter()
        .map(|form| strip_request_ids(&client.query("iam", form).text()))
        .collect()
    };
    let long = "x".repeat(3000);
    let values = [
        "",
        long.as_str(),
        "%00",
        "%FF%FE",
        "-1",
        "abc",
        "%7B",
        "%7B%22Statement%22%3A5%7D",
        "..%2Fx",
    ];
    let mut state = iam_state();
    let mut sent = 0;
    for (service, version, only_roles) in
        [("iam", "2010-05-08", true), ("sts", "2011-06-15", false)]
    {
        let model = botocore_model(service);
        for (op, members) in operations(&model) {
            if only_roles && !op.contains("Role") {
                continue;
            }
            let mut forms = vec![format!("Action={op}&Version={version}")];
            for member in &members {
                for value in values {
                    // The role named, so that a request reaches the member's own check.
                    let role = if member == "RoleName" {
                        ""
                    } else {
                        "&RoleName=kept"
                    };
                    forms.push(format!(
                        "Action={op}&Version={version}{role}&{member}={value}"
                    ));
                }
            }
            for form in forms {
                let r = client.query(service, &form);
                let shown: String = form.chars().take(160).collect();
                let not_served = r.status == 501 && r.xml_code() == "NotImplemented";
                assert!(
                    r.status < 500 || not_served,
                    "{service} {shown}: {} {}",
                    r.status,
                    r.text()
                );
                if r.status >= 400 {
                    let text = r.text();
                    assert!(
                        text.contains("<ErrorResponse") && !r.xml_code().is_empty(),
                        "{service} {shown}: {text}"
                    );
                }
                sent += 1;
                let now = iam_state();
                if r.status >= 400 {
                    assert_eq!(
                        now, state,
                        "{service} {shown} was refused but changed a role"
                    );
                }
                state = now;
            }
        }
    }
    assert!(sent >= 500, "only {sent} requests were sent");
}
