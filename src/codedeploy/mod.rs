//! AWS CodeDeploy, the part ECS blue/green deployments need: applications (ECS platform),
//! deployment groups naming an ECS service, and deployments of an AppSpec, event-sourced in one
//! stream per account and region (`codedeploy:<account>:<region>`).
//!
//! A deployment runs as CodeDeploy runs an ECS one, without traffic to shift: `Created`, then
//! `InProgress` while the deployment group's service is updated to the AppSpec's
//! `TaskDefinition` and reaches steady state, then `Succeeded` (or `Failed`, with its
//! `errorInformation`). A deployment a stop of the server cut goes on when it starts again.
//!
//! # LIMITATIONS
//! - Served: CreateApplication, GetApplication, DeleteApplication, CreateDeploymentGroup,
//!   GetDeploymentGroup, DeleteDeploymentGroup, CreateDeployment, GetDeployment, ListDeployments, StopDeployment; other operations answer a
//!   clear error naming them. Only the ECS compute platform, and AppSpec revisions given inline
//!   (`AppSpecContent`).
//! - There is no load balancer: the replacement task set is not shifted traffic to; the service
//!   is updated to the new task definition (blue/green's outcome), and lifecycle hooks are not
//!   invoked. A region keeps its newest [`MAX_DEPLOYMENTS`] deployments.

pub mod api;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::ecs::Ecs;
use crate::eventstore::{EventStore, EventType};
use crate::regional::Regional;

/// The prefix of CodeDeploy streams.
pub const STREAM_PREFIX: &str = "codedeploy:";

/// How many deployments a region keeps (the newest).
pub const MAX_DEPLOYMENTS: usize = 1000;

/// How long a deployment waits for its service's steady state.
const STEADY_WITHIN: Duration = Duration::from_secs(600);

/// An application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Application {
    /// Its id.
    pub id: String,
    /// `ECS` (or what was given).
    pub platform: String,
    /// When it was made.
    pub created: f64,
}

/// A deployment group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Its id.
    pub id: String,
    /// CreateDeploymentGroup's input, as given.
    pub body: Value,
}

/// A deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// `d-…`.
    pub id: String,
    /// Its application.
    pub application: String,
    /// Its deployment group.
    pub group: String,
    /// Its revision (`RevisionLocation`).
    pub revision: Value,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
    /// `Created`, `InProgress`, `Succeeded`, `Failed`, `Stopped`.
    pub status: String,
    /// Why it failed: (code, message).
    #[serde(default)]
    pub error: Option<(String, String)>,
    /// When it was made.
    pub created: f64,
    /// When it began.
    #[serde(default)]
    pub started: Option<f64>,
    /// When it ended.
    #[serde(default)]
    pub completed: Option<f64>,
}

/// A region's applications, deployment groups and deployments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Region {
    /// Applications, by name.
    pub applications: BTreeMap<String, Application>,
    /// Deployment groups, by application, then name.
    pub groups: BTreeMap<String, BTreeMap<String, Group>>,
    /// Deployments, by id.
    pub deployments: BTreeMap<String, Deployment>,
}

/// What can happen in a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CodeDeployEvent {
    /// CreateApplication.
    ApplicationCreated {
        /// Its name.
        name: String,
        /// It.
        application: Application,
    },
    /// CreateDeploymentGroup.
    GroupCreated {
        /// Its application.
        application: String,
        /// Its name.
        name: String,
        /// It.
        group: Group,
    },
    /// DeleteApplication (its deployment groups go with it).
    ApplicationDeleted {
        /// Its name.
        name: String,
    },
    /// DeleteDeploymentGroup.
    GroupDeleted {
        /// Its application.
        application: String,
        /// Its name.
        name: String,
    },
    /// CreateDeployment.
    DeploymentCreated(Box<Deployment>),
    /// A deployment's status changed.
    DeploymentStatus {
        /// The deployment.
        id: String,
        /// Its status.
        status: String,
        /// Why it failed.
        error: Option<(String, String)>,
        /// When.
        at: f64,
    },
}

