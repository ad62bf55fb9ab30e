//! The skeleton every JSON 1.1 service shares (CodePipeline, CodeBuild, and the services to
//! come): the operation enum declared from the model's names, the operation a request's
//! `X-Amz-Target` names, and the answer written with its errors logged.

use actix_web::web::Bytes;
use actix_web::HttpResponse;

use super::model::ServiceModel;
use super::{json, AwsError, RequestContext};

/// Declares a service's operation enum: `from_name`, `name` and `ALL`, in the order given.
macro_rules! operations {
    ($(#[$meta:meta])* $name:ident { $($op:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($op),* }

        impl $name {
            /// Every operation, in the order declared.
            pub const ALL: &'static [$name] = &[$($name::$op),*];

            /// The operation named `name` (the part of `X-Amz-Target` after the dot).
            pub fn from_name(name: &str) -> Option<$name> {
                match name { $(stringify!($op) => Some($name::$op),)* _ => None }
            }

            /// The operation's name as the model spells it.
            pub fn name(self) -> &'static str {
                match self { $($name::$op => stringify!($op)),* }
            }
        }
    };
}
pub(crate) use operations;

/// The operation a JSON 1.1 request names in `target`, of the service `service` (its name in
/// messages) described by `model`: `served` gives the operations handled here.
///
/// A target the model does not have answers `UnknownOperationException`; an operation of the
/// model that `served` does not give answers `NotImplementedException` naming it.
pub fn operation<O>(
    service: &str,
    model: &ServiceModel,
    target: &str,
    served: impl Fn(&str) -> Option<O>,
) -> Result<O, AwsError> {
    let name = target
        .strip_prefix(model.target_prefix.as_str())
        .and_then(|rest| rest.strip_prefix('.'))
        .filter(|op| model.operations().iter().any(|o| o == op))
        .ok_or_else(|| {
            AwsError::new(
                "UnknownOperationException",
                format!("Operation {target} is not known to {service}"),
            )
        })?;
    served(name).ok_or_else(|| AwsError::not_supported(service, name))
}

/// The HTTP answer of a JSON 1.1 request: the body, or the error in its JSON shape (server
/// errors logged).
pub fn respond(
    ctx: &RequestContext,
    target: &str,
    result: Result<Bytes, AwsError>,
) -> HttpResponse {
    match result {
        Ok(bytes) => json::ok(ctx, bytes),
        Err(err) => {
            // An operation not served yet (501) is the client's news, not the server's fault.
            if err.status >= 500 && err.status != 501 {
                log::error!("{target}: {err}");
            } else {
                log::debug!("{target}: {err}");
            }
            json::error(ctx, &err)
        }
    }
}
