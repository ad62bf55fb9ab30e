//! Amazon ECR's control plane: repositories and their images (manifests with their tags),
//! event-sourced in one stream per account and region (`ecr:<account>:<region>`). The ECR source
//! action reads its images from here.
//!
//! # LIMITATIONS
//! - Served: CreateRepository, DescribeRepositories, DeleteRepository, PutImage, BatchGetImage,
//!   DescribeImages, ListImages, BatchDeleteImage, GetAuthorizationToken, TagResource,
//!   UntagResource, ListTagsForResource; the other operations answer a clear error naming them.
//! - PutImage does not require the layers a manifest names to exist (a push through the
//!   registry, [`registry`], does).
//! - Scanning, replication, lifecycle and repository policies, pull-through caches and KMS
//!   encryption are not served; a repository's scanning and encryption settings are recorded.

pub mod api;
pub mod registry;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::eventstore::{EventStore, EventType};
use crate::regional::Regional;

/// The prefix of repository streams.
pub const STREAM_PREFIX: &str = "ecr:";

/// How many repositories a registry may have in a region (AWS's quota).
pub const MAX_REPOSITORIES: usize = 10_000;

/// How many images a repository may hold (AWS's quota).
pub const MAX_IMAGES: usize = 20_000;

/// An image: a manifest, its digest and its tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// `sha256:<hex>` of the manifest.
    pub digest: String,
    /// The manifest as put.
    pub manifest: String,
    /// Its media type.
    pub media_type: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// When it was first put.
    pub pushed: f64,
    /// The size of its layers, as its manifest says.
    pub size: u64,
}

/// A repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repository {
    /// Its name.
    pub name: String,
    /// When it was made.
    pub created: f64,
    /// `MUTABLE` or `IMMUTABLE`.
    pub tag_mutability: String,
    /// Its `imageScanningConfiguration.scanOnPush`.
    pub scan_on_push: bool,
    /// Its encryption type (`AES256`, `KMS`).
    pub encryption: String,
    /// Its tags.
    pub tags: Vec<(String, String)>,
    /// Its images, by digest.
    pub images: BTreeMap<String, Image>,
}

impl Repository {
    /// The image a tag names.
    pub fn tagged(&self, tag: &str) -> Option<&Image> {
        self.images
            .values()
            .find(|i| i.tags.iter().any(|t| t == tag))
    }
}

/// The ARN of a repository.
pub fn arn(account: &str, region: &str, name: &str) -> String {
    format!("arn:aws:ecr:{region}:{account}:repository/{name}")
}

/// The URI of a repository, as AWS gives it.
pub fn uri(account: &str, region: &str, name: &str) -> String {
    format!("{account}.dkr.ecr.{region}.amazonaws.com/{name}")
}

/// What can happen to a region's repositories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EcrEvent {
    /// CreateRepository.
    Created(Box<Repository>),
    /// DeleteRepository.
    Deleted {
        /// The repository.
        repository: String,
    },
    /// PutImage: the image (kept if it was there) and the tag moved to it.
    ImagePut {
        /// The repository.
        repository: String,
        /// The image, with no tags.
        image: Box<Image>,
        /// The tag it gets.
        tag: Option<String>,
    },
    /// BatchDeleteImage: tags removed, and images removed whole.
    ImagesDeleted {
        /// The repository.
        repository: String,
        /// Tags removed.
        tags: Vec<String>,
        /// Images removed, by digest.
        digests: Vec<String>,
    },
    /// TagResource / UntagResource: the repository's tags now.
    Tagged {
        /// The repository.
        repository: String,
        /// Its tags.
        tags: Vec<(String, String)>,
    },
}

impl EventType for EcrEvent {
    fn type_name(&self) -> &'static str {
        "EcrEvent"
    }

    fn owns(type_name: &str) -> bool {
        type_name == "EcrEvent"
    }

    fn decode(_: &str, data: &Value) -> Result<Self, serde_json::Error> {
        EcrEvent::deserialize(data)
    }
}

/// A region's repositories, by name.
pub type Registry = BTreeMap<String, Repository>;

