//! The projections of the log, together: what start-up folds, what a checkpoint holds.

use std::path::Path;
use std::sync::Arc;

use crate::checkpoint::Projection;
use crate::codebuild::CodeBuild;
use crate::codepipeline::custom_types::CustomActionTypes;
use crate::codepipeline::views::executions::{ExecutionViews, Role};
use crate::codepipeline::views::PipelineViews;
use crate::eventstore::EventStore;
use crate::iam::Iam;
use crate::s3::store::LocalStore;

/// Every projection of the log.
pub struct Projections {
    /// Pipelines.
    pub pipelines: Arc<PipelineViews>,
    /// Executions.
    pub executions: Arc<ExecutionViews>,
    /// Buckets, objects and versions.
    pub s3: Arc<LocalStore>,
    /// Roles.
    pub iam: Arc<Iam>,
    /// Projects and builds.
    pub codebuild: Arc<CodeBuild>,
    /// Custom action types.
    pub custom_types: Arc<CustomActionTypes>,
    /// Lambda functions.
    pub lambda: Arc<crate::lambda::Lambda>,
    /// CloudWatch alarms.
    pub alarms: Arc<crate::cloudwatch::Alarms>,
    /// Connections.
    pub connections: Arc<crate::connections::Connections>,
    /// What the source watch saw last.
    pub source_seen: Arc<crate::source_watch::Seen>,
    /// Webhooks.
    pub webhooks: Arc<crate::codepipeline::webhooks::Webhooks>,
    /// CodeCommit repositories.
    pub codecommit: Arc<crate::codecommit::CodeCommit>,
    /// Pull requests on the local repositories.
    pub pull_requests: Arc<crate::connections::pull_requests::PullRequests>,
    /// EventBridge rules.
    pub events: Arc<crate::events::Events>,
    /// SSM parameters.
    pub ssm: Arc<crate::ssm::ParameterStore>,
    /// CloudFormation stacks.
    pub cloudformation: Arc<crate::cloudformation::CloudFormation>,
    /// ECR repositories and images.
    pub ecr: Arc<crate::ecr::Ecr>,
    /// ECS clusters, task definitions and services.
    pub ecs: Arc<crate::ecs::Ecs>,
    /// CodeDeploy applications, deployment groups and deployments.
    pub codedeploy: Arc<crate::codedeploy::CodeDeploy>,
}

impl Projections {
    /// Empty projections of `store` that only hold state (they touch no file but the log's
    /// shelves, and run nothing): what checkpoints (`role` [`Role::Checkpoint`]) and offline
    /// history reads ([`Role::Live`]) fold into.
    pub fn detached(store: &Arc<dyn EventStore>, data_dir: &Path, role: Role) -> Self {
        Projections {
            pipelines: Arc::new(PipelineViews::new()),
            executions: Arc::new(ExecutionViews::with_role(store.clone(), role)),
            s3: Arc::new(LocalStore::state_only(
                &data_dir.join("s3"),
                store.clone(),
                role,
            )),
            iam: Arc::new(Iam::new(store.clone())),
            codebuild: Arc::new(CodeBuild::new(
                store.clone(),
                data_dir.join("codebuild"),
                false,
                0,
            )),
            custom_types: Arc::new(CustomActionTypes::new(store.clone())),
            lambda: Arc::new(crate::lambda::Lambda::new(
                store.clone(),
                data_dir.join("lambda"),
                false,
                Default::default(),
                std::time::Duration::from_secs(1),
            )),
            alarms: Arc::new(crate::cloudwatch::Alarms::new(store.clone())),
            connections: Arc::new(crate::connections::Connections::new(store.clone())),
            source_seen: Arc::new(crate::source_watch::seen(store.clone())),
            webhooks: Arc::new(crate::codepipeline::webhooks::webhooks(store.clone())),
            codecommit: Arc::new(crate::codecommit::CodeCommit::new(
                store.clone(),
                data_dir.join("codecommit"),
                Default::default(),
            )),
            pull_requests: Arc::new(crate::connections::pull_requests::PullRequests::new(
                store.clone(),
            )),
            events: Arc::new(crate::events::Events::new(store.clone())),
            ssm: Arc::new(crate::ssm::ParameterStore::new(store.clone())),
            cloudformation: Arc::new(crate::cloudformation::CloudFormation::new(store.clone())),
            ecr: Arc::new(crate::ecr::Ecr::new(store.clone())),
            ecs: Arc::new(crate::ecs::Ecs::new(store.clone())),
            codedeploy: Arc::new(crate::codedeploy::CodeDeploy::new(
                store.clone(),
                Arc::new(crate::ecs::Ecs::new(store.clone())),
            )),
        }
    }

    /// All of them, as a checkpoint takes them.
    pub fn all(&self) -> [&dyn Projection; 19] {
        [
            self.pipelines.as_ref(),
            self.executions.as_ref(),
            self.s3.as_ref(),
            self.iam.as_ref(),
            self.codebuild.as_ref(),
            self.custom_types.as_ref(),
            self.lambda.as_ref(),
            self.alarms.as_ref(),
            self.connections.as_ref(),
            self.source_seen.as_ref(),
            self.webhooks.as_ref(),
            self.codecommit.as_ref(),
            self.pull_requests.as_ref(),
            self.events.as_ref(),
            self.ssm.as_ref(),
            self.cloudformation.as_ref(),
            self.ecr.as_ref(),
            self.ecs.as_ref(),
            self.codedeploy.as_ref(),
        ]
    }

    /// All of them, owned, as the background checkpoint folds into them.
    pub fn into_boxes(self) -> Vec<Box<dyn Projection>> {
        vec![
            Box::new(self.pipelines),
            Box::new(self.executions),
            Box::new(self.s3),
            Box::new(self.iam),
            Box::new(self.codebuild),
            Box::new(self.custom_types),
            Box::new(self.lambda),
            Box::new(self.alarms),
            Box::new(self.connections),
            Box::new(self.source_seen),
            Box::new(self.webhooks),
            Box::new(self.codecommit),
            Box::new(self.pull_requests),
            Box::new(self.events),
            Box::new(self.ssm),
            Box::new(self.cloudformation),
            Box::new(self.ecr),
            Box::new(self.ecs),
            Box::new(self.codedeploy),
        ]
    }
}
