//! ListActionTypes.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{reply, Reply};
use crate::aws::json::from_value;
use crate::codepipeline::actions::ActionRegistry;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListActionTypesInput {
    action_owner_filter: Option<String>,
    next_token: Option<String>,
}

/// Lists the action types codepipeline-local runs (custom action types join them once
/// CreateCustomActionType is served). One page holds them all.
pub(super) fn handle_list_action_types(actions: &ActionRegistry, input: Value) -> Reply {
    let input: ListActionTypesInput = from_value(input)?;
    if let Some(token) = input.next_token.as_deref() {
        // No listing here has a second page, so no token we did not give is valid.
        super::token::decode(token)?;
        return reply(&json!({ "actionTypes": [] }));
    }
    let types: Vec<Value> = actions
        .runnable()
        .filter(|s| {
            input
                .action_owner_filter
                .as_deref()
                .is_none_or(|o| o == s.owner)
        })
        .map(|s| s.to_wire())
        .collect();
    reply(&json!({ "actionTypes": types }))
}