impl EventType for CodeDeployEvent {
    fn type_name(&self) -> &'static str {
        "CodeDeployEvent"
    }

    fn owns(type_name: &str) -> bool {
        type_name == "CodeDeployEvent"
    }

    fn decode(_: &str, data: &Value) -> Result<Self, serde_json::Error> {
        CodeDeployEvent::deserialize(data)
    }
}

fn fold(region: &mut Region, event: CodeDeployEvent) {
    match event {
        CodeDeployEvent::ApplicationCreated { name, application } => {
            region.applications.insert(name, application);
        }
        CodeDeployEvent::GroupCreated {
            application,
            name,
            group,
        } => {
            region
                .groups
                .entry(application)
                .or_default()
                .insert(name, group);
        }
        CodeDeployEvent::ApplicationDeleted { name } => {
            region.applications.remove(&name);
            region.groups.remove(&name);
        }
        CodeDeployEvent::GroupDeleted { application, name } => {
            if let Some(groups) = region.groups.get_mut(&application) {
                groups.remove(&name);
            }
        }
        CodeDeployEvent::DeploymentCreated(d) => {
            region.deployments.insert(d.id.clone(), *d);
            while region.deployments.len() > MAX_DEPLOYMENTS {
                let oldest = region
                    .deployments
                    .values()
                    .min_by(|a, b| a.created.total_cmp(&b.created))
                    .map(|d| d.id.clone());
                match oldest {
                    Some(id) => region.deployments.remove(&id),
                    None => break,
                };
            }
        }
        CodeDeployEvent::DeploymentStatus {
            id,
            status,
            error,
            at,
        } => {
            if let Some(d) = region.deployments.get_mut(&id) {
                if status == "InProgress" {
                    d.started = Some(at);
                }
                if matches!(status.as_str(), "Succeeded" | "Failed" | "Stopped") {
                    d.completed = Some(at);
                }
                d.status = status;
                d.error = error;
            }
        }
    }
}

/// CodeDeploy.
pub struct CodeDeploy {
    /// Every account's and region's applications, groups and deployments.
    pub regions: Regional<CodeDeployEvent, Region>,
    ecs: Arc<Ecs>,
}

crate::regional::regional_projection!(CodeDeploy, regions);

/// The `TaskDefinition` an ECS AppSpec (YAML or JSON) names for its target service.
pub fn appspec_task_definition(content: &str) -> Option<String> {
    let spec = crate::cloudformation::yaml::parse(content)
        .ok()
        .or_else(|| serde_json::from_str(content).ok())?;
    spec["Resources"].as_array()?.iter().find_map(|r| {
        let target = r.get("TargetService")?;
        target["Properties"]["TaskDefinition"]
            .as_str()
            .map(str::to_string)
    })
}

impl CodeDeploy {
    /// Nothing yet, from `log`; deployments update services of `ecs`.
    pub fn new(log: Arc<dyn EventStore>, ecs: Arc<Ecs>) -> Self {
        CodeDeploy {
            regions: Regional::new(log, STREAM_PREFIX, "codedeploy", fold),
            ecs,
        }
    }

    async fn status(
        &self,
        account: &str,
        region: &str,
        id: &str,
        status: &str,
        error: Option<(String, String)>,
    ) {
        let change = CodeDeployEvent::DeploymentStatus {
            id: id.to_string(),
            status: status.to_string(),
            error,
            at: crate::aws::now_epoch(),
        };
        if let Err(e) = self
            .regions
            .record(account, region, |_| Ok::<_, ()>(vec![change]))
            .await
        {
            log::warn!("deployment {id} was not recorded {status}: {e:?}");
        }
    }

