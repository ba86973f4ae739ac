//! A brute-force linearizability oracle for the tests: every order is
//! tried, with no memo and no pruning, so that it is obviously right and
//! the checker can be compared with it on small histories.

use crate::{Model, Operation};

/// Whether some order of a subset of `history` that holds every operation
/// with a known outcome respects real time and is accepted by `model`.
pub(crate) fn brute_force<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> bool {
    let mut placed = vec![false; history.len()];
    search(model, history, &mut placed, model.init())
}

fn search<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    placed: &mut [bool],
    state: M::State,
) -> bool {
    let all_known = history
        .iter()
        .zip(placed.iter())
        .all(|(op, &p)| p || !op.is_completed());
    if all_known {
        return true;
    }
    for next in 0..history.len() {
        let ready = !placed[next]
            && (0..history.len())
                .all(|before| placed[before] || !history[before].precedes(&history[next]));
        if !ready {
            continue;
        }
        let op = &history[next];
        if let Some(after) = model.step(&state, op.input(), op.output()) {
            placed[next] = true;
            let found = search(model, history, placed, after);
            placed[next] = false;
            if found {
                return true;
            }
        }
    }
    false
}
