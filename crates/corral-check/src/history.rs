//! One recorded operation of a concurrent history.

use std::fmt;

/// One operation as a test client saw it: when it was invoked, when (and
/// whether) it returned, what it asked and what it was told.
///
/// Times are a monotonic clock shared by every client of the test, for
/// example nanoseconds since the test started. Only their order matters.
///
/// The fields are private so that every `Operation` is valid by
/// construction: an operation that returned did so no earlier than it was
/// invoked, and it has an output exactly when it has a return time. The
/// checker can then trust its input and never has to fail on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    client: u64,
    invoke: u64,
    ret: Option<u64>,
    input: I,
    output: Option<O>,
}

impl<I, O> Operation<I, O> {
    /// An operation that returned `output` at time `ret`.
    ///
    /// Fails if `ret` is before `invoke`, which would mean a broken clock or
    /// a broken recorder: the checker would otherwise order operations by
    /// nonsense times and report violations that never happened.
    pub fn completed(
        client: u64,
        invoke: u64,
        ret: u64,
        input: I,
        output: O,
    ) -> Result<Self, HistoryError> {
        if ret < invoke {
            return Err(HistoryError::ReturnBeforeInvoke {
                client,
                invoke,
                ret,
            });
        }
        Ok(Operation {
            client,
            invoke,
            ret: Some(ret),
            input,
            output: Some(output),
        })
    }

    /// An operation whose outcome the client never learnt (a timeout, a
    /// dropped connection, a crash).
    ///
    /// It may have taken effect at any moment after `invoke`, or never: the
    /// checker treats its return time as infinite and may leave it out.
    pub fn unknown(client: u64, invoke: u64, input: I) -> Self {
        Operation {
            client,
            invoke,
            ret: None,
            input,
            output: None,
        }
    }

    /// The client that issued the operation. Informational only: the
    /// checker orders operations by time, not by client.
    pub fn client(&self) -> u64 {
        self.client
    }

    /// When the operation was invoked.
    pub fn invoke(&self) -> u64 {
        self.invoke
    }

    /// When the operation returned, or `None` if its outcome is unknown.
    pub fn ret(&self) -> Option<u64> {
        self.ret
    }

    /// What the operation asked for.
    pub fn input(&self) -> &I {
        &self.input
    }

    /// What the operation was told, or `None` if its outcome is unknown.
    /// `None` exactly when [`Operation::ret`] is `None`.
    pub fn output(&self) -> Option<&O> {
        self.output.as_ref()
    }

    /// Whether the outcome is known (the operation returned).
    pub fn is_completed(&self) -> bool {
        self.ret.is_some()
    }

    /// Whether this operation must take effect before `other` in every
    /// linearization: it returned before `other` was invoked.
    ///
    /// The comparison is strict, so operations that touch at one instant
    /// count as concurrent; an unknown outcome never precedes anything.
    pub fn precedes<J, P>(&self, other: &Operation<J, P>) -> bool {
        self.ret.is_some_and(|ret| ret < other.invoke)
    }
}

/// Why an operation could not be recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistoryError {
    /// The operation returned before it was invoked.
    ReturnBeforeInvoke {
        /// The client that issued it.
        client: u64,
        /// When it was invoked.
        invoke: u64,
        /// When it claims to have returned.
        ret: u64,
    },
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryError::ReturnBeforeInvoke {
                client,
                invoke,
                ret,
            } => write!(
                f,
                "operation of client {client} returned at {ret}, before it was invoked at {invoke}"
            ),
        }
    }
}

impl std::error::Error for HistoryError {}

#[cfg(test)]
#[path = "history_test.rs"]
mod tests;
