//! Properties over random command sequences: every invariant after every
//! command, rising tokens, all-or-nothing acquire-all, replicas that agree,
//! no wait that ends without a reason, and the sweep's overdue waits and
//! due lock-delays as a walk over every lock finds them; and, for commands
//! with values at and past their bounds under a clock that jumps, no
//! panic.

use std::collections::BTreeSet;

use proptest::prelude::*;

use crate::arbitrary::{caller, command, extreme_command, lock_command};
use crate::idempotency::Recall;
use crate::*;

/// A wait somewhere: (kind, lease, name).
type Wait = (Kind, LeaseId, LockName);

fn waits_of(table: &LockTable) -> BTreeSet<Wait> {
    table
        .leases()
        .flat_map(|(id, lease)| {
            [Kind::Lock, Kind::Semaphore]
                .into_iter()
                .flat_map(move |kind| {
                    lease
                        .waited(kind)
                        .iter()
                        .map(move |n| (kind, *id, n.clone()))
                })
        })
        .collect()
}

/// The overdue waits, oldest deadline first, and whether a lock-delay is
/// due, at `now_ms`, found by walking every lock and queue: what the
/// sweep's indexed queries must answer.
fn due_by_walk(table: &LockTable, now_ms: u64) -> (Vec<Wait>, bool) {
    let mut overdue = Vec::new();
    let mut delay_due = false;
    for kind in Kind::ALL {
        for (name, lock) in table.with_prefix(kind, "") {
            for w in lock.waiters.iter().filter(|w| w.deadline_ms < now_ms) {
                overdue.push((w.deadline_ms, kind, w.lease_id, name.clone()));
            }
            delay_due |= lock.delayed_until_ms > 0 && lock.delayed_until_ms <= now_ms;
        }
    }
    overdue.sort();
    let overdue = overdue
        .into_iter()
        .map(|(_, kind, id, name)| (kind, id, name));
    (overdue.collect(), delay_due)
}

/// Whether the sweep's queries answer at times around `now_ms` (the
/// random commands wait 100 ms and delay 200 ms) as the walk does.
fn sweep_agrees_with_walk(table: &LockTable, now_ms: u64) -> Result<(), TestCaseError> {
    for at_ms in (0..=400)
        .step_by(25)
        .map(|ms| (now_ms + ms).saturating_sub(100))
    {
        let indexed = (
            table.overdue_waiters(at_ms),
            table.has_due_lock_delays(at_ms),
        );
        prop_assert_eq!(indexed, due_by_walk(table, at_ms), "at {} ms", at_ms);
    }
    Ok(())
}

/// `value` through its JSON encoding and back.
pub(super) fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let bytes = serde_json::to_vec(value).expect("every state-machine type encodes");
    serde_json::from_slice(&bytes).expect("what was encoded decodes")
}

/// The table as a replica that installs it as a snapshot holds it.
pub(super) fn restored(table: &LockTable) -> LockTable {
    let mut restored: LockTable = round_trip(table);
    restored.rebuild_derived();
    assert_eq!(
        &restored, table,
        "a snapshot restores the table it was taken of"
    );
    restored
}

/// Every wait that ended in this step, with the reason the step gives.
fn ended_waits(events: &[Event]) -> BTreeSet<Wait> {
    let mut ended = BTreeSet::new();
    for event in events {
        match event {
            Event::Granted { kind, grant } => {
                ended.insert((*kind, grant.lease_id, grant.name.clone()));
            }
            Event::GrantedAll(grants) => {
                for g in grants {
                    ended.insert((Kind::Lock, g.lease_id, g.name.clone()));
                }
            }
            Event::WaitEnded {
                kind,
                lease_id,
                name,
            } => {
                ended.insert((*kind, *lease_id, name.clone()));
            }
            Event::Withdrawn { lease_id, names } => {
                for name in names {
                    ended.insert((Kind::Lock, *lease_id, name.clone()));
                }
            }
            // Claims of queue items are not lock waits.
            Event::ItemsClaimed { .. }
            | Event::ClaimWaitEnded { .. }
            | Event::ItemReturned { .. }
            | Event::ItemLeft { .. } => {}
        }
    }
    ended
}

