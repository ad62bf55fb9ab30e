//! codepipeline-local: an emulator of AWS CodePipeline that really runs pipelines, serving the
//! AWS wire protocol on one local endpoint so that the AWS CLI, boto3 and the AWS SDKs work
//! against it unchanged.
//!
//! # Layout
//! ```text
//! main.rs            command line (clap): `serve` (default)
//! config.rs          Config: config/default.toml < --config FILE < CODEPIPELINE_LOCAL_* env < flags
//! server.rs          composition root: opens the store, rebuilds views, serves HTTP until shutdown
//! allocator.rs       mimalloc tuning: at load, and once the data is loaded
//! gateway.rs         which service a request belongs to (SigV4 scope, X-Amz-Target)
//! aws/               AWS JSON 1.1 envelope and errors, SigV4 scope, model-driven input validation
//! eventstore/        EventStore trait; sled (default) and memory implementations
//! codepipeline/      api/ (one handle_* per operation), pipeline and execution aggregates,
//!                    actors/ (PipelineActor, ExecutionActor and their registries), views/
//!                    (pipelines, executions), actions/ (one executor per provider),
//!                    validate (declaration rules), action_types (catalogue of providers)
//! s3/                embedded S3: s3s bridge into actix-web, api (the S3 trait over the store),
//!                    store (files + bucket events), objects (ObjectStore for pipeline actions),
//!                    remote (an external S3 through aws-sdk-s3)
//! iam/               IAM roles and STS GetCallerIdentity (query protocol), role events
//! codebuild/         CodeBuild (JSON 1.1): projects and builds, event-sourced; buildspec,
//!                    runner (bash, one process group a phase), artifacts
//! history/           the history of executions from the log (HistoryReader), its read-only
//!                    admin API, and the history/replay/rerun/diff/export commands
//! ```
//! Dependencies point one way: `main → server → {gateway, codepipeline, codebuild, s3, iam,
//! history} → {aws, eventstore}`. Inside the service, `api → {actors, views}`,
//! `actors → {aggregates, actions, eventstore}`, `actions → {s3::objects, codebuild}`,
//! `views → events`. The aggregates know no I/O, no actix and no HTTP; only the `api` layers know
//! AWS error codes.
//!
//! # Data flow
//! A write goes to the pipeline's actor, which asks the pure aggregate for events and hands them
//! to the event log's writer thread, which appends whatever is queued and hands it to the flusher
//! thread, which flushes once for all (group commit) while the writer goes on; once durable, they are offered to the read views (every `Projection`) and the
//! actor answers. A read goes straight to the
//! views. An execution is an `ExecutionActor` doing the same with the execution aggregate; the
//! actions its events start run as tasks that report back with a command. The views keep what
//! reads need often (pipelines, running executions, summaries of finished ones); a finished
//! execution is folded again from its stream when asked for. At startup the views are rebuilt by
//! folding the whole log, and running executions are resumed.

pub mod admin;
pub mod allocator;
pub mod aws;
pub mod cli;
pub mod codebuild;
pub mod codepipeline;
pub mod config;
pub mod eventstore;
pub mod gateway;
pub mod history;
pub mod iam;
pub mod s3;
pub mod server;
