//! Amazon ECS's control plane: clusters, task definitions (families of revisions) and services
//! with their deployments and events, event-sourced in one stream per account and region
//! (`ecs:<account>:<region>`). The ECS deploy action drives it.
//!
//! There is no container runtime here: no task runs. A service's new deployment reaches steady
//! state as ECS reports it (the deployment `PRIMARY`, its `rolloutState` `IN_PROGRESS` then
//! `COMPLETED`, its running count its desired count, the older deployments gone, the service's
//! events saying so) [`SETTLE`] after it began.
//!
//! # LIMITATIONS
//! - Served: CreateCluster, DescribeClusters, DeleteCluster, RegisterTaskDefinition,
//!   DescribeTaskDefinition, ListTaskDefinitions, DeregisterTaskDefinition, CreateService,
//!   UpdateService, DescribeServices, ListServices, DeleteService; other operations answer a
//!   clear error naming them.
//! - Tasks are not run (no container runtime): running counts follow desired counts, container
//!   instances, capacity providers, load balancers and service discovery are recorded only.

pub mod api;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::eventstore::{EventStore, EventType};
use crate::regional::Regional;

/// The prefix of ECS streams.
pub const STREAM_PREFIX: &str = "ecs:";

/// How long a deployment takes to reach steady state.
pub const SETTLE: Duration = Duration::from_millis(500);

/// How many events a service keeps (the newest).
pub const MAX_EVENTS: usize = 100;

/// A revision of a task definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDefinition {
    /// Its family.
    pub family: String,
    /// Its revision, from 1.
    pub revision: u64,
    /// What was registered (RegisterTaskDefinition's input, without `tags`).
    pub body: Value,
    /// `ACTIVE` or `INACTIVE`.
    pub status: String,
    /// When it was registered.
    pub registered: f64,
    /// When it was deregistered.
    #[serde(default)]
    pub deregistered: Option<f64>,
}

/// A deployment of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// `ecs-svc/…`.
    pub id: String,
    /// `PRIMARY` or `ACTIVE`.
    pub status: String,
    /// The task definition's ARN.
    pub task_definition: String,
    /// Its desired count.
    pub desired: u64,
    /// Its running count.
    pub running: u64,
    /// `IN_PROGRESS` or `COMPLETED`.
    pub rollout: String,
    /// When it began.
    pub created: f64,
    /// When it last changed.
    pub updated: f64,
}

/// An event of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceEvent {
    /// Its id.
    pub id: String,
    /// When.
    pub at: f64,
    /// What.
    pub message: String,
}

/// A service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Its name.
    pub name: String,
    /// The task definition's ARN.
    pub task_definition: String,
    /// Its desired count.
    pub desired: u64,
    /// `ACTIVE` (a deleted service is gone from its cluster).
    pub status: String,
    /// `ECS` or `CODE_DEPLOY`.
    pub controller: String,
    /// The launch type.
    pub launch_type: String,
    /// When it was made.
    pub created: f64,
    /// Its deployments, the primary first.
    pub deployments: Vec<Deployment>,
    /// Its events, newest first.
    pub events: Vec<ServiceEvent>,
}

/// A cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// Its name.
    pub name: String,
    /// When it was made.
    pub created: f64,
    /// Its tags.
    pub tags: Vec<(String, String)>,
    /// Its services, by name.
    pub services: BTreeMap<String, Service>,
}

/// A region's clusters and task definitions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EcsRegion {
    /// Clusters, by name.
    pub clusters: BTreeMap<String, Cluster>,
    /// Task definitions, by family, oldest revision first.
    pub families: BTreeMap<String, Vec<TaskDefinition>>,
}

impl EcsRegion {
    /// The revision a `family`, `family:revision` or ARN names (a family alone: its newest
    /// active revision).
    pub fn task_definition(&self, name: &str) -> Option<&TaskDefinition> {
        let plain = name
            .rsplit_once(":task-definition/")
            .map_or(name, |(_, rest)| rest);
        match plain.rsplit_once(':') {
            Some((family, revision)) => {
                let revision: u64 = revision.parse().ok()?;
                self.families
                    .get(family)?
                    .iter()
                    .find(|t| t.revision == revision)
            }
            None => self
                .families
                .get(plain)?
                .iter()
                .rev()
                .find(|t| t.status == "ACTIVE"),
        }
    }
}

