//! Where the run stands, as one value: what the coordinator does next and
//! whether the workers may process follow from it alone. It changes only
//! through [`RunState::next`], a pure function of the state and what
//! happened, so every transition is tested here without a broker.
//!
//! Before, this was spread over the transaction's phase, a `rewind_pending`
//! flag and a `fatal` slot, each set from another place. A rewind cleared
//! one while a worker could still read another, and after forced rewinds a
//! read_committed consumer saw outputs twice: processing resumed between the
//! abort and the rewind. Here nothing between `TransactionFailed` and
//! `Rewound` lets the workers in.

/// The run's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RunState {
    /// Processing (with or without partitions).
    Running,
    /// A commit failed with a retriable error: its records and offsets are
    /// in the transaction, and only the commit is retried.
    Committing,
    /// A transaction failed: it must be aborted, then the state rewound.
    Aborting,
    /// Nothing open, but the tasks' state is not the checkpoint's (a restore
    /// or a seek failed, or an abort happened outside a rewind): every task
    /// is rewound before anything is processed.
    Rewinding,
    /// The partition counts do not match the configuration (health says
    /// how): the rewind, which checks them, is retried until they do.
    Refused,
    /// Shutting down; `commit` says whether the tasks hold a state to
    /// checkpoint (not one half restored or processed past a failure).
    Stopping { commit: bool },
    /// Stopped on an error; the first reason is kept.
    Failed(String),
}

/// What happened, as the coordinator, a worker or a callback reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RunEvent {
    /// A checkpoint committed (or there was nothing to commit, or it was
    /// deferred until the outputs are acknowledged).
    Committed,
    /// The commit failed with a retriable error.
    CommitUnfinished,
    /// The transaction failed (a commit or a send in it): abortable.
    TransactionFailed,
    /// The failed or open transaction was aborted.
    Aborted,
    /// Every task was put back to its last checkpoint.
    Rewound,
    /// A restore or seek failed: the tasks' state cannot be trusted.
    StateLost,
    /// Partitions were assigned and restored.
    Assigned,
    /// The partition counts were found not to match.
    LayoutRefused,
    Shutdown,
    /// An error the run cannot go on from.
    Fatal(String),
}

/// What the coordinator does about the state on its next turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Process, tick and checkpoint as usual.
    Process,
    /// Retry the commit.
    RetryCommit,
    /// Abort if needed, then rewind every task to its last checkpoint.
    Recover,
    /// Recover, no more often than the partition counts are rechecked.
    RecheckLayout,
    /// Leave the loop.
    Stop,
}

impl RunState {
    /// The state after `event`.
    pub(super) fn next(self, event: RunEvent) -> RunState {
        use RunEvent as E;
        use RunState as S;
        match (self, event) {
            // Terminal, and the first reason wins.
            (S::Failed(why), _) => S::Failed(why),
            (_, E::Fatal(why)) => S::Failed(why),
            (S::Stopping { commit }, e) => S::Stopping {
                commit: commit && !matches!(e, E::TransactionFailed | E::StateLost),
            },
            (s, E::Shutdown) => S::Stopping {
                commit: matches!(s, S::Running | S::Committing),
            },
            // A refusal outlasts everything but a rewind that passes the
            // layout check. An assignment's restore checks it too, but a
            // transaction the refusal found failing may still be open: the
            // rewind aborts it first.
            (S::Refused, E::Rewound) => S::Running,
            (S::Refused, E::Assigned) => S::Rewinding,
            (S::Refused, _) | (_, E::LayoutRefused) => S::Refused,
            // A failed transaction is aborted before anything else; the
            // rewind then starts from nothing open.
            (_, E::TransactionFailed) => S::Aborting,
            (S::Aborting, E::Aborted) => S::Rewinding,
            (S::Aborting, _) => S::Aborting,
            (_, E::StateLost) => S::Rewinding,
            (S::Rewinding, E::Rewound | E::Assigned) => S::Running,
            (S::Rewinding, _) => S::Rewinding,
            (S::Committing, E::Committed) => S::Running,
            (S::Committing, _) => S::Committing,
            (S::Running, E::CommitUnfinished) => S::Committing,
            // An abort outside a rewind (a revoke whose commit failed)
            // leaves state the checkpoint does not hold.
            (S::Running, E::Aborted) => S::Rewinding,
            (S::Running, E::Committed | E::Rewound | E::Assigned) => S::Running,
        }
    }

