//! Stage gates: which execution is in each stage of each pipeline, and which wait to enter,
//! decided without I/O.
//!
//! A stage runs one execution at a time in SUPERSEDED and QUEUED modes. In SUPERSEDED mode a
//! newer execution takes the place of one waiting (which ends as Superseded); in QUEUED mode
//! they wait in turn; in PARALLEL mode every execution enters at once. A disabled inbound
//! transition lets nobody in until it is enabled again.
//!
//! Every change answers what must be told to whom, as [`Send`]s addressed with the caller's
//! handle type `A` (the actors' addresses in the server, plain names in tests); the caller
//! delivers them once it has let go of the gates.

use std::collections::{HashMap, HashSet, VecDeque};

use super::model::ExecutionMode;

/// What an execution must be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tell {
    /// It may enter the stage it waits for.
    Enter(String),
    /// A newer execution, `by`, took its waiting place.
    Supersede {
        /// The newer execution.
        by: String,
    },
}

/// A message for the execution behind `A`.
pub type Send<A> = (A, Tell);

/// The gates of every pipeline, by pipeline key.
pub struct Gates<A> {
    pipelines: HashMap<String, Gate<A>>,
}

impl<A> Default for Gates<A> {
    fn default() -> Self {
        Gates {
            pipelines: HashMap::new(),
        }
    }
}

struct Gate<A> {
    /// Stage → the execution in it (SUPERSEDED and QUEUED modes).
    holders: HashMap<String, String>,
    /// Stage → executions waiting to enter, first first.
    waiting: HashMap<String, VecDeque<Waiter<A>>>,
    /// Stages whose inbound transition is disabled: nobody enters them.
    disabled: HashSet<String>,
}

impl<A> Default for Gate<A> {
    fn default() -> Self {
        Gate {
            holders: HashMap::new(),
            waiting: HashMap::new(),
            disabled: HashSet::new(),
        }
    }
}

/// An execution waiting before a stage.
struct Waiter<A> {
    execution: String,
    addr: A,
    mode: ExecutionMode,
}

impl<A> Gate<A> {
    /// `execution` leaves the stage it is in, if any.
    fn release(&mut self, execution: &str, sends: &mut Vec<Send<A>>) {
        let held: Vec<String> = self
            .holders
            .iter()
            .filter(|(_, e)| e.as_str() == execution)
            .map(|(s, _)| s.clone())
            .collect();
        for stage in held {
            self.holders.remove(&stage);
            self.promote(&stage, sends);
        }
    }

    /// Lets the first waiters into a free stage (every PARALLEL one at the front, then one).
    fn promote(&mut self, stage: &str, sends: &mut Vec<Send<A>>) {
        if self.disabled.contains(stage) {
            return;
        }
        let Some(queue) = self.waiting.get_mut(stage) else {
            return;
        };
        while let Some(front) = queue.front() {
            if front.mode != ExecutionMode::Parallel && self.holders.contains_key(stage) {
                return;
            }
            let waiter = queue.pop_front().expect("a front waiter");
            if waiter.mode != ExecutionMode::Parallel {
                self.holders
                    .insert(stage.to_string(), waiter.execution.clone());
            }
            sends.push((waiter.addr, Tell::Enter(stage.to_string())));
        }
    }
}

impl<A> Gates<A> {
    fn gate(&mut self, pipeline: &str) -> &mut Gate<A> {
        self.pipelines.entry(pipeline.to_string()).or_default()
    }

    /// Opens or closes a stage's inbound transition; opening lets waiting executions in.
    pub fn set_transition(&mut self, pipeline: &str, stage: &str, enabled: bool) -> Vec<Send<A>> {
        let mut sends = Vec::new();
        let gate = self.gate(pipeline);
        if enabled {
            gate.disabled.remove(stage);
            gate.promote(stage, &mut sends);
        } else {
            gate.disabled.insert(stage.to_string());
        }
        sends
    }

    /// Records that `execution` is in `stage` (resuming at startup).
    pub fn hold(&mut self, pipeline: &str, stage: &str, execution: &str) {
        self.gate(pipeline)
            .holders
            .insert(stage.to_string(), execution.to_string());
    }