/// The name a name or ARN names (`…/NAME` for clusters; `…/CLUSTER/NAME` for services).
pub fn plain(name_or_arn: &str) -> &str {
    if name_or_arn.starts_with("arn:") {
        name_or_arn.rsplit('/').next().unwrap_or(name_or_arn)
    } else {
        name_or_arn
    }
}

/// A cluster's ARN.
pub fn cluster_arn(account: &str, region: &str, name: &str) -> String {
    format!("arn:aws:ecs:{region}:{account}:cluster/{name}")
}

/// A task definition's ARN.
pub fn task_definition_arn(account: &str, region: &str, family: &str, revision: u64) -> String {
    format!("arn:aws:ecs:{region}:{account}:task-definition/{family}:{revision}")
}

/// A service's ARN.
pub fn service_arn(account: &str, region: &str, cluster: &str, name: &str) -> String {
    format!("arn:aws:ecs:{region}:{account}:service/{cluster}/{name}")
}

/// What can happen in a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EcsEvent {
    /// CreateCluster.
    ClusterCreated(Box<Cluster>),
    /// DeleteCluster.
    ClusterDeleted {
        /// The cluster.
        cluster: String,
    },
    /// RegisterTaskDefinition.
    Registered(Box<TaskDefinition>),
    /// DeregisterTaskDefinition.
    Deregistered {
        /// The family.
        family: String,
        /// The revision.
        revision: u64,
        /// When.
        at: f64,
    },
    /// CreateService.
    ServiceCreated {
        /// The cluster.
        cluster: String,
        /// The service.
        service: Box<Service>,
    },
    /// UpdateService: its task definition and desired count now, and the deployment it began.
    ServiceUpdated {
        /// The cluster.
        cluster: String,
        /// The service.
        service: String,
        /// The task definition's ARN.
        task_definition: String,
        /// The desired count.
        desired: u64,
        /// The new primary deployment, if one began.
        deployment: Option<Deployment>,
        /// When.
        at: f64,
    },
    /// A deployment reached steady state.
    DeploymentCompleted {
        /// The cluster.
        cluster: String,
        /// The service.
        service: String,
        /// The deployment.
        deployment: String,
        /// When.
        at: f64,
    },
    /// DeleteService.
    ServiceDeleted {
        /// The cluster.
        cluster: String,
        /// The service.
        service: String,
    },
}

impl EventType for EcsEvent {
    fn type_name(&self) -> &'static str {
        "EcsEvent"
    }

    fn owns(type_name: &str) -> bool {
        type_name == "EcsEvent"
    }

    fn decode(_: &str, data: &Value) -> Result<Self, serde_json::Error> {
        EcsEvent::deserialize(data)
    }
}

fn say(service: &mut Service, at: f64, message: String) {
    service.events.insert(
        0,
        ServiceEvent {
            id: uuid::Uuid::new_v4().to_string(),
            at,
            message,
        },
    );
    service.events.truncate(MAX_EVENTS);
}

