//! Integration tests: the real server, real clients.

mod bad_input;
mod checkpoints;
mod cloudwatch;
mod codebuild;
mod codecommit;
mod common;
mod conditions;
mod declarations;
mod engine;
mod events;
mod external_s3;
mod fixtures;
mod git;
mod history;
mod iam;
mod jobs;
mod lambda;
mod one_door;
mod pipelines;
mod restart;
mod retention;
mod rollback;
mod s3;
mod tags;
mod webhooks;
mod wire;
