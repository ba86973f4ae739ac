//! The Wing & Gong linearizability checker with Lowe's memoization (WGL).
//!
//! The search is depth first. At each node some operations are already
//! linearized, in order, and the model is in the state they lead to. The
//! candidates for the next place are the *minimal* remaining operations:
//! those that no other remaining operation returned before. Each candidate
//! the model accepts leads to a child node. A node is only explored once per
//! (set of linearized operations, model state): how the set was ordered does
//! not matter for what can still follow. That memo is what makes the search
//! affordable on real histories, where few operations overlap at a time.
//!
//! Operations with an unknown outcome have an infinite return time: they
//! never hold anything else back, and the search succeeds as soon as every
//! operation with a known outcome is linearized, so the unknown ones that
//! were never placed are simply left out. Two refinements keep them cheap:
//!
//! * Placing an unknown operation that does not change the state is never
//!   tried: leaving it out leads to the same state with more options.
//! * More generally, a node is dominated by an explored node with the same
//!   known operations linearized, the same state and a subset of the unknown
//!   ones: the unknown operations it still holds could only help. So the
//!   memo holds, for each (known set, state), the minimal unknown sets seen.
//!
//! A third refinement is for refusals and reads: a candidate the model
//! declares read-only ([`Model::is_read_only`]) and accepts in the current
//! state is placed at once, as the only child. Without it, a window of `k`
//! concurrent refusals costs up to `2^k` nodes.
//!
//! The cost that remains is in histories that are *not* linearizable: the
//! search must then rule out every order of everything before the fault,
//! and every operation with an unknown outcome stays a candidate from its
//! invocation on, so many of them make that slow. [`SearchBudget`] bounds it.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use crate::history::Operation;
use crate::model::Model;

/// How many unknown sets the memo keeps per (known set, state). Many only
/// arise when many unknown operations change the state, where the search is
/// exponential anyway; the cap keeps each lookup cheap.
const MEMO_SETS_PER_KEY: usize = 16;

/// How much the search may explore before it gives up with
/// [`Verdict::Unknown`].
///
/// The search is exponential in the worst case, and a failure test should
/// rather report "don't know" than hang. Memory grows with the number of
/// states explored (each one is remembered), so the budget bounds it too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchBudget {
    max_states: u64,
}

impl SearchBudget {
    /// The budget of [`SearchBudget::default`]: a million states. Spending
    /// it all on a lock history of a few hundred to a thousand operations
    /// takes about two seconds in an optimised build (ten or more without
    /// optimisation) and about 200 MB.
    pub const DEFAULT_MAX_STATES: u64 = 1_000_000;

    /// At most `max_states` distinct (linearized set, state) pairs.
    pub const fn states(max_states: u64) -> Self {
        SearchBudget { max_states }
    }

    /// No limit: only for histories known to be small.
    pub const fn unlimited() -> Self {
        SearchBudget {
            max_states: u64::MAX,
        }
    }

    /// The number of distinct states the search may explore.
    pub const fn max_states(&self) -> u64 {
        self.max_states
    }
}

impl Default for SearchBudget {
    fn default() -> Self {
        SearchBudget::states(Self::DEFAULT_MAX_STATES)
    }
}

/// The answer of [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The history is linearizable.
    Linearizable {
        /// One valid order, as indices into the history. Operations with an
        /// unknown outcome that this order leaves out (they never took
        /// effect) are not listed.
        order: Vec<usize>,
    },
    /// No order of the operations explains the history.
    Violation {
        /// The order that explained the most operations with a known
        /// outcome before it got stuck, as indices into the history. It may
        /// include operations with an unknown outcome.
        longest_prefix: Vec<usize>,
        /// The operations with a known outcome that could come next after
        /// `longest_prefix` in real time, none of which the model accepts
        /// there, in order of invocation. This is where to look first.
        stuck_at: Vec<usize>,
    },
    /// The budget ran out before the search could decide.
    Unknown {
        /// How many distinct states were explored.
        explored: u64,
    },
}

