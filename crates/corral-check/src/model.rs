//! The sequential specification a history is checked against.

use std::fmt::Debug;
use std::hash::Hash;

/// A sequential specification: what one operation at a time does to a state.
///
/// A history is linearizable against a model when its operations can be put
/// in one order, consistent with real time, in which every step of the model
/// accepts the output the client saw.
///
/// The checker remembers every (set of linearized operations, state) pair it
/// has explored so that it never explores one twice, which is why a state
/// must be `Eq + Hash` and cheap to clone. Keep it small and canonical: two
/// states that behave the same from now on should compare equal, or the
/// checker explores the same futures twice.
pub trait Model {
    /// The state between operations.
    type State: Clone + Eq + Hash + Debug;
    /// What an operation asks for.
    type Input;
    /// What an operation is told.
    type Output;

    /// The state before the first operation.
    fn init(&self) -> Self::State;

    /// Applies `input` to `state`, given that the client saw `output`.
    ///
    /// Returns the next state, or `None` if the model cannot produce
    /// `output` from `state`: this order of operations does not explain the
    /// history.
    ///
    /// `output == None` means an operation whose outcome is unknown is being
    /// linearized here: accept whatever outcome the model allows and return
    /// the state it leads to. The checker already handles the other
    /// possibility, that the operation never took effect, by leaving it out;
    /// a model whose unknown outcome could lead to several states must fold
    /// them into one (for example with an "unknown" value) that accepts every
    /// continuation any of them would.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// Whether an operation with this input and known output leaves every
    /// state that accepts it unchanged, like a read or a refusal.
    ///
    /// Optional: the default, `false`, is always correct. Answering `true`
    /// lets the checker place such an operation as soon as real time allows
    /// it next and the state accepts it, instead of trying it at every
    /// position: an order that places it later works with it placed there
    /// too, because nothing in between saw a different state. Histories full
    /// of refusals then no longer cost a search over all their interleavings.
    /// It must hold in every state, not just the usual ones, or the checker
    /// may report violations that are not there.
    fn is_read_only(&self, input: &Self::Input, output: &Self::Output) -> bool {
        let _ = (input, output);
        false
    }
}
