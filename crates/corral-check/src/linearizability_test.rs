//! The generic checker against a read/write register, the classic examples
//! of the linearizability literature.

use proptest::prelude::*;

use super::*;
use crate::oracle_test::brute_force;

/// A register holding one integer, initially 0.
struct Register;

/// The same register without the read-only hint, to check that the hint
/// changes how fast the checker answers, never what it answers.
struct PlainRegister;

impl Model for PlainRegister {
    type State = i64;
    type Input = Op;
    type Output = Out;

    fn init(&self) -> i64 {
        Register.init()
    }

    fn step(&self, state: &i64, input: &Op, output: Option<&Out>) -> Option<i64> {
        Register.step(state, input, output)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Read,
    Write(i64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Out {
    Value(i64),
    Ok,
}

impl Model for Register {
    type State = i64;
    type Input = Op;
    type Output = Out;

    fn init(&self) -> i64 {
        0
    }

    fn step(&self, state: &i64, input: &Op, output: Option<&Out>) -> Option<i64> {
        match (input, output) {
            (Op::Read, Some(Out::Value(v))) => (v == state).then_some(*state),
            (Op::Read, None) => Some(*state),
            (Op::Write(v), Some(Out::Ok) | None) => Some(*v),
            _ => None,
        }
    }

    fn is_read_only(&self, input: &Op, _output: &Out) -> bool {
        matches!(input, Op::Read)
    }
}

type RegOp = Operation<Op, Out>;

fn write(client: u64, invoke: u64, ret: u64, v: i64) -> RegOp {
    Operation::completed(client, invoke, ret, Op::Write(v), Out::Ok).expect("valid op")
}

fn read(client: u64, invoke: u64, ret: u64, v: i64) -> RegOp {
    Operation::completed(client, invoke, ret, Op::Read, Out::Value(v)).expect("valid op")
}

fn lost_write(client: u64, invoke: u64, v: i64) -> RegOp {
    Operation::unknown(client, invoke, Op::Write(v))
}

fn run(history: &[RegOp]) -> Verdict {
    check(&Register, history, SearchBudget::default())
}

/// Replays `order` on the register and checks it explains every known
/// operation of `history` and respects real time.
fn assert_valid_order(history: &[RegOp], order: &[usize]) {
    let mut state = Register.init();
    for (pos, &i) in order.iter().enumerate() {
        state = Register
            .step(&state, history[i].input(), history[i].output())
            .unwrap_or_else(|| panic!("op {i} rejected at position {pos}"));
        for &later in &order[pos + 1..] {
            assert!(
                !history[later].precedes(&history[i]),
                "op {later} returned before op {i} was invoked"
            );
        }
    }
    for (i, op) in history.iter().enumerate() {
        if op.is_completed() {
            assert!(order.contains(&i), "known op {i} left out");
        }
    }
}

#[test]
fn empty_history_is_linearizable() {
    assert_eq!(run(&[]), Verdict::Linearizable { order: vec![] });
}

#[test]
fn only_unknown_operations_are_linearizable_by_leaving_them_out() {
    let history = [lost_write(1, 0, 5), lost_write(2, 3, 6)];
    assert_eq!(run(&history), Verdict::Linearizable { order: vec![] });
}

#[test]
fn sequential_history_keeps_its_order() {
    let history = [
        write(1, 0, 1, 1),
        read(2, 2, 3, 1),
        write(1, 4, 5, 2),
        read(2, 6, 7, 2),
    ];
    assert_eq!(
        run(&history),
        Verdict::Linearizable {
            order: vec![0, 1, 2, 3]
        }
    );
}

#[test]
fn concurrent_reads_may_see_either_side_of_a_write() {
    // W(1) spans 0..10; one read during it sees the old value, a later
    // overlapping read sees the new one, and a read after sees the new one.
    let history = [
        write(1, 0, 10, 1),
        read(2, 1, 3, 0),
        read(3, 4, 12, 1),
        read(2, 11, 13, 1),
    ];
    let Verdict::Linearizable { order } = run(&history) else {
        panic!("expected linearizable");
    };
    assert_valid_order(&history, &order);
}

#[test]
fn concurrent_writes_may_take_effect_in_either_order() {
    // Both writes overlap; the reads after them agree the last was W(1),
    // so W(2) must be placed first even though it was invoked second.
    let history = [
        write(1, 0, 10, 1),
        write(2, 2, 8, 2),
        read(3, 5, 9, 2),
        read(3, 11, 12, 1),
    ];
    let Verdict::Linearizable { order } = run(&history) else {
        panic!("expected linearizable");
    };
    assert_valid_order(&history, &order);
    assert_eq!(order, vec![1, 2, 0, 3]);
}

#[test]
fn stale_read_is_a_violation() {
    let history = [write(1, 0, 5, 1), write(1, 6, 10, 2), read(2, 11, 15, 1)];
    assert_eq!(
        run(&history),
        Verdict::Violation {
            longest_prefix: vec![0, 1],
            stuck_at: vec![2],
        }
    );
}

#[test]
fn reads_that_flip_back_are_a_violation() {
    // Two reads overlap one write; once one read has seen the new value a
    // later read must not see the old one.
    let history = [write(1, 0, 20, 1), read(2, 1, 5, 1), read(3, 6, 10, 0)];
    assert!(run(&history).is_violation());
}

#[test]
fn unknown_write_that_must_have_happened() {
    let history = [write(1, 0, 5, 1), lost_write(2, 6, 2), read(3, 10, 15, 2)];
    assert_eq!(
        run(&history),
        Verdict::Linearizable {
            order: vec![0, 1, 2]
        }
    );
}

#[test]
fn unknown_write_that_must_be_left_out() {
    // The write was invoked at 7 and never confirmed; a read long after it
    // still sees the old value, so it never took effect.
    let history = [
        write(1, 0, 5, 1),
        lost_write(2, 7, 2),
        read(3, 8, 10, 1),
        read(3, 30, 35, 1),
    ];
    assert_eq!(
        run(&history),
        Verdict::Linearizable {
            order: vec![0, 2, 3]
        }
    );
}

#[test]
fn unknown_write_may_take_effect_late() {
    // The write's client gave up at once, but the write landed between
    // the two reads.
    let history = [lost_write(1, 0, 7), read(2, 10, 11, 0), read(2, 20, 21, 7)];
    assert_eq!(
        run(&history),
        Verdict::Linearizable {
            order: vec![1, 0, 2]
        }
    );
}

#[test]
fn unknown_write_cannot_take_effect_before_its_invocation() {
    let history = [read(1, 0, 5, 2), lost_write(2, 6, 2)];
    assert_eq!(
        run(&history),
        Verdict::Violation {
            longest_prefix: vec![],
            stuck_at: vec![0],
        }
    );
}

#[test]
fn unknown_write_cannot_explain_two_values() {
    let history = [
        lost_write(1, 0, 3),
        read(2, 1, 2, 3),
        read(2, 4, 5, 0),
        read(2, 6, 7, 3),
    ];
    assert!(run(&history).is_violation());
}

#[test]
fn budget_exhaustion_is_unknown() {
    let history = [write(1, 0, 5, 1), write(1, 6, 10, 2), read(2, 11, 15, 1)];
    assert_eq!(
        check(&Register, &history, SearchBudget::states(1)),
        Verdict::Unknown { explored: 1 }
    );
    assert_eq!(
        check(&Register, &history, SearchBudget::states(0)),
        Verdict::Unknown { explored: 0 }
    );
}

#[test]
fn retried_unknown_writes_of_one_value_stay_cheap() {
    // Forty timed-out retries of one write: once one of them is placed the
    // others change nothing, so they are never tried on top of it. Without
    // that, the search would try every subset of them before giving up on
    // the read that flips back.
    let mut history: Vec<RegOp> = (0..40).map(|c| lost_write(c, c, 1)).collect();
    history.push(read(100, 100, 101, 1));
    history.push(read(100, 110, 111, 0));
    let verdict = check(&Register, &history, SearchBudget::states(1_000));
    assert_eq!(
        verdict,
        Verdict::Violation {
            longest_prefix: vec![0, 40],
            stuck_at: vec![41],
        }
    );
}

#[test]
fn unknown_writes_that_undo_each_other_stay_cheap() {
    // Twenty lost writes of 1 and twenty of 0, all concurrent, then a read
    // of a value nobody wrote. Writing 1 then 0 comes back to the state
    // before with more operations used, which the memo recognises as
    // dominated, so only one write of 1 at a time is ever tried.
    let mut history: Vec<RegOp> = (0..40).map(|c| lost_write(c, c, (c % 2) as i64)).collect();
    history.push(read(100, 100, 101, 5));
    let verdict = check(&Register, &history, SearchBudget::states(100));
    assert_eq!(
        verdict,
        Verdict::Violation {
            longest_prefix: vec![],
            stuck_at: vec![40],
        }
    );
}

#[test]
fn long_sequential_history_does_not_overflow_the_stack() {
    // The search is iterative: thousands of operations deep is fine.
    let history: Vec<RegOp> = (0..5_000u64)
        .map(|i| {
            let v = (i / 2) as i64;
            if i % 2 == 0 {
                write(1, 2 * i, 2 * i + 1, v)
            } else {
                read(2, 2 * i, 2 * i + 1, v)
            }
        })
        .collect();
    let Verdict::Linearizable { order } = run(&history) else {
        panic!("expected linearizable");
    };
    assert_eq!(order, (0..5_000).collect::<Vec<_>>());
}

#[test]
fn long_violation_reports_where_it_got_stuck() {
    // A stale read at the very end of a long history: the prefix is all
    // of the history but the read, which is the one stuck.
    let mut history: Vec<RegOp> = (0..3_000u64)
        .map(|i| write(1, 2 * i, 2 * i + 1, i as i64))
        .collect();
    history.push(read(2, 10_000, 10_001, 5));
    let Verdict::Violation {
        longest_prefix,
        stuck_at,
    } = run(&history)
    else {
        panic!("expected violation");
    };
    assert_eq!(longest_prefix, (0..3_000).collect::<Vec<_>>());
    assert_eq!(stuck_at, vec![3_000]);
}

#[test]
fn many_concurrent_reads_stay_cheap() {
    // Sixty reads overlapping each other and two writes: with reads placed
    // as soon as they fit, the search barely branches.
    let mut history = vec![write(1, 0, 1, 1), write(1, 200, 201, 2)];
    for c in 0..60u64 {
        history.push(read(10 + c, 2 + c, 150 + c, 1));
    }
    history.push(read(99, 300, 301, 2));
    let Verdict::Linearizable { order } = check(&Register, &history, SearchBudget::states(1_000))
    else {
        panic!("expected linearizable");
    };
    assert_valid_order(&history, &order);
    // Without the hint the same history is answered the same, only slower.
    assert!(check(&PlainRegister, &history, SearchBudget::default()).is_linearizable());
}

// ---- against a brute-force oracle -----------------------------------------

fn register_op() -> impl Strategy<Value = RegOp> {
    (
        0u64..20,
        0u64..8,
        prop::bool::ANY,
        0i64..3,
        prop::bool::weighted(0.25),
    )
        .prop_map(|(invoke, length, is_write, v, lost)| {
            let (input, output) = if is_write {
                (Op::Write(v), Out::Ok)
            } else {
                (Op::Read, Out::Value(v))
            };
            if lost {
                Operation::unknown(0, invoke, input)
            } else {
                Operation::completed(0, invoke, invoke + length, input, output).expect("valid op")
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn agrees_with_brute_force(history in prop::collection::vec(register_op(), 0..8)) {
        let expected = brute_force(&Register, &history);
        let verdict = check(&Register, &history, SearchBudget::default());
        prop_assert_eq!(verdict.is_linearizable(), expected, "{:?}", verdict);
        if let Verdict::Linearizable { order } = &verdict {
            assert_valid_order(&history, order);
        }
        let plain = check(&PlainRegister, &history, SearchBudget::default());
        prop_assert_eq!(plain.is_linearizable(), expected, "{:?}", plain);
    }
}