fn fold(registry: &mut Registry, event: EcrEvent) {
    match event {
        EcrEvent::Created(repository) => {
            registry.insert(repository.name.clone(), *repository);
        }
        EcrEvent::Deleted { repository } => {
            registry.remove(&repository);
        }
        EcrEvent::ImagePut {
            repository,
            image,
            tag,
        } => {
            let Some(r) = registry.get_mut(&repository) else {
                return;
            };
            if let Some(tag) = &tag {
                for other in r.images.values_mut() {
                    other.tags.retain(|t| t != tag);
                }
            }
            let kept = r
                .images
                .entry(image.digest.clone())
                .or_insert_with(|| *image);
            if let Some(tag) = tag {
                kept.tags.push(tag);
            }
        }
        EcrEvent::ImagesDeleted {
            repository,
            tags,
            digests,
        } => {
            let Some(r) = registry.get_mut(&repository) else {
                return;
            };
            for image in r.images.values_mut() {
                image.tags.retain(|t| !tags.contains(t));
            }
            for d in digests {
                r.images.remove(&d);
            }
        }
        EcrEvent::Tagged { repository, tags } => {
            if let Some(r) = registry.get_mut(&repository) {
                r.tags = tags;
            }
        }
    }
}

/// An image put under a tag, as the `ECR Image Action` event tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pushed {
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// The repository.
    pub repository: String,
    /// The tag.
    pub tag: Option<String>,
    /// The image's digest.
    pub digest: String,
}

/// What is told of each push.
pub type OnPush = Box<dyn Fn(Pushed) + Send + Sync>;

/// The repositories of every account and region.
pub struct Ecr {
    /// The repositories.
    pub registries: Regional<EcrEvent, Registry>,
    on_push: std::sync::OnceLock<OnPush>,
}

crate::regional::regional_projection!(Ecr, registries);

impl Ecr {
    /// None yet, from `log`.
    pub fn new(log: Arc<dyn EventStore>) -> Self {
        Ecr {
            registries: Regional::new(log, STREAM_PREFIX, "ecr", fold),
            on_push: std::sync::OnceLock::new(),
        }
    }

    /// Who is told of each image put (EventBridge, which starts the pipelines its rules name).
    pub fn set_on_push(&self, on_push: OnPush) {
        let _ = self.on_push.set(on_push);
    }

    fn pushed(&self, pushed: Pushed) {
        if let Some(tell) = self.on_push.get() {
            tell(pushed);
        }
    }

    /// A repository.
    pub fn repository(&self, account: &str, region: &str, name: &str) -> Option<Repository> {
        self.registries
            .read(account, region, |r| r.get(name).cloned())
    }
}

/// ECR as the ECR source action reads it.
pub struct SourceImages(pub Arc<Ecr>);

impl crate::codepipeline::actions::Images for SourceImages {
    fn image(
        &self,
        account: &str,
        region: &str,
        repository: &str,
        tag: &str,
        digest: Option<&str>,
    ) -> Result<crate::codepipeline::actions::ImageInfo, String> {
        let r = self.0.repository(account, region, repository).ok_or_else(|| {
            format!("The repository with name '{repository}' does not exist in the registry with id '{account}'")
        })?;
        let found = match digest {
            Some(d) => r.images.get(d),
            None => r.tagged(tag),
        };
        let image = found.ok_or_else(|| {
            let (d, t) = match digest {
                Some(d) => (d, "null"),
                None => ("null", tag),
            };
            format!("The image with imageId {{imageDigest:'{d}', imageTag:'{t}'}} does not exist within the repository with name '{repository}' in the registry with id '{account}'")
        })?;
        Ok(crate::codepipeline::actions::ImageInfo {
            registry_id: account.to_string(),
            repository_uri: uri(account, region, repository),
            digest: image.digest.clone(),
            tags: image.tags.clone(),
            pushed: image.pushed,
            size: image.size,
        })
    }
}

/// `sha256:<hex>` of bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    let sum = sha2::Sha256::digest(bytes);
    format!("sha256:{}", crate::aws::pagination::hex(&sum))
}