/// Whether the command is one that withdraws waits of `lease`.
fn withdraws(command: &Command, lease: LeaseId) -> bool {
    matches!(command,
        Command::CancelWait { lease_id, .. }
            | Command::CancelWaitAll { lease_id, .. }
            | Command::Resign { lease_id, .. }
            if *lease_id == lease)
}

/// The locks `lease_id` holds, less those that earlier waits of it were
/// granted in this step (a lock-delay the step lifted hands the lock to its
/// queue before the command itself is looked at).
fn held_but_just_granted(
    table: &LockTable,
    applied: &Applied,
    lease_id: LeaseId,
) -> Option<NameSet> {
    let ended = ended_waits(&applied.events);
    table.lease(lease_id).map(|l| {
        l.holds
            .iter()
            .filter(|n| !ended.contains(&(Kind::Lock, lease_id, (*n).clone())))
            .cloned()
            .collect()
    })
}

/// Whether `proposal` carries an idempotency key that `table` answers from
/// memory (a retry or a mismatch) instead of applying the command.
fn answered_from_memory(table: &LockTable, proposal: &Proposal) -> bool {
    let Some(idempotency) = &proposal.idempotency else {
        return false;
    };
    let mut remembered = table.remembered.clone();
    remembered.forget_expired(table.now_ms().max(proposal.now_ms));
    !matches!(remembered.recall(idempotency), Recall::New)
}

