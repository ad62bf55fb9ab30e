//! One port, many services: which service a request is for.
//!
//! As AWS's own endpoints and other emulators do it: the service named in the SigV4 credential
//! scope first, then the `X-Amz-Target` prefix of JSON protocols.

use actix_web::http::header::HeaderMap;

use crate::aws::scope::CredentialScope;

/// The service a request belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// AWS CodePipeline (JSON 1.1); carries the `X-Amz-Target` header.
    CodePipeline {
        /// The `X-Amz-Target` value, e.g. `CodePipeline_20150709.GetPipeline`.
        target: String,
    },
    /// AWS CodeBuild (JSON 1.1); carries the `X-Amz-Target` header.
    CodeBuild {
        /// The `X-Amz-Target` value, e.g. `CodeBuild_20161006.CreateProject`.
        target: String,
    },
    /// Amazon S3 (REST, XML): path-style or virtual-host style.
    S3,
    /// IAM (query protocol).
    Iam,
    /// STS (query protocol).
    Sts,
    /// CloudFormation (query protocol).
    CloudFormation,
    /// AWS Lambda (REST-JSON).
    Lambda,
    /// Amazon CloudWatch (RPC v2 CBOR, JSON 1.0 or query).
    CloudWatch,
    /// AWS CodeCommit (JSON 1.1); carries the `X-Amz-Target` header.
    CodeCommit {
        /// The `X-Amz-Target` value.
        target: String,
    },
    /// Connections (JSON 1.0), under either of their service names; carries `X-Amz-Target`.
    Connections {
        /// Which service name.
        flavour: crate::connections::api::Flavour,
        /// The `X-Amz-Target` value.
        target: String,
    },
    /// SSM Parameter Store (JSON 1.1); carries the `X-Amz-Target` header.
    Ssm {
        /// The `X-Amz-Target` value.
        target: String,
    },
    /// Amazon ECR (JSON 1.1); carries the `X-Amz-Target` header.
    Ecr {
        /// The `X-Amz-Target` value.
        target: String,
    },
    /// Amazon ECS (JSON 1.1); carries the `X-Amz-Target` header.
    Ecs {
        /// The `X-Amz-Target` value.
        target: String,
    },
    /// AWS CodeDeploy (JSON 1.1); carries the `X-Amz-Target` header.
    CodeDeploy {
        /// The `X-Amz-Target` value.
        target: String,
    },
    /// Amazon EventBridge (JSON 1.1); carries the `X-Amz-Target` header.
    Events {
        /// The `X-Amz-Target` value.
        target: String,
    },
    /// A service this endpoint does not serve (yet); carries what named it.
    Unknown(String),
}

/// Decides the service of a request to `path` (without the query).
pub fn route(path: &str, headers: &HeaderMap, scope: Option<&CredentialScope>) -> Service {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let service = scope.map(|s| s.service.as_str()).unwrap_or_default();
    if service == "codepipeline" || (service.is_empty() && target.starts_with("CodePipeline_")) {
        return Service::CodePipeline { target };
    }
    if service == "codebuild" || (service.is_empty() && target.starts_with("CodeBuild_")) {
        return Service::CodeBuild { target };
    }
    if service == "codecommit" || (service.is_empty() && target.starts_with("CodeCommit_")) {
        return Service::CodeCommit { target };
    }
    if crate::ssm::api::is_ssm(service, &target) {
        return Service::Ssm { target };
    }
    if crate::ecr::api::is_ecr(service, &target) {
        return Service::Ecr { target };
    }
    if crate::ecs::api::is_ecs(service, &target) {
        return Service::Ecs { target };
    }
    if crate::codedeploy::api::is_codedeploy(service, &target) {
        return Service::CodeDeploy { target };
    }
    if crate::events::api::is_events(service, &target) {
        return Service::Events { target };
    }
    if let Some(flavour) = crate::connections::api::Flavour::of(service, &target) {
        return Service::Connections { flavour, target };
    }
    match service {
        "s3" => return Service::S3,
        "iam" => return Service::Iam,
        "sts" => return Service::Sts,
        "cloudformation" => return Service::CloudFormation,
        "lambda" => return Service::Lambda,
        "monitoring" => return Service::CloudWatch,
        _ => {}
    }
    let cloudwatch = crate::cloudwatch::api::SERVICE_NAME;
    if service.is_empty()
        && (target.starts_with(&format!("{cloudwatch}."))
            || path.starts_with(&format!("/service/{cloudwatch}/")))
    {
        return Service::CloudWatch;
    }
    if service.is_empty() && target.is_empty() && path.starts_with("/2015-03-31/functions") {
        // An unsigned Lambda request (curl): no bucket is named `2015-03-31`.
        return Service::Lambda;
    }
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if service.is_empty() && form && target.is_empty() && path == "/" {
        // An unsigned query-protocol request (POST / with a form); its Action decides between IAM
        // and STS. A form body sent to a bucket or key is an S3 upload.
        return Service::Iam;
    }
    if !service.is_empty() {
        return Service::Unknown(service.to_string());
    }
    match target.split_once('.') {
        Some((prefix, _)) => Service::Unknown(prefix.to_string()),
        // Unsigned requests without a JSON target (curl, presigned URLs) are S3's.
        None => Service::S3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn scope(service: &str) -> CredentialScope {
        CredentialScope {
            access_key: "test".into(),
            region: "eu-central-1".into(),
            service: service.into(),
        }
    }

    #[test]
    fn the_scope_names_the_service() {
        let h = headers(&[("x-amz-target", "CodePipeline_20150709.ListPipelines")]);
        assert_eq!(
            route("/", &h, Some(&scope("codepipeline"))),
            Service::CodePipeline {
                target: "CodePipeline_20150709.ListPipelines".into()
            }
        );
        assert_eq!(
            route("/", &h, Some(&scope("sqs"))),
            Service::Unknown("sqs".into())
        );
    }

    #[test]
    fn codebuild_is_named_by_the_scope_or_its_target() {
        let h = headers(&[("x-amz-target", "CodeBuild_20161006.ListProjects")]);
        let expected = Service::CodeBuild {
            target: "CodeBuild_20161006.ListProjects".into(),
        };
        assert_eq!(route("/", &h, Some(&scope("codebuild"))), expected);
        assert_eq!(route("/", &h, None), expected);
    }

    #[test]
    fn unsigned_requests_are_routed_by_target() {
        let h = headers(&[("x-amz-target", "CodePipeline_20150709.GetPipeline")]);
        assert!(matches!(route("/", &h, None), Service::CodePipeline { .. }));
        let h = headers(&[("x-amz-target", "DynamoDB_20120810.ListTables")]);
        assert_eq!(
            route("/", &h, None),
            Service::Unknown("DynamoDB_20120810".into())
        );
    }

    #[test]
    fn s3_is_named_by_the_scope_or_is_what_is_left() {
        assert_eq!(
            route("/", &HeaderMap::new(), Some(&scope("s3"))),
            Service::S3
        );
        assert_eq!(route("/", &HeaderMap::new(), None), Service::S3);
    }

    #[test]
    fn query_protocol_services_are_named_by_the_scope() {
        assert_eq!(
            route("/", &HeaderMap::new(), Some(&scope("iam"))),
            Service::Iam
        );
        assert_eq!(
            route("/", &HeaderMap::new(), Some(&scope("sts"))),
            Service::Sts
        );
        let form = headers(&[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )]);
        assert_eq!(route("/", &form, None), Service::Iam);
        assert_eq!(route("/bucket/key", &form, None), Service::S3);
    }
}
