//! The catalogue of AWS-owned action types: which providers AWS has in each category, and how
//! many input and output artifacts each takes. The action registry (`actions`) is built from it
//! and says which of them run here.

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
}

macro_rules! spec {
    ($cat:literal, $owner:literal, $prov:literal, $inputs:expr, $outputs:expr, $props:expr) => {
        ActionTypeSpec {
            category: $cat,
            owner: $owner,
            provider: $prov,
            inputs: $inputs,
            outputs: $outputs,
            properties: $props,
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
        ]
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
        ]
    ),
    spec!(
        "Source",
        "AWS",
        "ECR",
        (0, 0),
        (1, 1),
        &[("RepositoryName", true), ("ImageTag", false)]
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
        ]
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
        ]
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
        ]
    ),
    spec!(
        "Build",
        "AWS",
        "ECRBuildAndPublish",
        (1, 1),
        (0, 0),
        &[("ECRRepositoryName", true)]
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
        ]
    ),
    spec!("Test", "AWS", "DeviceFarm", (1, 1), (0, 0), &[]),
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
        ]
    ),
    spec!(
        "Deploy",
        "AWS",
        "CloudFormation",
        (0, 10),
        (0, 1),
        &[
            ("ActionMode", true),
            ("StackName", true),
            ("Capabilities", false),
            ("ChangeSetName", false),
            ("OutputFileName", false),
            ("ParameterOverrides", false),
            ("RoleArn", false),
            ("TemplateConfiguration", false),
            ("TemplatePath", false),
        ]
    ),
    spec!(
        "Deploy",
        "AWS",
        "CloudFormationStackSet",
        (1, 10),
        (0, 0),
        &[]
    ),
    spec!(
        "Deploy",
        "AWS",
        "CloudFormationStackInstances",
        (0, 10),
        (0, 0),
        &[]
    ),
    spec!(
        "Deploy",
        "AWS",
        "CodeDeploy",
        (1, 1),
        (0, 0),
        &[("ApplicationName", true), ("DeploymentGroupName", true)]
    ),
    spec!(
        "Deploy",
        "AWS",
        "CodeDeployToECS",
        (1, 5),
        (0, 0),
        &[
            ("ApplicationName", true),
            ("DeploymentGroupName", true),
            ("TaskDefinitionTemplateArtifact", true),
            ("TaskDefinitionTemplatePath", false),
            ("AppSpecTemplateArtifact", true),
            ("AppSpecTemplatePath", false),
            ("Image1ArtifactName", false),
            ("Image1ContainerName", false),
            ("Image2ArtifactName", false),
            ("Image2ContainerName", false),
            ("Image3ArtifactName", false),
            ("Image3ContainerName", false),
            ("Image4ArtifactName", false),
            ("Image4ContainerName", false)
        ]
    ),
    spec!(
        "Deploy",
        "AWS",
        "ECS",
        (1, 1),
        (0, 0),
        &[
            ("ClusterName", true),
            ("ServiceName", true),
            ("FileName", false),
            ("DeploymentTimeout", false)
        ]
    ),
    spec!(
        "Deploy",
        "AWS",
        "ElasticBeanstalk",
        (1, 1),
        (0, 0),
        &[("ApplicationName", true), ("EnvironmentName", true)]
    ),
    spec!("Deploy", "AWS", "OpsWorks", (1, 1), (0, 0), &[]),
    spec!("Deploy", "AWS", "ServiceCatalog", (1, 1), (0, 0), &[]),
    spec!("Deploy", "AWS", "AppConfig", (1, 1), (0, 0), &[]),
    spec!("Deploy", "AWS", "AlexaSkillsKit", (1, 2), (0, 0), &[]),
    spec!("Deploy", "AWS", "EC2", (1, 1), (0, 0), &[]),
    spec!("Deploy", "AWS", "EKS", (1, 1), (0, 0), &[]),
    spec!(
        "Invoke",
        "AWS",
        "Lambda",
        (0, 5),
        (0, 5),
        &[("FunctionName", true), ("UserParameters", false)]
    ),
    spec!(
        "Invoke",
        "AWS",
        "StepFunctions",
        (0, 1),
        (0, 1),
        &[("StateMachineArn", true)]
    ),
    spec!("Invoke", "AWS", "InspectorScan", (0, 1), (0, 1), &[]),
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
        ]
    ),
    spec!("Compute", "AWS", "Commands", (1, 10), (0, 1), &[]),
];

impl ActionTypeSpec {
    /// Whether this is the type `category`/`owner`/`provider`.
    pub fn is(&self, category: &str, owner: &str, provider: &str) -> bool {
        self.category == category && self.owner == owner && self.provider == provider
    }

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