fn fold(region: &mut EcsRegion, event: EcsEvent) {
    match event {
        EcsEvent::ClusterCreated(cluster) => {
            region.clusters.insert(cluster.name.clone(), *cluster);
        }
        EcsEvent::ClusterDeleted { cluster } => {
            region.clusters.remove(&cluster);
        }
        EcsEvent::Registered(t) => {
            region
                .families
                .entry(t.family.clone())
                .or_default()
                .push(*t);
        }
        EcsEvent::Deregistered {
            family,
            revision,
            at,
        } => {
            if let Some(t) = region
                .families
                .get_mut(&family)
                .and_then(|f| f.iter_mut().find(|t| t.revision == revision))
            {
                t.status = "INACTIVE".into();
                t.deregistered = Some(at);
            }
        }
        EcsEvent::ServiceCreated { cluster, service } => {
            if let Some(c) = region.clusters.get_mut(&cluster) {
                c.services.insert(service.name.clone(), *service);
            }
        }
        EcsEvent::ServiceUpdated {
            cluster,
            service,
            task_definition,
            desired,
            deployment,
            at,
        } => {
            let Some(s) = region
                .clusters
                .get_mut(&cluster)
                .and_then(|c| c.services.get_mut(&service))
            else {
                return;
            };
            s.task_definition = task_definition;
            s.desired = desired;
            match deployment {
                Some(d) => {
                    for old in &mut s.deployments {
                        old.status = "ACTIVE".into();
                        old.updated = at;
                    }
                    s.deployments.insert(0, d);
                }
                None => {
                    if let Some(primary) = s.deployments.first_mut() {
                        primary.desired = desired;
                        primary.running = desired;
                        primary.updated = at;
                    }
                }
            }
        }
        EcsEvent::DeploymentCompleted {
            cluster,
            service,
            deployment,
            at,
        } => {
            let Some(s) = region
                .clusters
                .get_mut(&cluster)
                .and_then(|c| c.services.get_mut(&service))
            else {
                return;
            };
            s.deployments.retain(|d| d.id == deployment);
            if let Some(d) = s.deployments.first_mut() {
                d.rollout = "COMPLETED".into();
                d.running = d.desired;
                d.updated = at;
            }
            let name = s.name.clone();
            say(
                s,
                at,
                format!("(service {name}) (deployment {deployment}) deployment completed."),
            );
            say(
                s,
                at,
                format!("(service {name}) has reached a steady state."),
            );
        }
        EcsEvent::ServiceDeleted { cluster, service } => {
            if let Some(c) = region.clusters.get_mut(&cluster) {
                c.services.remove(&service);
            }
        }
    }
}

/// ECS.
pub struct Ecs {
    /// Every account's and region's clusters and task definitions.
    pub regions: Regional<EcsEvent, EcsRegion>,
}

crate::regional::regional_projection!(Ecs, regions);

impl Ecs {
    /// Nothing yet, from `log`.
    pub fn new(log: Arc<dyn EventStore>) -> Self {
        Ecs {
            regions: Regional::new(log, STREAM_PREFIX, "ecs", fold),
        }
    }

    /// A service of a cluster.
    pub fn service(
        &self,
        account: &str,
        region: &str,
        cluster: &str,
        name: &str,
    ) -> Option<Service> {
        self.regions.read(account, region, |r| {
            r.clusters.get(cluster)?.services.get(name).cloned()
        })
    }

    /// Brings deployment `id` of a service to steady state after [`SETTLE`] (in the
    /// background); nothing when it is no longer the service's primary one in progress.
    pub fn settle(
        self: &Arc<Self>,
        account: &str,
        region: &str,
        cluster: &str,
        service: &str,
        id: &str,
    ) {
        let (me, account, region, cluster, service, id) = (
            self.clone(),
            account.to_string(),
            region.to_string(),
            cluster.to_string(),
            service.to_string(),
            id.to_string(),
        );
        actix_rt::spawn(async move {
            tokio::time::sleep(SETTLE).await;
            let done = me
                .regions
                .record(&account, &region, |r| {
                    let s = r
                        .clusters
                        .get(&cluster)
                        .and_then(|c| c.services.get(&service));
                    let current = s.and_then(|s| s.deployments.first());
                    if !current.is_some_and(|d| d.id == id && d.rollout == "IN_PROGRESS") {
                        return Ok::<_, ()>(vec![]);
                    }
                    Ok(vec![EcsEvent::DeploymentCompleted {
                        cluster: cluster.clone(),
                        service: service.clone(),
                        deployment: id.clone(),
                        at: crate::aws::now_epoch(),
                    }])
                })
                .await;
            if let Err(e) = done {
                log::warn!("the deployment {id} of service {service} was not completed: {e:?}");
            }
        });
    }

    /// Brings the deployments a stop of the server left in progress to steady state.
    pub fn recover(self: &Arc<Self>) {
        for (account, region) in self.regions.keys() {
            let pending: Vec<(String, String, String)> =
                self.regions.read(&account, &region, |r| {
                    r.clusters
                        .values()
                        .flat_map(|c| c.services.values().map(move |s| (c, s)))
                        .filter_map(|(c, s)| {
                            let d = s
                                .deployments
                                .first()
                                .filter(|d| d.rollout == "IN_PROGRESS")?;
                            Some((c.name.clone(), s.name.clone(), d.id.clone()))
                        })
                        .collect()
                });
            for (cluster, service, id) in pending {
                self.settle(&account, &region, &cluster, &service, &id);
            }
        }
    }
}
