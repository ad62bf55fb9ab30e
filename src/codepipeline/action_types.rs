//! The catalogue of AWS-owned action types: which providers AWS has in each category, how many
//! input and output artifacts each takes, and which ones this emulator runs.
//!
//! Declarations are checked against it (a provider AWS does not have is refused, artifact counts
//! must fit) and ListActionTypes answers from it.

use serde_json::{json, Value};

/// One action type: its identity, artifact limits, configuration properties and whether we run it.
#[derive(Debug, Clone, Copy)]
pub struct ActionTypeSpec {
    /// `Source`, `Build`, `Test`, `Deploy`, `Invoke`, `Approval` or `Compute`.
    pub category: &'static str,
    /// `AWS` or `ThirdParty`.
    pub owner: &'static str,
    /// The provider name, e.g. `S3`.
    pub provider: &'static str,
    /// Input artifacts: at least, at most.
    pub inputs: (usize, usize),
    /// Output artifacts: at least, at most.
    pub outputs: (usize, usize),
    /// Configuration properties: name and whether it is required.
    pub properties: &'static [(&'static str, bool)],
    /// Whether codepipeline-local runs actions of this type.
    pub supported: bool,
}

macro_rules! spec {
    ($cat:literal, $owner:literal, $prov:literal, $inputs:expr, $outputs:expr, $props:expr, $sup:literal) => {
        ActionTypeSpec {
            category: $cat,
            owner: $owner,
            provider: $prov,
            inputs: $inputs,
            outputs: $outputs,
            properties: $props,
            supported: $sup,
        }
    };
}