impl Verdict {
    /// Whether the history was found linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable { .. })
    }

    /// Whether the history was found not linearizable.
    pub fn is_violation(&self) -> bool {
        matches!(self, Verdict::Violation { .. })
    }
}

/// Checks whether `history` is linearizable against `model`.
///
/// An operation `a` must be linearized before `b` whenever `a` returned
/// before `b` was invoked ([`Operation::precedes`]); an operation with an
/// unknown outcome may be linearized anywhere after its invocation, or left
/// out. The search is iterative, so long histories cannot overflow the
/// stack, and it stops with [`Verdict::Unknown`] once `budget` is spent.
///
/// Check one independent object (one lock) at a time: the cost grows with
/// the number of operations that overlap in time, and operations on
/// different objects would only add overlap.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    budget: SearchBudget,
) -> Verdict {
    Search::new(model, history, budget).run()
}

/// A set of operations, one bit per operation of one kind (known or unknown
/// outcome), numbered by [`Index::slot`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Self {
        Bits(vec![0; len.div_ceil(64)])
    }

    fn contains(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn remove(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }

    fn is_subset(&self, other: &Bits) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a & !b == 0)
    }
}

/// The history sorted the ways the search needs it, computed once.
struct Index {
    /// For each operation, whether the model says it is read-only
    /// ([`Model::is_read_only`]; never for an unknown outcome).
    read_only: Vec<bool>,
    /// For each operation, its bit in the known or unknown set.
    slot: Vec<usize>,
    /// Operations with a known outcome, by invocation time.
    known_by_invoke: Vec<usize>,
    /// Operations with a known outcome, by return time.
    known_by_ret: Vec<usize>,
    /// Operations with an unknown outcome, by invocation time.
    unknown_by_invoke: Vec<usize>,
}

impl Index {
    fn new<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> Self {
        let read_only = history
            .iter()
            .map(|op| {
                op.output()
                    .is_some_and(|out| model.is_read_only(op.input(), out))
            })
            .collect();
        let mut slot = vec![0; history.len()];
        let (mut known, mut unknown) = (0, 0);
        for (i, op) in history.iter().enumerate() {
            let counter = if op.is_completed() {
                &mut known
            } else {
                &mut unknown
            };
            slot[i] = *counter;
            *counter += 1;
        }
        // Ties are broken by index so that the search is deterministic.
        let by = |completed: bool| -> Vec<usize> {
            (0..history.len())
                .filter(|&i| history[i].is_completed() == completed)
                .collect()
        };
        let mut known_by_invoke = by(true);
        known_by_invoke.sort_by_key(|&i| (history[i].invoke(), i));
        let mut known_by_ret = by(true);
        known_by_ret.sort_by_key(|&i| (history[i].ret(), i));
        let mut unknown_by_invoke = by(false);
        unknown_by_invoke.sort_by_key(|&i| (history[i].invoke(), i));
        Index {
            read_only,
            slot,
            known_by_invoke,
            known_by_ret,
            unknown_by_invoke,
        }
    }
}

/// One node on the search path.
struct Frame<S> {
    /// The operation linearized to get here; `None` at the root.
    op: Option<usize>,
    /// The model state after the path up to here.
    state: S,
    /// The minimal remaining operations: the known ones first, because a
    /// known operation has to be placed eventually while an unknown one can
    /// be left out, so trying known ones first finds orders sooner.
    candidates: Vec<usize>,
    /// How many of `candidates` have a known outcome.
    known_candidates: usize,
    /// The next candidate to try.
    next: usize,
    /// Positions in [`Index::known_by_ret`] and [`Index::known_by_invoke`]
    /// before which every operation is linearized. Along a path the
    /// linearized set only grows, so children start from their parent's.
    ret_cursor: usize,
    invoke_cursor: usize,
}

