//! codepipeline-local: an emulator of AWS CodePipeline that really runs pipelines, serving the
//! AWS wire protocol on one local endpoint so that the AWS CLI, boto3 and the AWS SDKs work
//! against it unchanged.
//!
//! # Layout
//! ```text
//! main.rs            command line (clap): `serve` (default), and the debugging commands
//! config.rs          Config: config/default.toml < --config FILE < CODEPIPELINE_LOCAL_* env < flags
//! server.rs          composition root: opens the store, rebuilds views, serves HTTP until shutdown
//! admin.rs           the local, non-AWS routes (health, history API, build output) and their names
//! allocator.rs       mimalloc tuning: at load, and once the data is loaded
//! gateway.rs         which service a request belongs to (SigV4 scope, X-Amz-Target)
//! aws/               protocol pieces every service shares: JSON 1.1 envelope and errors (json),
//!                    the JSON service skeleton (service: operations!, the target's operation,
//!                    the answer), the query protocol (query: forms, XML, <ErrorResponse>),
//!                    pagination tokens, SigV4 scope, model-driven input validation
//! eventstore/        EventStore trait; sled (default), SQLite and memory implementations, the
//!                    append encoding they share (codec), shelves (keyed tables beside the log
//!                    for projections too large for memory); event types (EventType: name,
//!                    schema version, upcasting), stream folding, StreamWriter
//! codepipeline/      api/ (Operation enum, one handle_* per operation: the only AWS codes),
//!                    model (the typed declaration and status enums, AWS's wire shape), ids
//!                    (stream names), pipeline and execution aggregates (pure), gates (stage
//!                    locks and transitions, pure), actors/ (PipelineActor: the one door per
//!                    pipeline; ExecutionActor; their registries), views/ (pipelines, executions,
//!                    GetPipelineState's stage states), actions/ (the
//!                    ActionExecutor trait, the registry, one file per provider), validate
//!                    (declaration rules), action_types (AWS's catalogue of providers)
//! s3/                embedded S3: s3s bridge into actix-web, api/ (the S3 trait over the store;
//!                    tags, copy checks and listings in files of their own),
//!                    store (files + bucket events), keys (a bucket's keys and versions, on the
//!                    shelf), objects (ObjectStore for pipeline actions),
//!                    remote (an external S3 through aws-sdk-s3)
//! iam/               IAM roles and STS (query protocol): api (operations, AWS codes, XML),
//!                    roles (the pure role aggregate and its events)
//! codebuild/         CodeBuild (JSON 1.1): api (operations, AWS codes), project and build
//!                    events, builds (running them), buildspec, runner (bash, one process group
//!                    a phase), artifacts, port (the Builds trait other services use)
//! checkpoint         the Projection trait and checkpoints of every projection with the log
//!                    position they hold (start-up folds only the events after one)
//! projections        the projections together: what start-up folds, what a checkpoint holds
//! history/           the history of executions from the log (HistoryReader): timelines,
//!                    replays, diffs, the input of a rerun
//! cli/               the history/replay/rerun/diff/export/logs commands: args, client (server
//!                    or data dir), render (tables)
//! ```
//! Dependencies point one way: `main → {server, cli} → {admin, gateway, history, projections} →
//! {codepipeline, codebuild, s3, iam} → {aws, eventstore, checkpoint}`; no two top-level modules import each
//! other (`python3 ../shared/tools/modgraph.py src` checks). Services meet through ports: the
//! pipeline's actions reach CodeBuild through `codebuild::port::Builds` and S3 through
//! `s3::objects::ObjectStore`, and neither service imports the other's handlers or state.
//! Inside CodePipeline, `api → {actors, views, model}`, `actors → {aggregates, gates, actions,
//! eventstore}`, `views → {events, model}`; the aggregates and the gates know no I/O, no actix
//! and no HTTP; only the `api` layers know AWS error codes.
//!
//! # Data flow
//! A write goes to the pipeline's actor, which asks the pure aggregate for events and hands them
//! to the event log's writer thread, which appends whatever is queued and hands it to the flusher
//! thread, which flushes once for all (group commit) while the writer goes on; once durable, they are offered to the read views (every `Projection`) and the
//! actor answers. A read goes straight to the
//! views. An execution is an `ExecutionActor` doing the same with the execution aggregate; the
//! actions its events start run as tasks that report back with a command. The views keep in
//! memory what does not grow with the history (pipelines, running executions, buckets, each
//! pipeline's start order); finished executions' summaries and S3 keys are on shelves, and a
//! finished execution is folded again from its stream when asked for. At startup the views are
//! restored from the checkpoint and the events after it folded, and running executions are
//! resumed.

pub mod admin;
pub mod allocator;
pub mod aws;
pub mod checkpoint;
pub mod cli;
pub mod cloudformation;
pub mod cloudwatch;
pub mod codebuild;
pub mod codecommit;
pub mod codedeploy;
pub mod codepipeline;
pub mod config;
pub mod connections;
pub mod console;
pub mod ecr;
pub mod ecs;
pub mod events;
pub mod eventstore;
mod fuzz;
pub mod gateway;
pub mod history;
pub mod iam;
pub mod lambda;
pub mod projections;
pub mod regional;
pub mod s3;
pub mod server;
pub mod source_watch;
pub mod ssm;
