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
mod tests {
    use super::*;

    #[test]
    fn completed_keeps_its_fields() {
        let op = Operation::completed(7, 10, 20, "in", "out").expect("valid");
        assert_eq!(op.client(), 7);
        assert_eq!(op.invoke(), 10);
        assert_eq!(op.ret(), Some(20));
        assert_eq!(*op.input(), "in");
        assert_eq!(op.output(), Some(&"out"));
        assert!(op.is_completed());
    }

    #[test]
    fn instant_operation_is_valid() {
        assert!(Operation::completed(1, 5, 5, (), ()).is_ok());
    }

    #[test]
    fn return_before_invoke_is_an_error() {
        let err = Operation::completed(3, 10, 9, (), ()).expect_err("invalid");
        assert_eq!(
            err,
            HistoryError::ReturnBeforeInvoke {
                client: 3,
                invoke: 10,
                ret: 9
            }
        );
        assert!(err.to_string().contains("before it was invoked"));
    }

    #[test]
    fn unknown_has_neither_return_nor_output() {
        let op: Operation<&str, ()> = Operation::unknown(2, 4, "in");
        assert_eq!(op.ret(), None);
        assert_eq!(op.output(), None);
        assert!(!op.is_completed());
    }

    #[test]
    fn precedence_is_strict_and_unknown_precedes_nothing() {
        let a = Operation::completed(1, 0, 10, (), ()).expect("valid");
        let b = Operation::completed(2, 11, 12, (), ()).expect("valid");
        let c = Operation::completed(3, 10, 12, (), ()).expect("valid");
        let u: Operation<(), ()> = Operation::unknown(4, 0, ());
        assert!(a.precedes(&b));
        assert!(!b.precedes(&a));
        assert!(!a.precedes(&c), "touching at one instant is concurrent");
        assert!(!u.precedes(&b));
    }
}
