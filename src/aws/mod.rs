//! Protocol mechanics shared by every emulated service: the AWS JSON 1.1 envelope and its errors,
//! the SigV4 credential scope that tells services and regions apart, ARNs, and validation of
//! requests against AWS's own service models.

pub mod error;
pub mod json;
pub mod model;
pub mod pagination;
pub mod query;
pub mod scope;
pub mod service;
pub mod shapes;

pub use error::AwsError;
pub use scope::RequestContext;

/// Seconds since the Unix epoch with fractions: the shape AWS JSON protocols use for timestamps.
pub fn now_epoch() -> f64 {
    let now = chrono::Utc::now();
    now.timestamp() as f64 + f64::from(now.timestamp_subsec_micros()) / 1_000_000.0
}
