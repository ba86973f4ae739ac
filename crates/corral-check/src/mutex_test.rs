//! The lock model, on hand-written histories of the situations a failure
//! test meets, and on random histories of a simulated correct lock.

use std::time::Instant;

use proptest::prelude::*;

use super::*;
use crate::oracle_test::brute_force;
use crate::{check, Operation, SearchBudget, Verdict};

type LockOp = Operation<MutexInput, MutexOutput>;

fn op(lease: u64, invoke: u64, ret: u64, input: MutexInput, output: MutexOutput) -> LockOp {
    Operation::completed(lease, invoke, ret, input, output).expect("valid op")
}

fn granted(lease: u64, invoke: u64, ret: u64, token: u64) -> LockOp {
    op(
        lease,
        invoke,
        ret,
        MutexInput::Acquire { lease },
        MutexOutput::Granted { token },
    )
}

fn busy(lease: u64, invoke: u64, ret: u64) -> LockOp {
    op(
        lease,
        invoke,
        ret,
        MutexInput::Acquire { lease },
        MutexOutput::NotGranted,
    )
}

fn released(lease: u64, invoke: u64, ret: u64) -> LockOp {
    op(
        lease,
        invoke,
        ret,
        MutexInput::Release { lease },
        MutexOutput::Released,
    )
}

fn not_holder(lease: u64, invoke: u64, ret: u64) -> LockOp {
    op(
        lease,
        invoke,
        ret,
        MutexInput::Release { lease },
        MutexOutput::NotHolder,
    )
}

fn lost_acquire(lease: u64, invoke: u64) -> LockOp {
    Operation::unknown(lease, invoke, MutexInput::Acquire { lease })
}

fn expire(lease: u64, invoke: u64) -> LockOp {
    Operation::unknown(lease, invoke, MutexInput::Expire { lease })
}

fn run(history: &[LockOp]) -> Verdict {
    check(&FencedMutex, history, SearchBudget::default())
}

fn order(history: &[LockOp]) -> Vec<usize> {
    match run(history) {
        Verdict::Linearizable { order } => order,
        other => panic!("expected linearizable, got {other:?}"),
    }
}

// ---- the model, step by step -------------------------------------------

#[test]
fn grant_needs_a_free_lock_and_a_new_token() {
    let m = FencedMutex;
    let free = m.init();
    let acquire = MutexInput::Acquire { lease: 1 };
    let held = m
        .step(&free, &acquire, Some(&MutexOutput::Granted { token: 4 }))
        .expect("free lock grants");
    assert_eq!(
        held,
        MutexState {
            holder: Some(Holder {
                lease: 1,
                token: Some(4)
            }),
            last_token: 4
        }
    );
    let other = MutexInput::Acquire { lease: 2 };
    assert_eq!(
        m.step(&held, &other, Some(&MutexOutput::Granted { token: 5 })),
        None
    );
    assert_eq!(
        m.step(&free, &acquire, Some(&MutexOutput::Granted { token: 0 })),
        None,
        "corral's first token is 1"
    );
}

#[test]
fn outputs_of_another_operation_are_rejected() {
    let m = FencedMutex;
    let s = m.init();
    let wrong = [
        (MutexInput::Acquire { lease: 1 }, MutexOutput::Released),
        (
            MutexInput::Release { lease: 1 },
            MutexOutput::Granted { token: 1 },
        ),
        (MutexInput::Expire { lease: 1 }, MutexOutput::NotHolder),
    ];
    for (input, output) in wrong {
        assert_eq!(m.step(&s, &input, Some(&output)), None, "{input:?}");
    }
}

// ---- grants and releases -------------------------------------------------