    /// `execution` (reached through `addr`) asks to enter `stage`, leaving the stage it is in:
    /// whether it is let in at once (it may enter in the same write), and what others must be
    /// told. One not let in is told [`Tell::Enter`] when its turn comes.
    pub fn want(
        &mut self,
        pipeline: &str,
        mode: ExecutionMode,
        stage: &str,
        execution: &str,
        addr: A,
    ) -> (bool, Vec<Send<A>>) {
        let mut sends = Vec::new();
        let gate = self.gate(pipeline);
        // A waiting execution leaves the stage it finished: others may run it meanwhile.
        gate.release(execution, &mut sends);
        let open = !gate.disabled.contains(stage);
        let queue_empty = gate.waiting.get(stage).is_none_or(|q| q.is_empty());
        if open && mode == ExecutionMode::Parallel {
            return (true, sends);
        }
        if open && !gate.holders.contains_key(stage) && queue_empty {
            gate.holders
                .insert(stage.to_string(), execution.to_string());
            return (true, sends);
        }
        let queue = gate.waiting.entry(stage.to_string()).or_default();
        if mode == ExecutionMode::Superseded {
            for older in queue.drain(..) {
                sends.push((
                    older.addr,
                    Tell::Supersede {
                        by: execution.to_string(),
                    },
                ));
            }
        }
        queue.push_back(Waiter {
            execution: execution.to_string(),
            addr,
            mode,
        });
        (false, sends)
    }

    /// `execution` ended: it leaves its stage and every queue.
    pub fn left(&mut self, pipeline: &str, execution: &str) -> Vec<Send<A>> {
        let mut sends = Vec::new();
        let Some(gate) = self.pipelines.get_mut(pipeline) else {
            return sends;
        };
        for queue in gate.waiting.values_mut() {
            queue.retain(|w| w.execution != execution);
        }
        gate.release(execution, &mut sends);
        sends
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExecutionMode::*;

    const P: &str = "acct:region:p";

    fn enter(who: &'static str, stage: &str) -> Send<&'static str> {
        (who, Tell::Enter(stage.to_string()))
    }

    #[test]
    fn superseded_a_newer_waiter_takes_the_place_of_an_older_one() {
        let mut gates = Gates::default();
        assert_eq!(
            gates.want(P, Superseded, "deploy", "e1", "e1"),
            (true, vec![])
        );
        assert_eq!(
            gates.want(P, Superseded, "deploy", "e2", "e2"),
            (false, vec![])
        );
        let (granted, sends) = gates.want(P, Superseded, "deploy", "e3", "e3");
        assert!(!granted);
        assert_eq!(sends, vec![("e2", Tell::Supersede { by: "e3".into() })]);
        assert_eq!(gates.left(P, "e1"), vec![enter("e3", "deploy")]);
    }

    #[test]
    fn queued_executions_enter_in_turn() {
        let mut gates = Gates::default();
        assert!(gates.want(P, Queued, "deploy", "e1", "e1").0);
        assert!(!gates.want(P, Queued, "deploy", "e2", "e2").0);
        assert!(!gates.want(P, Queued, "deploy", "e3", "e3").0);
        assert_eq!(gates.left(P, "e1"), vec![enter("e2", "deploy")]);
        // e2 moves on to the next stage: it leaves deploy, and e3 enters it.
        let (granted, sends) = gates.want(P, Queued, "test", "e2", "e2");
        assert!(granted);
        assert_eq!(sends, vec![enter("e3", "deploy")]);
    }

    #[test]
    fn parallel_executions_enter_at_once() {
        let mut gates = Gates::default();
        for e in ["e1", "e2", "e3"] {
            assert_eq!(gates.want(P, Parallel, "deploy", e, e), (true, vec![]));
        }
    }

    #[test]
    fn a_disabled_transition_holds_everyone_until_enabled() {
        let mut gates = Gates::default();
        assert!(gates.set_transition(P, "deploy", false).is_empty());
        assert!(!gates.want(P, Parallel, "deploy", "e1", "e1").0);
        assert!(!gates.want(P, Queued, "deploy", "e2", "e2").0);
        assert!(!gates.want(P, Queued, "deploy", "e3", "e3").0);
        // The parallel one and the first queued one enter; the next queued one waits its turn.
        assert_eq!(
            gates.set_transition(P, "deploy", true),
            vec![enter("e1", "deploy"), enter("e2", "deploy")]
        );
        assert_eq!(gates.left(P, "e2"), vec![enter("e3", "deploy")]);
    }

    #[test]
    fn a_held_stage_resumed_at_startup_is_taken() {
        let mut gates = Gates::default();
        gates.hold(P, "deploy", "e1");
        assert!(!gates.want(P, Queued, "deploy", "e2", "e2").0);
        assert_eq!(gates.left(P, "e1"), vec![enter("e2", "deploy")]);
        // Other pipelines have gates of their own.
        assert!(gates.want("acct:region:q", Queued, "deploy", "e9", "e9").0);
    }
}