    /// True when the workers may process messages.
    pub(super) fn may_process(&self) -> bool {
        *self == RunState::Running
    }

    /// True when the tasks hold a state that may be checkpointed (a revoke
    /// or the final commit).
    pub(super) fn may_commit(&self) -> bool {
        matches!(
            self,
            RunState::Running | RunState::Committing | RunState::Stopping { commit: true }
        )
    }

    pub(super) fn action(&self) -> Action {
        match self {
            RunState::Running => Action::Process,
            RunState::Committing => Action::RetryCommit,
            RunState::Aborting | RunState::Rewinding => Action::Recover,
            RunState::Refused => Action::RecheckLayout,
            RunState::Stopping { .. } | RunState::Failed(_) => Action::Stop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Action, RunEvent as E, RunState as S};

    fn after(state: S, events: &[E]) -> S {
        events.iter().cloned().fold(state, S::next)
    }

    fn states() -> Vec<S> {
        vec![
            S::Running,
            S::Committing,
            S::Aborting,
            S::Rewinding,
            S::Refused,
            S::Stopping { commit: true },
            S::Stopping { commit: false },
            S::Failed("why".into()),
        ]
    }

    fn events() -> Vec<E> {
        vec![
            E::Committed,
            E::CommitUnfinished,
            E::TransactionFailed,
            E::Aborted,
            E::Rewound,
            E::StateLost,
            E::Assigned,
            E::LayoutRefused,
            E::Shutdown,
            E::Fatal("fatal".into()),
        ]
    }

    /// Every pair: processing resumes only on what puts the state back to
    /// a checkpoint or commits it, never on an abort alone.
    #[test]
    fn only_a_rewind_a_restore_or_a_commit_resumes_processing() {
        for s in states() {
            for e in events() {
                let next = s.clone().next(e.clone());
                if !s.may_process() && next.may_process() {
                    let why = matches!(
                        (&s, &e),
                        (S::Committing, E::Committed)
                            | (S::Rewinding, E::Rewound | E::Assigned)
                            | (S::Refused, E::Rewound)
                    );
                    assert!(why, "{s:?} + {e:?} resumed processing");
                }
                if s == S::Aborting && e != E::Aborted {
                    assert!(!next.may_process(), "{e:?} resumed before the abort");
                }
            }
        }
    }

    #[test]
    fn a_good_commit_keeps_it_running() {
        assert_eq!(S::Running.next(E::Committed), S::Running);
        assert_eq!(S::Running.next(E::Assigned), S::Running);
        assert!(S::Running.may_process());
        assert_eq!(S::Running.action(), Action::Process);
    }

    #[test]
    fn a_retriable_commit_holds_processing_until_it_commits() {
        let s = S::Running.next(E::CommitUnfinished);
        assert_eq!(s, S::Committing);
        assert!(!s.may_process());
        assert!(s.may_commit(), "a revoke still finishes the commit");
        assert_eq!(s.action(), Action::RetryCommit);
        assert_eq!(s.clone().next(E::CommitUnfinished), S::Committing);
        assert_eq!(s.clone().next(E::Assigned), S::Committing);
        assert_eq!(s.clone().next(E::Committed), S::Running);
        assert_eq!(s.next(E::TransactionFailed), S::Aborting);
    }

    /// The stop-34 CI failure: the abort alone must not let the workers in;
    /// only the rewind does.
    #[test]
    fn an_abort_without_its_rewind_processes_nothing() {
        for from in [S::Running, S::Committing] {
            let s = from.next(E::TransactionFailed);
            assert_eq!(s, S::Aborting);
            assert!(!s.may_process() && !s.may_commit());
            assert_eq!(s.action(), Action::Recover);
            let s = s.next(E::Aborted);
            assert_eq!(s, S::Rewinding);
            assert!(!s.may_process(), "aborted, not rewound");
            assert_eq!(s.clone().next(E::StateLost), S::Rewinding);
            assert_eq!(s.clone().next(E::Committed), S::Rewinding);
            assert_eq!(s.next(E::Rewound), S::Running);
        }
    }

    #[test]
    fn an_abort_that_fails_is_tried_again_before_any_rewind() {
        let s = after(S::Running, &[E::TransactionFailed, E::Rewound, E::Assigned]);
        assert_eq!(s, S::Aborting, "nothing was aborted yet");
        assert_eq!(after(s, &[E::Aborted, E::Rewound]), S::Running);
    }

    #[test]
    fn a_send_failing_mid_batch_stops_processing() {
        let s = S::Running.next(E::TransactionFailed);
        assert!(!s.may_process());
    }

    #[test]
    fn a_lost_state_is_rewound_before_processing() {
        let s = S::Running.next(E::StateLost);
        assert_eq!(s, S::Rewinding);
        assert!(!s.may_commit(), "a revoke must not commit it");
        assert_eq!(s.clone().next(E::StateLost), S::Rewinding);
        assert_eq!(s.clone().next(E::Assigned), S::Running, "a full restore");
        assert_eq!(s.next(E::Rewound), S::Running);
    }

    #[test]
    fn an_abort_on_revoke_leaves_the_kept_state_to_rewind() {
        assert_eq!(S::Running.next(E::Aborted), S::Rewinding);
    }

    #[test]
    fn refused_until_a_rewind_passes_the_layout_check() {
        for from in [S::Running, S::Committing, S::Aborting, S::Rewinding] {
            let s = from.next(E::LayoutRefused);
            assert_eq!(s, S::Refused);
            assert!(!s.may_process() && !s.may_commit());
            assert_eq!(s.action(), Action::RecheckLayout);
            for e in [
                E::Committed,
                E::CommitUnfinished,
                E::TransactionFailed,
                E::Aborted,
                E::StateLost,
            ] {
                assert_eq!(s.clone().next(e), S::Refused);
            }
            assert_eq!(s.clone().next(E::Rewound), S::Running);
            // It may have absorbed a failed transaction: aborted first.
            assert_eq!(s.next(E::Assigned), S::Rewinding);
        }
    }

    #[test]
    fn shutdown_commits_only_a_state_worth_keeping() {
        for (from, commit) in [
            (S::Running, true),
            (S::Committing, true),
            (S::Aborting, false),
            (S::Rewinding, false),
            (S::Refused, false),
        ] {
            let s = from.clone().next(E::Shutdown);
            assert_eq!(s, S::Stopping { commit }, "from {from:?}");
            assert_eq!(s.action(), Action::Stop);
            assert_eq!(s.may_commit(), commit);
            assert!(!s.may_process());
        }
        let s = after(S::Running, &[E::Shutdown, E::TransactionFailed]);
        assert_eq!(s, S::Stopping { commit: false });
        assert_eq!(s.next(E::Rewound), S::Stopping { commit: false });
    }

    #[test]
    fn a_fatal_error_ends_the_run_and_keeps_its_first_reason() {
        for from in [
            S::Running,
            S::Committing,
            S::Aborting,
            S::Rewinding,
            S::Refused,
            S::Stopping { commit: true },
        ] {
            let s = from.next(E::Fatal("first".into()));
            assert_eq!(s, S::Failed("first".into()));
            assert_eq!(s.action(), Action::Stop);
            assert!(!s.may_process() && !s.may_commit());
            for e in [
                E::Fatal("second".into()),
                E::Rewound,
                E::Shutdown,
                E::Assigned,
            ] {
                assert_eq!(s.clone().next(e), S::Failed("first".into()));
            }
        }
    }
}