/// The state of one run of [`check`].
struct Search<'a, M: Model> {
    model: &'a M,
    history: &'a [Operation<M::Input, M::Output>],
    budget: SearchBudget,
    index: Index,
    /// Linearized operations with a known outcome.
    known: Bits,
    /// Linearized operations with an unknown outcome.
    unknown: Bits,
    /// How many operations with a known outcome are linearized.
    known_done: usize,
    /// The linearized operations, in order.
    path: Vec<usize>,
    /// For each (known set, state) explored, the minimal unknown sets it was
    /// explored with (see the module docs for why a subset dominates).
    memo: HashMap<(Bits, M::State), Vec<Bits>>,
    explored: u64,
    /// The path with the most known operations seen, and its stuck
    /// candidates, for [`Verdict::Violation`].
    best_prefix: Vec<usize>,
    best_stuck: Vec<usize>,
    best_known: usize,
}

impl<'a, M: Model> Search<'a, M> {
    fn new(
        model: &'a M,
        history: &'a [Operation<M::Input, M::Output>],
        budget: SearchBudget,
    ) -> Self {
        let index = Index::new(model, history);
        let known = Bits::new(index.known_by_invoke.len());
        let unknown = Bits::new(index.unknown_by_invoke.len());
        Search {
            model,
            history,
            budget,
            index,
            known,
            unknown,
            known_done: 0,
            path: Vec::new(),
            memo: HashMap::new(),
            explored: 0,
            best_prefix: Vec::new(),
            best_stuck: Vec::new(),
            best_known: 0,
        }
    }

    fn run(mut self) -> Verdict {
        let total_known = self.index.known_by_invoke.len();
        if total_known == 0 {
            // Leaving every unknown operation out explains the history.
            return Verdict::Linearizable { order: Vec::new() };
        }
        let init = self.model.init();
        self.remember(&init);
        let root = self.frame(None, init, 0, 0);
        self.best_stuck = root.candidates[..root.known_candidates].to_vec();
        let mut stack = vec![root];

        while let Some(top) = stack.last_mut() {
            let Some(&op) = top.candidates.get(top.next) else {
                // Every child is explored: backtrack.
                if let Some(op) = top.op {
                    self.unmark(op);
                    self.path.pop();
                }
                stack.pop();
                continue;
            };
            top.next += 1;

            let entry = &self.history[op];
            let Some(state) = self.model.step(&top.state, entry.input(), entry.output()) else {
                continue;
            };
            if !entry.is_completed() && state == top.state {
                // Dominated by leaving the operation out.
                continue;
            }
            let (ret_cursor, invoke_cursor) = (top.ret_cursor, top.invoke_cursor);

            self.mark(op);
            if !self.remember(&state) {
                self.unmark(op);
                continue;
            }
            if self.explored == self.budget.max_states {
                return Verdict::Unknown {
                    explored: self.explored,
                };
            }
            self.explored += 1;
            self.path.push(op);
            if self.known_done == total_known {
                return Verdict::Linearizable { order: self.path };
            }

            let child = self.frame(Some(op), state, ret_cursor, invoke_cursor);
            if self.known_done > self.best_known {
                self.best_known = self.known_done;
                self.best_prefix.clone_from(&self.path);
                self.best_stuck = child.candidates[..child.known_candidates].to_vec();
            }
            stack.push(child);
        }

        Verdict::Violation {
            longest_prefix: self.best_prefix,
            stuck_at: self.best_stuck,
        }
    }

    /// Records the current node in the memo. Returns false if it, or a node
    /// that dominates it, was explored already.
    fn remember(&mut self, state: &M::State) -> bool {
        match self.memo.entry((self.known.clone(), state.clone())) {
            Entry::Vacant(vacant) => {
                vacant.insert(vec![self.unknown.clone()]);
                true
            }
            Entry::Occupied(mut occupied) => {
                let seen = occupied.get_mut();
                if seen.iter().any(|s| s.is_subset(&self.unknown)) {
                    return false;
                }
                // Sets that this one dominates will never prune anything it
                // does not: drop them to keep the list short.
                seen.retain(|s| !self.unknown.is_subset(s));
                if seen.len() == MEMO_SETS_PER_KEY {
                    // Forgetting a node is always sound (it may only be
                    // explored again), and it bounds the scan above.
                    seen.remove(0);
                }
                seen.push(self.unknown.clone());
                true
            }
        }
    }

