//! History checkers for corral's failure tests.
//!
//! A failure test runs clients against a cluster while it breaks nodes and
//! networks, and records what each client asked, when, and what it was told:
//! a history of [`Operation`]s. This crate decides whether that history could
//! have come from a correct lock service. It is pure: no I/O, no clock, no
//! dependency beyond std.
//!
//! # Linearizability
//! [`check`] is a Wing & Gong search with Lowe's memoization (WGL), generic
//! over a [`Model`], the sequential specification. A history is linearizable
//! when its operations can be put in one order that respects real time (an
//! operation that returned before another was invoked comes first) and in
//! which the model accepts every output the clients saw. Operations whose
//! outcome the client never learnt (timeouts, crashes) may be placed anywhere
//! after their invocation, or left out.
//!
//! # Locks
//! [`FencedMutex`] is the model of one exclusive corral lock: one holder at a
//! time, fencing tokens that rise with every grant, re-acquire answering with
//! a new grant to the same lease, and leases whose expiry frees the lock.
//!
//! # Example
//! ```
//! use corral_check::{check, FencedMutex, MutexInput, MutexOutput, Operation, SearchBudget};
//!
//! let op = |client, invoke, ret, input, output| {
//!     Operation::completed(client, invoke, ret, input, output).expect("valid times")
//! };
//! let history = [
//!     op(1, 0, 10, MutexInput::Acquire { lease: 1 }, MutexOutput::Granted { token: 1 }),
//!     // Waits from 5 and is granted once lease 1 has released at some point
//!     // between 20 and 30.
//!     op(2, 5, 40, MutexInput::Acquire { lease: 2 }, MutexOutput::Granted { token: 2 }),
//!     op(1, 20, 30, MutexInput::Release { lease: 1 }, MutexOutput::Released),
//! ];
//! assert!(check(&FencedMutex, &history, SearchBudget::default()).is_linearizable());
//! ```

mod history;
mod linearizability;
mod model;
mod mutex;
#[cfg(test)]
mod oracle_test;

pub use history::{HistoryError, Operation};
pub use linearizability::{check, SearchBudget, Verdict};
pub use model::Model;
pub use mutex::{FencedMutex, Holder, MutexInput, MutexOutput, MutexState};