    /// Runs deployment `id` to its end, in the background.
    pub fn run(self: &Arc<Self>, account: &str, region: &str, id: &str) {
        let (me, account, region, id) = (
            self.clone(),
            account.to_string(),
            region.to_string(),
            id.to_string(),
        );
        actix_rt::spawn(async move {
            let outcome = me.deploy(&account, &region, &id).await;
            let (status, error) = match outcome {
                Ok(()) => ("Succeeded", None),
                Err(message) => ("Failed", Some(("ECS_UPDATE_ERROR".to_string(), message))),
            };
            let still = me.regions.read(&account, &region, |r| {
                r.deployments
                    .get(&id)
                    .is_some_and(|d| d.status == "InProgress")
            });
            if still {
                me.status(&account, &region, &id, status, error).await;
            }
        });
    }

    async fn deploy(&self, account: &str, region: &str, id: &str) -> Result<(), String> {
        let (deployment, group) = self
            .regions
            .read(account, region, |r| {
                let d = r.deployments.get(id)?.clone();
                let g = r.groups.get(&d.application)?.get(&d.group)?.clone();
                Some((d, g))
            })
            .ok_or_else(|| "The deployment or its deployment group is gone".to_string())?;
        if deployment.status == "Created" {
            self.status(account, region, id, "InProgress", None).await;
        }
        let content = deployment.revision["appSpecContent"]["content"]
            .as_str()
            .or_else(|| deployment.revision["string"]["content"].as_str())
            .unwrap_or_default();
        let task_definition = appspec_task_definition(content)
            .ok_or("The AppSpec names no TargetService with a TaskDefinition")?;
        let target = &group.body["ecsServices"][0];
        let (cluster, service) = (
            target["clusterName"].as_str().unwrap_or("default"),
            target["serviceName"].as_str().unwrap_or_default(),
        );
        let mut ctx = crate::aws::RequestContext::new(None, region);
        ctx.account_id = account.to_string();
        let updated = crate::ecs::api::call(
            &self.ecs,
            &ctx,
            "UpdateService",
            &json!({"cluster": cluster, "service": service, "taskDefinition": task_definition}),
        )
        .await
        .map_err(|e| format!("{}: {}", e.code, e.message))?;
        let wanted = updated["service"]["deployments"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let deadline = tokio::time::Instant::now() + STEADY_WITHIN;
        loop {
            let s = self
                .ecs
                .service(
                    account,
                    region,
                    crate::ecs::plain(cluster),
                    crate::ecs::plain(service),
                )
                .ok_or_else(|| format!("The ECS service {service} is gone"))?;
            let primary = s.deployments.first();
            if primary.is_some_and(|d| d.id == wanted && d.rollout == "COMPLETED") {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "The ECS service {service} did not reach a steady state"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Takes up the deployments a stop of the server left unfinished.
    pub fn recover(self: &Arc<Self>) {
        for (account, region) in self.regions.keys() {
            let open: Vec<String> = self.regions.read(&account, &region, |r| {
                r.deployments
                    .values()
                    .filter(|d| d.status == "Created" || d.status == "InProgress")
                    .map(|d| d.id.clone())
                    .collect()
            });
            for id in open {
                self.run(&account, &region, &id);
            }
        }
    }
}

/// ECS and CodeDeploy, as the ECS deploy actions call them.
pub struct PipelineContainers {
    /// ECS.
    pub ecs: Arc<Ecs>,
    /// CodeDeploy.
    pub codedeploy: Arc<CodeDeploy>,
}

impl crate::codepipeline::actions::Containers for PipelineContainers {
    fn call<'a>(
        &'a self,
        account: &'a str,
        region: &'a str,
        service: &'a str,
        operation: &'a str,
        input: Value,
    ) -> futures_util::future::BoxFuture<'a, Result<Value, String>> {
        Box::pin(async move {
            let mut ctx = crate::aws::RequestContext::new(None, region);
            ctx.account_id = account.to_string();
            let answer = match service {
                "codedeploy" => api::call(&self.codedeploy, &ctx, operation, &input).await,
                _ => crate::ecs::api::call(&self.ecs, &ctx, operation, &input).await,
            };
            answer.map_err(|e| format!("{}: {}", e.code, e.message))
        })
    }
}