    fn mark(&mut self, op: usize) {
        let slot = self.index.slot[op];
        if self.history[op].is_completed() {
            self.known.insert(slot);
            self.known_done += 1;
        } else {
            self.unknown.insert(slot);
        }
    }

    fn unmark(&mut self, op: usize) {
        let slot = self.index.slot[op];
        if self.history[op].is_completed() {
            self.known.remove(slot);
            self.known_done -= 1;
        } else {
            self.unknown.remove(slot);
        }
    }

    fn is_marked(&self, op: usize) -> bool {
        let slot = self.index.slot[op];
        if self.history[op].is_completed() {
            self.known.contains(slot)
        } else {
            self.unknown.contains(slot)
        }
    }

    /// The node for the current linearized set, with its candidates.
    fn frame(
        &self,
        op: Option<usize>,
        state: M::State,
        ret_cursor: usize,
        invoke_cursor: usize,
    ) -> Frame<M::State> {
        let index = &self.index;
        let ret_cursor = self.first_unmarked(&index.known_by_ret, ret_cursor);
        let invoke_cursor = self.first_unmarked(&index.known_by_invoke, invoke_cursor);
        // The earliest return among the remaining operations: whatever was
        // invoked after it must wait for it. Unknown outcomes return never.
        let horizon = index
            .known_by_ret
            .get(ret_cursor)
            .and_then(|&i| self.history[i].ret())
            .unwrap_or(u64::MAX);
        let (candidates, known_candidates) = self.candidates(&state, invoke_cursor, horizon);
        Frame {
            op,
            state,
            candidates,
            known_candidates,
            next: 0,
            ret_cursor,
            invoke_cursor,
        }
    }

    /// The first place at or after `cursor` in `order` whose operation is
    /// not linearized yet (the cursors only move forward: everything
    /// before them stays linearized below this node).
    fn first_unmarked(&self, order: &[usize], mut cursor: usize) -> usize {
        while cursor < order.len() && self.is_marked(order[cursor]) {
            cursor += 1;
        }
        cursor
    }

    /// The operations that may go next from `state`: those not linearized
    /// yet and invoked by `horizon`, known outcomes first (in invoke
    /// order), then unknown ones; with how many are known.
    fn candidates(
        &self,
        state: &M::State,
        invoke_cursor: usize,
        horizon: u64,
    ) -> (Vec<usize>, usize) {
        let index = &self.index;
        let invoked_in_time = |&&i: &&usize| self.history[i].invoke() <= horizon;
        let mut candidates: Vec<usize> = index.known_by_invoke[invoke_cursor..]
            .iter()
            .take_while(invoked_in_time)
            .copied()
            .filter(|&i| !self.is_marked(i))
            .collect();
        // A read-only operation the state accepts goes next, alone: every
        // order that places it later can place it here instead (see
        // `Model::is_read_only`), so the alternatives need no exploring.
        let accepted_read = candidates.iter().copied().find(|&i| {
            let entry = &self.history[i];
            index.read_only[i]
                && self
                    .model
                    .step(state, entry.input(), entry.output())
                    .is_some()
        });
        if let Some(read) = accepted_read {
            return (vec![read], 1);
        }
        let known = candidates.len();
        candidates.extend(
            index
                .unknown_by_invoke
                .iter()
                .take_while(invoked_in_time)
                .copied()
                .filter(|&i| !self.is_marked(i)),
        );
        debug_assert!(
            candidates[..known]
                .iter()
                .all(|&i| self.history[i].is_completed()),
            "known candidates come first"
        );
        (candidates, known)
    }
}

#[cfg(test)]
#[path = "linearizability_test.rs"]
mod tests;