/// Every AWS-owned action type AWS CodePipeline offers, with AWS's artifact limits.
pub const CATALOG: &[ActionTypeSpec] = &[
    spec!(
        "Source",
        "AWS",
        "S3",
        (0, 0),
        (1, 1),
        &[
            ("S3Bucket", true),
            ("S3ObjectKey", true),
            ("PollForSourceChanges", false),
            ("AllowOverrideForS3ObjectKey", false)
        ],
        true
    ),
    spec!(
        "Source",
        "AWS",
        "CodeCommit",
        (0, 0),
        (1, 1),
        &[
            ("RepositoryName", true),
            ("BranchName", true),
            ("PollForSourceChanges", false),
            ("OutputArtifactFormat", false)
        ],
        false
    ),
    spec!(
        "Source",
        "AWS",
        "ECR",
        (0, 0),
        (1, 1),
        &[("RepositoryName", true), ("ImageTag", false)],
        false
    ),
    spec!(
        "Source",
        "AWS",
        "CodeStarSourceConnection",
        (0, 0),
        (1, 1),
        &[
            ("ConnectionArn", true),
            ("FullRepositoryId", true),
            ("BranchName", true),
            ("OutputArtifactFormat", false),
            ("DetectChanges", false)
        ],
        false
    ),
    spec!(
        "Source",
        "ThirdParty",
        "GitHub",
        (0, 0),
        (1, 1),
        &[
            ("Owner", true),
            ("Repo", true),
            ("Branch", true),
            ("OAuthToken", true),
            ("PollForSourceChanges", false)
        ],
        false
    ),
    spec!(
        "Build",
        "AWS",
        "CodeBuild",
        (1, 5),
        (0, 5),
        &[
            ("ProjectName", true),
            ("PrimarySource", false),
            ("BatchEnabled", false),
            ("CombineArtifacts", false),
            ("EnvironmentVariables", false)
        ],
        true
    ),
    spec!(
        "Build",
        "AWS",
        "ECRBuildAndPublish",
        (1, 1),
        (0, 0),
        &[("ECRRepositoryName", true)],
        false
    ),
    spec!(
        "Test",
        "AWS",
        "CodeBuild",
        (1, 5),
        (0, 5),
        &[
            ("ProjectName", true),
            ("PrimarySource", false),
            ("BatchEnabled", false),
            ("CombineArtifacts", false),
            ("EnvironmentVariables", false)
        ],
        true
    ),
    spec!("Test", "AWS", "DeviceFarm", (1, 1), (0, 0), &[], false),
    spec!(
        "Deploy",
        "AWS",
        "S3",
        (1, 1),
        (0, 0),
        &[
            ("BucketName", true),
            ("Extract", true),
            ("ObjectKey", false),
            ("KMSEncryptionKeyARN", false),
            ("CannedACL", false),
            ("CacheControl", false)
        ],
        true
    ),
    spec!(
        "Deploy",
        "AWS",
        "CloudFormation",
        (0, 10),
        (0, 1),
        &[("ActionMode", true)],
        false
    ),
    spec!(
        "Deploy",
        "AWS",
        "CloudFormationStackSet",
        (1, 10),
        (0, 0),
        &[],
        false
    ),
    spec!(
        "Deploy",
        "AWS",
        "CloudFormationStackInstances",
        (0, 10),
        (0, 0),
        &[],
        false
    ),
    spec!(
        "Deploy",
        "AWS",
        "CodeDeploy",
        (1, 1),
        (0, 0),
        &[("ApplicationName", true), ("DeploymentGroupName", true)],
        false
    ),
    spec!(
        "Deploy",
        "AWS",
        "CodeDeployToECS",
        (1, 5),
        (0, 0),
        &[],
        false
    ),
    spec!(
        "Deploy",
        "AWS",
        "ECS",
        (1, 1),
        (0, 0),
        &[("ClusterName", true), ("ServiceName", true)],
        false
    ),
    spec!(
        "Deploy",
        "AWS",
        "ElasticBeanstalk",
        (1, 1),
        (0, 0),
        &[("ApplicationName", true), ("EnvironmentName", true)],
        false
    ),
    spec!("Deploy", "AWS", "OpsWorks", (1, 1), (0, 0), &[], false),
    spec!(
        "Deploy",
        "AWS",
        "ServiceCatalog",
        (1, 1),
        (0, 0),
        &[],
        false
    ),
    spec!("Deploy", "AWS", "AppConfig", (1, 1), (0, 0), &[], false),
    spec!(
        "Deploy",
        "AWS",
        "AlexaSkillsKit",
        (1, 2),
        (0, 0),
        &[],
        false
    ),
    spec!("Deploy", "AWS", "EC2", (1, 1), (0, 0), &[], false),
    spec!("Deploy", "AWS", "EKS", (1, 1), (0, 0), &[], false),
    spec!(
        "Invoke",
        "AWS",
        "Lambda",
        (0, 5),
        (0, 5),
        &[("FunctionName", true), ("UserParameters", false)],
        false
    ),
    spec!(
        "Invoke",
        "AWS",
        "StepFunctions",
        (0, 1),
        (0, 1),
        &[("StateMachineArn", true)],
        false
    ),
    spec!("Invoke", "AWS", "InspectorScan", (0, 1), (0, 1), &[], false),
    spec!(
        "Approval",
        "AWS",
        "Manual",
        (0, 0),
        (0, 0),
        &[
            ("NotificationArn", false),
            ("CustomData", false),
            ("ExternalEntityLink", false)
        ],
        true
    ),
    spec!("Compute", "AWS", "Commands", (1, 10), (0, 1), &[], false),
];

/// The catalogue entry for an action type id, if AWS has it. Custom actions are not listed here.
pub fn find(category: &str, owner: &str, provider: &str) -> Option<&'static ActionTypeSpec> {
    CATALOG
        .iter()
        .find(|s| s.category == category && s.owner == owner && s.provider == provider)
}

impl ActionTypeSpec {
    /// The `ActionType` wire shape ListActionTypes answers with.
    pub fn to_wire(&self) -> Value {
        let props: Vec<Value> = self
            .properties
            .iter()
            .map(|(name, required)| {
                json!({"name": name, "required": required, "key": *required, "secret": *name == "OAuthToken",
                       "queryable": false, "type": if *name == "Extract" || *name == "BatchEnabled" || *name == "PollForSourceChanges" { "Boolean" } else { "String" }})
            })
            .collect();
        json!({
            "id": {"category": self.category, "owner": self.owner, "provider": self.provider, "version": "1"},
            "settings": {},
            "actionConfigurationProperties": props,
            "inputArtifactDetails": {"minimumCount": self.inputs.0, "maximumCount": self.inputs.1},
            "outputArtifactDetails": {"minimumCount": self.outputs.0, "maximumCount": self.outputs.1},
        })
    }
}
