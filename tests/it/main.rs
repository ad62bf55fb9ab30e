//! Integration tests: the real server, real clients.

mod common;
mod declarations;
mod fixtures;
mod pipelines;
mod restart;
mod tags;
mod wire;
