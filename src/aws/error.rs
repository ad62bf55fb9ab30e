//! The one error shape every AWS JSON service answers with.

use std::fmt;

/// An error as AWS would answer it: an error code (`__type`), a human message and an HTTP status.
///
/// Only API layers build these; lower layers have their own error types that the API layer maps here.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsError {
    /// HTTP status of the answer (400 for client errors, 500 for our own failures).
    pub status: u16,
    /// The error code botocore and the SDKs match on, e.g. `PipelineNotFoundException`.
    pub code: String,
    /// The message shown to the user.
    pub message: String,
}

impl AwsError {
    /// A client error (HTTP 400) with the given code.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        AwsError {
            status: 400,
            code: code.into(),
            message: message.into(),
        }
    }

    /// The same error with another HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// `ValidationException`: a field failed the model's constraints.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationException", message)
    }

    /// `SerializationException`: the body is not JSON of the expected shape.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new("SerializationException", message)
    }

    /// Our own failure (storage, a dead actor): HTTP 500 `InternalFailure`, which the SDKs retry.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new("InternalFailure", message).with_status(500)
    }

    /// An operation of the service model that this emulator does not implement yet.
    pub fn not_supported(service: &str, operation: &str) -> Self {
        Self::new(
            "NotImplementedException",
            format!(
                "The {service} operation {operation} is not supported by codepipeline-local yet"
            ),
        )
        .with_status(501)
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for AwsError {}