/// The tokens this step handed out: grants and claims of queue items.
fn new_tokens(applied: &Applied, last: FencingToken) -> Vec<FencingToken> {
    let of_claims = |items: &[ClaimedItem]| -> Vec<FencingToken> {
        items.iter().map(|i| i.fencing_token).collect()
    };
    let mut tokens: Vec<FencingToken> = applied
        .events
        .iter()
        .flat_map(|e| match e {
            Event::Granted { grant, .. } => vec![grant.fencing_token],
            Event::GrantedAll(grants) => grants.iter().map(|g| g.fencing_token).collect(),
            Event::ItemsClaimed { items, .. } => of_claims(items),
            Event::WaitEnded { .. }
            | Event::Withdrawn { .. }
            | Event::ClaimWaitEnded { .. }
            | Event::ItemReturned { .. }
            | Event::ItemLeft { .. } => vec![],
        })
        .collect();
    match &applied.response {
        Ok(Outcome::Granted(g)) => tokens.push(g.fencing_token),
        Ok(Outcome::GrantedAll { grants }) => tokens.extend(grants.iter().map(|g| g.fencing_token)),
        Ok(Outcome::Claimed { items }) => tokens.extend(of_claims(items)),
        _ => {}
    }
    tokens.retain(|t| *t > last);
    tokens.sort();
    // A request can be answered with the grant an event of the same step
    // reports (a lifted lock-delay granted its waiting lease first).
    tokens.dedup();
    tokens
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Over any command sequence: invariants hold (exclusive means alone, no
    /// more permits than the limit, no stranded queue head, no cycle in the
    /// wait-for graph), tokens rise strictly in grant order, an acquire-all
    /// takes all its locks or none, every wait that ends has a reason, and
    /// replaying the same log gives the same table and answers. At the end,
    /// lifting every delay and revoking every lease empties the table.
    #[test]
    fn any_sequence_keeps_the_invariants(
        commands in prop::collection::vec(
            (
                0u64..50,
                command(),
                prop::option::of(prop::sample::select(vec!["x", "y"])),
                prop::bool::weighted(0.1),
                caller(),
            ),
            1..150,
        )
    ) {
        let mut table = LockTable::new();
        let mut replica = LockTable::new();
        let mut last = FencingToken(0);
        let mut now_ms = 0;
        for (step_ms, command, key, snapshot_here, caller) in commands {
            now_ms += step_ms;
            let before = table.clone();
            let mut proposal = Proposal::new(now_ms, command.clone());
            proposal.caller = caller;
            // A few idempotency keys over random commands: the same key
            // with the same command is a retry, with another a mismatch.
            proposal.idempotency = key.map(|key| Idempotency {
                key: key.into(),
                fingerprint: fingerprint(&[format!("{command:?}").as_bytes()]),
                window_ms: 200,
            });
            let retried = answered_from_memory(&before, &proposal);
            let applied = table.apply(proposal.clone());
            prop_assert_eq!(&applied, &replica.apply(proposal));
            // Every answer may be forwarded and remembered, and every state
            // may be a snapshot: both must survive their encoding.
            prop_assert_eq!(&round_trip(&applied.response), &applied.response);
            if snapshot_here {
                replica = restored(&table);
            }
            sweep_agrees_with_walk(&table, now_ms)?;
            sweep_agrees_with_walk(&replica, now_ms)?;
            if retried {
                // A remembered answer: nothing but time and the memory of
                // answers may change.
                prop_assert_eq!(table.last_token(), before.last_token());
                prop_assert!(applied.events.is_empty());
                continue;
            }
            table
                .check_invariants()
                .map_err(|broken| TestCaseError::fail(broken.to_string()))?;

            // A restore takes the backup's counter, never a lower one.
            if let Ok(Outcome::Restored { last_token }) = &applied.response {
                prop_assert!(*last_token >= last, "restored to {} after {}", last_token, last);
                last = *last_token;
            }
            for token in new_tokens(&applied, last) {
                prop_assert!(token > last, "token {} after {}", token, last);
                last = token;
            }
            prop_assert_eq!(table.last_token(), last);

            if let Command::AcquireAll { lease_id, names, .. } = &command {
                let asked: BTreeSet<LockName> = names.iter().cloned().collect();
                let lease = table.lease(*lease_id);
                match &applied.response {
                    Ok(Outcome::GrantedAll { grants }) => {
                        let got: BTreeSet<LockName> = grants.iter().map(|g| g.name.clone()).collect();
                        prop_assert_eq!(&got, &asked);
                    }
                    Ok(Outcome::Queued { .. }) => {
                        let lease = lease.expect("a queued lease lives");
                        let held = asked.iter().filter(|n| lease.holds.contains(n)).count();
                        let waited = asked.iter().filter(|n| lease.waits.contains(n)).count();
                        prop_assert_eq!(held + waited, asked.len());
                        prop_assert!(waited > 0);
                        prop_assert_eq!(
                            held_but_just_granted(&table, &applied, *lease_id),
                            before.lease(*lease_id).map(|l| l.holds.clone()),
                            "a waiting acquire-all took nothing new"
                        );
                    }
                    Err(_) => {
                        prop_assert_eq!(
                            held_but_just_granted(&table, &applied, *lease_id),
                            before.lease(*lease_id).map(|l| l.holds.clone()),
                            "a refused acquire-all took nothing"
                        );
                    }
                    Ok(other) => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            for event in &applied.events {
                if let Event::GrantedAll(grants) = event {
                    for g in grants {
                        let holds = table.lease(g.lease_id).is_some_and(|l| l.holds.contains(&g.name));
                        prop_assert!(holds, "an acquire-all was granted all at once");
                    }
                }
            }

            let ended = ended_waits(&applied.events);
            let now = waits_of(&table);
            for wait in waits_of(&before).difference(&now) {
                prop_assert!(
                    ended.contains(wait) || withdraws(&command, wait.1),
                    "wait {:?} ended without a reason by {:?}", wait, command
                );
            }
        }
        prop_assert_eq!(&table, &replica);
        restored(&table);

        now_ms += LOCK_DELAY_MS_MAX + 1;
        table.apply(Proposal::new(now_ms, Command::LiftLockDelays));
        let leases: Vec<LeaseId> = table.leases().map(|(id, _)| *id).collect();
        // As root when auth is on: a revoke is a client's command.
        let root = table.tokens().get(&TokenName::root()).map(|token| Bearer {
            name: TokenName::root(),
            hash: token.hash,
        });
        for lease_id in leases {
            let mut revoke = Proposal::new(now_ms, Command::RevokeLease { lease_id });
            revoke.caller = root.clone();
            table.apply(revoke);
            table
                .check_invariants()
                .map_err(|broken| TestCaseError::fail(broken.to_string()))?;
        }
        prop_assert_eq!(table.locks_with_prefix("").count(), 0);
        prop_assert_eq!(table.with_prefix(Kind::Semaphore, "").count(), 0);
    }
}

/// How the proposing leader's clock moves before a command.
#[derive(Clone, Debug)]
enum ClockStep {
    /// A little forward, as it mostly does.
    Forward(u64),
    /// Back: a new leader whose clock is behind the last one's.
    Back(u64),
    /// To this time: the epoch, the end of time, anywhere.
    To(u64),
}

fn clock_step() -> impl Strategy<Value = ClockStep> {
    let anywhere = prop_oneof![
        Just(0),
        Just(u64::MAX - 1_000),
        Just(u64::MAX),
        any::<u64>()
    ];
    prop_oneof![
        30 => (0u64..100).prop_map(ClockStep::Forward),
        8 => any::<u64>().prop_map(ClockStep::Back),
        1 => anywhere.prop_map(ClockStep::To),
    ]
}

impl ClockStep {
    fn after(&self, now_ms: u64) -> u64 {
        match self {
            ClockStep::Forward(ms) => now_ms.saturating_add(*ms),
            ClockStep::Back(ms) => now_ms.saturating_sub(*ms),
            ClockStep::To(ms) => *ms,
        }
    }
}

/// Idempotency windows of nothing, a little, and forever.
fn window_ms() -> impl Strategy<Value = u64> {
    prop::sample::select(vec![0, 1, 200, u64::MAX])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Ordinary and extreme commands mixed (see
    /// `arbitrary::extreme_command`: values at and past every bound,
    /// whether or not a route would let them through), proposed at times
    /// that go forward, back and to the end of time, with idempotency
    /// windows of 0 and `u64::MAX`: apply never panics, every invariant
    /// holds after every step, tokens never go back, answers and the
    /// table survive their encodings, and a replica applying the same log
    /// agrees. 256 cases: 1.2 s in the test build (which optimizes this
    /// crate; debug assertions and overflow checks stay on).
    #[test]
    fn extreme_commands_at_any_time_keep_the_invariants(
        steps in prop::collection::vec(
            (
                clock_step(),
                prop_oneof![command(), extreme_command()],
                prop::option::of((prop::sample::select(vec!["x", "y"]), window_ms())),
                prop::bool::weighted(0.05),
                caller(),
            ),
            1..120,
        )
    ) {
        let mut table = LockTable::new();
        let mut replica = LockTable::new();
        let mut now_ms = 0;
        for (clock, command, key, snapshot_here, caller) in steps {
            now_ms = clock.after(now_ms);
            let last = table.last_token();
            let mut proposal = Proposal::new(now_ms, command.clone());
            proposal.caller = caller;
            proposal.idempotency = key.map(|(key, window_ms)| Idempotency {
                key: key.into(),
                fingerprint: fingerprint(&[format!("{command:?}").as_bytes()]),
                window_ms,
            });
            let applied = table.apply(proposal.clone());
            prop_assert_eq!(&applied, &replica.apply(proposal));
            table
                .check_invariants()
                .map_err(|broken| TestCaseError::fail(broken.to_string()))?;
            prop_assert!(table.last_token() >= last, "tokens never go back");
            prop_assert!(table.now_ms() >= now_ms, "state-machine time never goes back");
            prop_assert_eq!(&round_trip(&applied.response), &applied.response);
            if snapshot_here {
                replica = restored(&table);
            }
        }
        prop_assert_eq!(&table, &replica);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Over lock commands alone (most of `command`'s sequences turn auth
    /// on early, after which few commands queue anything), applied and
    /// restored from snapshots: every invariant holds, and the sweep's
    /// overdue waits and due lock-delays are what a walk over every lock
    /// finds.
    #[test]
    fn lock_commands_keep_the_sweeps_deadlines(
        steps in prop::collection::vec(
            (0u64..50, lock_command(), prop::bool::weighted(0.1)),
            1..150,
        )
    ) {
        let mut table = LockTable::new();
        let mut now_ms = 0;
        for (step_ms, command, snapshot_here) in steps {
            now_ms += step_ms;
            table.apply(Proposal::new(now_ms, command));
            table
                .check_invariants()
                .map_err(|broken| TestCaseError::fail(broken.to_string()))?;
            if snapshot_here {
                table = restored(&table);
            }
            sweep_agrees_with_walk(&table, now_ms)?;
        }
    }
}