#[test]
fn sequential_grants_and_releases_are_linearizable() {
    let history = [
        granted(1, 0, 1, 1),
        released(1, 2, 3),
        granted(2, 4, 5, 2),
        released(2, 6, 7),
        granted(1, 8, 9, 7),
        released(1, 10, 11),
    ];
    assert_eq!(order(&history), vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn overlapping_grants_to_two_leases_are_a_violation() {
    // Lease 2 is granted while lease 1 still holds: lease 1's release only
    // starts after lease 2's grant returned.
    let history = [
        granted(1, 0, 10, 1),
        granted(2, 12, 20, 2),
        released(1, 25, 30),
        released(2, 25, 30),
    ];
    assert_eq!(
        run(&history),
        Verdict::Violation {
            longest_prefix: vec![0],
            stuck_at: vec![1],
        }
    );
}

#[test]
fn grant_during_a_concurrent_release_is_linearizable() {
    // Lease 2's acquire is invoked before lease 1's release returned: the
    // release may have taken effect first.
    let history = [
        granted(1, 0, 10, 1),
        released(1, 20, 40),
        granted(2, 30, 50, 2),
    ];
    assert_eq!(order(&history), vec![0, 1, 2]);
}

#[test]
fn waiting_acquire_granted_by_a_later_release_is_linearizable() {
    // Lease 2 starts waiting before lease 1 even got the lock.
    let history = [
        granted(2, 0, 100, 2),
        granted(1, 5, 10, 1),
        released(1, 20, 30),
    ];
    assert_eq!(order(&history), vec![1, 2, 0]);
}

#[test]
fn falling_tokens_are_a_violation() {
    let history = [granted(1, 0, 1, 5), released(1, 2, 3), granted(2, 4, 5, 3)];
    assert_eq!(
        run(&history),
        Verdict::Violation {
            longest_prefix: vec![0, 1],
            stuck_at: vec![2],
        }
    );
}

#[test]
fn a_token_granted_twice_is_a_violation() {
    let history = [granted(1, 0, 1, 5), released(1, 2, 3), granted(2, 4, 5, 5)];
    assert!(run(&history).is_violation());
}

#[test]
fn concurrent_grants_may_take_tokens_in_either_order() {
    // Both acquires overlap; the one with the lower token went first.
    let history = [
        granted(1, 0, 20, 9),
        granted(2, 1, 5, 4),
        released(2, 6, 8),
        released(1, 25, 26),
    ];
    assert_eq!(order(&history), vec![1, 2, 0, 3]);
}

#[test]
fn reacquire_by_the_holder_is_a_new_grant() {
    let history = [granted(1, 0, 1, 3), granted(1, 2, 3, 4), released(1, 4, 5)];
    assert_eq!(order(&history), vec![0, 1, 2]);
}

#[test]
fn reacquire_with_the_same_or_a_lower_token_is_a_violation() {
    for token in [2, 3] {
        let history = [granted(1, 0, 1, 3), granted(1, 2, 3, token)];
        assert!(run(&history).is_violation(), "token {token}");
    }
}

#[test]
fn not_granted_only_while_another_lease_holds() {
    let held_by_other = [granted(1, 0, 1, 1), busy(2, 2, 3)];
    assert_eq!(order(&held_by_other), vec![0, 1]);

    let free = [busy(2, 0, 1)];
    assert!(run(&free).is_violation(), "a free lock is never refused");

    let held_by_self = [granted(1, 0, 1, 1), busy(1, 2, 3)];
    assert!(
        run(&held_by_self).is_violation(),
        "the holder gets its grant"
    );

    // Concurrent with the grant: it may have come before (violation) or
    // after (fine), so the history is linearizable.
    let racing = [granted(1, 0, 10, 1), busy(2, 5, 6)];
    assert_eq!(order(&racing), vec![0, 1]);
}

#[test]
fn release_by_a_lease_that_does_not_hold() {
    let history = [granted(1, 0, 1, 1), not_holder(2, 2, 3), released(1, 4, 5)];
    assert_eq!(order(&history), vec![0, 1, 2]);

    let wrongly_released = [granted(1, 0, 1, 1), released(2, 2, 3)];
    assert!(run(&wrongly_released).is_violation());

    let holder_told_not_holder = [granted(1, 0, 1, 1), not_holder(1, 2, 3)];
    assert!(run(&holder_told_not_holder).is_violation());
}

#[test]
fn an_idempotent_release_frees_the_lock_or_changes_nothing() {
    let if_held = |lease, invoke, ret| {
        op(
            lease,
            invoke,
            ret,
            MutexInput::Release { lease },
            MutexOutput::ReleasedIfHeld,
        )
    };
    // Held: it frees the lock for the next grant.
    let history = [granted(1, 0, 1, 1), if_held(1, 2, 3), granted(2, 4, 5, 2)];
    assert_eq!(order(&history), vec![0, 1, 2]);
    // Not held (say, expired first): no effect, and no violation.
    let history = [granted(1, 0, 1, 1), if_held(2, 2, 3), released(1, 4, 5)];
    assert_eq!(order(&history), vec![0, 1, 2]);
    // But it cannot free a lock another lease holds.
    let history = [granted(1, 0, 1, 1), if_held(2, 2, 3), granted(2, 4, 5, 2)];
    assert!(run(&history).is_violation());
}

// ---- expiry --------------------------------------------------------------

#[test]
fn expiry_frees_the_lock_no_earlier_than_its_invocation() {
    // Lease 1 can no longer prove itself alive from 100 on.
    let base = [granted(1, 0, 10, 1), expire(1, 100)];

    let mut after = base.to_vec();
    after.push(granted(2, 90, 110, 2));
    assert_eq!(order(&after), vec![0, 1, 2]);

    let mut before = base.to_vec();
    before.push(granted(2, 50, 60, 2));
    assert_eq!(
        run(&before),
        Verdict::Violation {
            longest_prefix: vec![0],
            stuck_at: vec![2],
        }
    );

    let without_expiry = [granted(1, 0, 10, 1), granted(2, 90, 110, 2)];
    assert!(run(&without_expiry).is_violation());
}

#[test]
fn expiry_may_happen_long_after_its_invocation() {
    // Lease 2 is refused well after lease 1 could have expired: the expiry
    // had not happened yet.
    let history = [
        granted(1, 0, 10, 1),
        expire(1, 20),
        busy(2, 50, 60),
        granted(2, 70, 80, 2),
    ];
    assert_eq!(order(&history), vec![0, 2, 1, 3]);
}

#[test]
fn expiry_after_a_release_changes_nothing() {
    let history = [
        granted(1, 0, 10, 1),
        released(1, 20, 30),
        expire(1, 40),
        granted(2, 50, 60, 2),
        busy(3, 70, 80),
    ];
    assert_eq!(order(&history), vec![0, 1, 3, 4]);
}

#[test]
fn expired_holder_is_not_the_holder() {
    let history = [granted(1, 0, 10, 1), expire(1, 20), not_holder(1, 30, 40)];
    assert_eq!(order(&history), vec![0, 1, 2]);
}

// ---- acquires with an unknown outcome ------------------------------------

#[test]
fn unknown_acquire_that_must_have_happened() {
    // Lease 1's acquire timed out, yet its release found it holding.
    let history = [lost_acquire(1, 0), released(1, 10, 20)];
    assert_eq!(order(&history), vec![0, 1]);
}

#[test]
fn unknown_acquire_that_did_not_happen() {
    let history = [lost_acquire(1, 0), not_holder(1, 10, 20)];
    assert_eq!(order(&history), vec![1]);
}

#[test]
fn unknown_acquire_cannot_both_hold_and_not_hold() {
    // Lease 2 is refused, so somebody holds: only lease 1's lost acquire
    // can explain it. Then lease 1 is told it does not hold, which needs
    // the lock to have been let go of in between.
    let history = [lost_acquire(1, 0), busy(2, 5, 8), not_holder(1, 10, 20)];
    assert_eq!(
        run(&history),
        Verdict::Violation {
            longest_prefix: vec![0, 1],
            stuck_at: vec![2],
        }
    );

    // With lease 1 expiring in between, it is explained.
    let mut expired = history.to_vec();
    expired.push(expire(1, 9));
    assert_eq!(order(&expired), vec![0, 1, 3, 2]);
}

#[test]
fn token_of_an_unknown_grant_is_learnt_on_reacquire() {
    // Lease 2 is refused, so lease 1's lost acquire took the lock before;
    // lease 1 then acquires again and is told the grant's token.
    let history = [
        lost_acquire(1, 0),
        busy(2, 5, 8),
        granted(1, 10, 20, 5),
        released(1, 30, 40),
        granted(2, 50, 60, 6),
    ];
    assert_eq!(order(&history), vec![0, 1, 2, 3, 4]);

    // Once learnt, the next grant must be above it.
    let mut stale = history.to_vec();
    stale[4] = granted(2, 50, 60, 4);
    assert!(run(&stale).is_violation());

    // And the learnt token must be above every token granted before the
    // lost acquire took the lock.
    let mut before = vec![granted(3, 0, 1, 7), released(3, 2, 3)];
    before.extend(history.iter().map(|op| {
        let shifted = |t: u64| t + 10;
        match op.ret() {
            Some(ret) => Operation::completed(
                op.client(),
                shifted(op.invoke()),
                shifted(ret),
                *op.input(),
                *op.output().expect("known"),
            )
            .expect("valid op"),
            None => Operation::unknown(op.client(), shifted(op.invoke()), *op.input()),
        }
    }));
    assert!(run(&before).is_violation(), "token 5 is not above 7");
}

#[test]
fn later_grants_stay_above_the_last_known_token() {
    // Lease 2's lost acquire took the lock at some point, with a token
    // nobody saw; its expiry let it go. Lease 3's grant must still be
    // above lease 1's token.
    let prefix = [
        granted(1, 0, 1, 5),
        released(1, 2, 3),
        lost_acquire(2, 4),
        busy(4, 5, 6),
        expire(2, 7),
    ];
    let mut above = prefix.to_vec();
    above.push(granted(3, 10, 11, 9));
    assert_eq!(order(&above), vec![0, 1, 2, 3, 4, 5]);

    let mut below = prefix.to_vec();
    below.push(granted(3, 10, 11, 5));
    assert!(run(&below).is_violation());
}

#[test]
fn budget_exhaustion_is_unknown() {
    let history = [granted(1, 0, 1, 1), released(1, 2, 3), granted(2, 4, 5, 2)];
    assert_eq!(
        check(&FencedMutex, &history, SearchBudget::states(2)),
        Verdict::Unknown { explored: 2 }
    );
    assert_eq!(order(&history), vec![0, 1, 2]);
}

// ---- random histories of a simulated correct lock -----------------------

/// The random choices behind one operation of the simulation, kept apart
/// from the simulation so that proptest can shrink them.
#[derive(Clone, Copy, Debug)]
struct Step {
    /// Picks the operation: below 45 acquire, below 80 release, else expire.
    kind: u8,
    /// Which client acts.
    client: usize,
    /// Time from the previous operation's linearization point to this one's.
    gap: u64,
    /// How long before its linearization point the operation was invoked.
    before: u64,
    /// How long after its linearization point it returned.
    after: u64,
    /// Whether the client never learns the outcome.
    lost: bool,
    /// How many tokens other locks took since the last grant, minus one.
    token_gap: u64,
}

/// A correct lock run one operation at a time, recorded with jittered
/// times around each operation's linearization point, so that the history
/// is linearizable by construction.
struct Simulation {
    history: Vec<LockOp>,
    /// Grants whose answer is known (a re-acquire takes a new token too).
    fresh_grants: Vec<usize>,
}

const CLIENTS: usize = 5;

fn simulate(steps: &[Step]) -> Simulation {
    let mut leases: Vec<u64> = (0..CLIENTS as u64).collect();
    let mut next_lease = CLIENTS as u64;
    let mut holder: Option<(u64, u64)> = None;
    let mut token = 0;
    let mut now = 1_000;
    let mut history = Vec::new();
    let mut fresh_grants = Vec::new();

    for step in steps {
        now += step.gap;
        let client = step.client % CLIENTS;
        let lease = leases[client];
        let invoke = now - step.before;
        let ret = now + step.after;
        let record = |input, output| {
            if step.lost {
                Operation::unknown(client as u64, invoke, input)
            } else {
                Operation::completed(client as u64, invoke, ret, input, output).expect("valid op")
            }
        };
        if step.kind < 45 {
            let input = MutexInput::Acquire { lease };
            // Free, or held by this lease (a re-grant): a new token.
            let output = if holder.is_none_or(|(held_by, _)| held_by == lease) {
                token += 1 + step.token_gap;
                holder = Some((lease, token));
                if !step.lost {
                    fresh_grants.push(history.len());
                }
                MutexOutput::Granted { token }
            } else {
                MutexOutput::NotGranted
            };
            history.push(record(input, output));
        } else if step.kind < 80 {
            let input = MutexInput::Release { lease };
            let output = if holder.is_some_and(|(l, _)| l == lease) {
                holder = None;
                MutexOutput::Released
            } else {
                MutexOutput::NotHolder
            };
            history.push(record(input, output));
        } else {
            // Mostly the holder's lease runs out; the client then starts
            // over with a new lease, as a corral client does.
            let lease = match holder {
                Some((l, _)) if step.kind < 95 => l,
                _ => lease,
            };
            if holder.is_some_and(|(l, _)| l == lease) {
                holder = None;
            }
            let owner = leases.iter().position(|&l| l == lease).unwrap_or(client);
            history.push(Operation::unknown(
                owner as u64,
                invoke,
                MutexInput::Expire { lease },
            ));
            leases[owner] = next_lease;
            next_lease += 1;
        }
    }
    Simulation {
        history,
        fresh_grants,
    }
}

/// The simulation's history with one fresh grant claiming the token of an
/// earlier fresh grant to another lease. Such a history is never
/// linearizable: whichever of the two is placed second sees a token that
/// is not above the last one. `None` if there is no such pair.
fn with_duplicated_token(sim: &Simulation) -> Option<Vec<LockOp>> {
    let lease_of = |i: usize| match sim.history[i].input() {
        MutexInput::Acquire { lease } => *lease,
        other => unreachable!("a grant answers an acquire, not {other:?}"),
    };
    let token_of = |i: usize| match sim.history[i].output() {
        Some(MutexOutput::Granted { token }) => *token,
        other => unreachable!("a fresh grant has a token, not {other:?}"),
    };
    let grants = &sim.fresh_grants;
    let pair = grants[grants.len() / 2..]
        .windows(2)
        .find(|pair| lease_of(pair[0]) != lease_of(pair[1]))?;
    let (first, second) = (pair[0], pair[1]);
    let mut history = sim.history.clone();
    let op = &history[second];
    history[second] = Operation::completed(
        op.client(),
        op.invoke(),
        op.ret().expect("a fresh grant returned"),
        *op.input(),
        MutexOutput::Granted {
            token: token_of(first),
        },
    )
    .expect("same times");
    Some(history)
}

/// A small deterministic generator (SplitMix64), so that the big test
/// always checks the same history.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_steps(seed: u64, len: usize, jitter: u64) -> Vec<Step> {
    let mut rng = SplitMix64(seed);
    (0..len)
        .map(|_| Step {
            kind: rng.below(100) as u8,
            client: rng.below(CLIENTS as u64) as usize,
            gap: 1 + rng.below(10),
            before: rng.below(jitter + 1),
            after: rng.below(jitter + 1),
            lost: rng.below(100) < 8,
            token_gap: rng.below(3),
        })
        .collect()
}

/// Checks that `order` replays on the model, keeps real time and places
/// every operation with a known outcome.
fn assert_explains(history: &[LockOp], order: &[usize]) {
    let m = FencedMutex;
    let mut state = m.init();
    for (pos, &i) in order.iter().enumerate() {
        state = m
            .step(&state, history[i].input(), history[i].output())
            .unwrap_or_else(|| panic!("op {i} rejected at position {pos}"));
        assert!(
            order[pos + 1..]
                .iter()
                .all(|&later| !history[later].precedes(&history[i])),
            "op {i} placed after an op that returned before it was invoked"
        );
    }
    let known = history.iter().filter(|op| op.is_completed()).count();
    let placed_known = order.iter().filter(|&&i| history[i].is_completed()).count();
    assert_eq!(placed_known, known);
}

/// The search must stay far below this on a 300-operation history; a
/// budget, unlike a time limit, does not depend on the machine.
const BIG_BUDGET: SearchBudget = SearchBudget::states(20_000);

#[test]
fn random_300_op_history_is_linearizable_and_a_duplicated_token_is_not() {
    let sim = simulate(&random_steps(0x00c0_ffee, 300, 80));
    let history = &sim.history;
    let lost = history.iter().filter(|op| !op.is_completed()).count();
    // Operations with a known outcome that overlap one of them in time
    // (those with an unknown outcome overlap everything after them).
    let widest = history
        .iter()
        .filter(|a| a.is_completed())
        .map(|a| {
            history
                .iter()
                .filter(|b| b.is_completed() && !a.precedes(b) && !b.precedes(a))
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(lost >= 24, "only {lost} operations with an unknown outcome");

    let start = Instant::now();
    let verdict = check(&FencedMutex, history, BIG_BUDGET);
    let accept_time = start.elapsed();
    let Verdict::Linearizable { order } = verdict else {
        panic!("expected linearizable, got {verdict:?}");
    };
    assert_explains(history, &order);

    let broken = with_duplicated_token(&sim).expect("two fresh grants to different leases");
    let start = Instant::now();
    let verdict = check(&FencedMutex, &broken, BIG_BUDGET);
    let reject_time = start.elapsed();
    assert!(
        verdict.is_violation(),
        "expected a violation, got {verdict:?}"
    );

    eprintln!(
        "300 ops ({lost} unknown, up to {widest} overlapping one op): \
         accepted in {accept_time:?}, duplicated token rejected in {reject_time:?}"
    );
}

fn step() -> impl Strategy<Value = Step> {
    (
        0u8..100,
        0..CLIENTS,
        1u64..10,
        0u64..30,
        0u64..30,
        prop::bool::weighted(0.1),
        0u64..3,
    )
        .prop_map(|(kind, client, gap, before, after, lost, token_gap)| Step {
            kind,
            client,
            gap,
            before,
            after,
            lost,
            token_gap,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn simulated_histories_are_linearizable(steps in prop::collection::vec(step(), 0..120)) {
        let sim = simulate(&steps);
        match check(&FencedMutex, &sim.history, BIG_BUDGET) {
            Verdict::Linearizable { order } => assert_explains(&sim.history, &order),
            other => prop_assert!(false, "expected linearizable, got {:?}", other),
        }
    }

    #[test]
    fn simulated_histories_with_a_duplicated_token_are_not(
        steps in prop::collection::vec(step(), 0..120),
    ) {
        let sim = simulate(&steps);
        if let Some(broken) = with_duplicated_token(&sim) {
            let verdict = check(&FencedMutex, &broken, BIG_BUDGET);
            prop_assert!(verdict.is_violation(), "expected a violation, got {:?}", verdict);
        }
    }
}

// ---- small random histories against a brute-force oracle ----------------

/// Any operation on three leases with any plausible answer, so that most
/// histories are wrong in some way, and the checker must agree with the
/// oracle on every one. This also checks that the read-only hint of the
/// model is right: the oracle does not use it.
fn any_lock_op() -> impl Strategy<Value = LockOp> {
    let input = (0u8..3, 0u64..3).prop_map(|(kind, lease)| match kind {
        0 => MutexInput::Acquire { lease },
        1 => MutexInput::Release { lease },
        _ => MutexInput::Expire { lease },
    });
    let output = (0u8..5, 1u64..4).prop_map(|(kind, token)| match kind {
        0 => MutexOutput::Granted { token },
        1 => MutexOutput::NotGranted,
        2 => MutexOutput::Released,
        3 => MutexOutput::NotHolder,
        _ => MutexOutput::Expired,
    });
    (input, output, 0u64..20, 0u64..8, prop::bool::weighted(0.3)).prop_map(
        |(input, output, invoke, length, lost)| {
            if lost {
                Operation::unknown(0, invoke, input)
            } else {
                Operation::completed(0, invoke, invoke + length, input, output).expect("valid op")
            }
        },
    )
}

/// A simulated (so linearizable) history with maybe one answer changed,
/// which makes it wrong about half of the time, and rarely obviously so.
fn nearly_right_history() -> impl Strategy<Value = Vec<LockOp>> {
    let answer = (0u8..4, 1u64..12).prop_map(|(kind, token)| match kind {
        0 => MutexOutput::Granted { token },
        1 => MutexOutput::NotGranted,
        2 => MutexOutput::Released,
        _ => MutexOutput::NotHolder,
    });
    (
        prop::collection::vec(step(), 0..8),
        prop::option::of((any::<prop::sample::Index>(), answer)),
    )
        .prop_map(|(steps, change)| {
            let mut history = simulate(&steps).history;
            if let (Some((at, answer)), false) = (change, history.is_empty()) {
                let at = at.index(history.len());
                let op = &history[at];
                if let Some(ret) = op.ret() {
                    history[at] =
                        Operation::completed(op.client(), op.invoke(), ret, *op.input(), answer)
                            .expect("same times");
                }
            }
            history
        })
}

fn agrees_with_brute_force(history: &[LockOp]) -> Result<(), TestCaseError> {
    let expected = brute_force(&FencedMutex, history);
    let verdict = check(&FencedMutex, history, SearchBudget::default());
    prop_assert_eq!(verdict.is_linearizable(), expected, "{:?}", verdict);
    if let Verdict::Linearizable { order } = &verdict {
        assert_explains(history, order);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_histories_agree_with_brute_force(
        history in prop::collection::vec(any_lock_op(), 0..8),
    ) {
        agrees_with_brute_force(&history)?;
    }

    #[test]
    fn nearly_right_histories_agree_with_brute_force(history in nearly_right_history()) {
        agrees_with_brute_force(&history)?;
    }
}
