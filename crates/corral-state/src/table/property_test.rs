//! Properties over random command sequences: every invariant after every
//! command, rising tokens, all-or-nothing acquire-all, replicas that agree,
//! and no wait that ends without a reason.

use std::collections::BTreeSet;

use proptest::prelude::*;

use crate::idempotency::Recall;
use crate::*;

fn name(s: &str) -> LockName {
    LockName::new(s).expect("valid name")
}

/// A small alphabet of commands, so that random sequences collide often.
fn command() -> impl Strategy<Value = Command> {
    let lease = (0u128..5).prop_map(LeaseId);
    let lock = prop::sample::select(vec!["a", "b", "c"]).prop_map(name);
    let sem = prop::sample::select(vec!["a", "s"]).prop_map(name);
    let kind = prop::sample::select(Kind::ALL.to_vec());
    let any_name = prop::sample::select(vec!["a", "b", "c", "s", "e"]).prop_map(name);
    let election = prop::sample::select(vec!["e", "a"]).prop_map(name);
    let value = prop::sample::select(vec!["v1", "v2"]).prop_map(String::from);
    let mode = prop::sample::select(vec![Mode::Exclusive, Mode::Shared]);
    let wait = prop::sample::select(vec![0u64, 100]);
    let names = prop::collection::vec(lock.clone(), 1..4);
    // Low tokens, so that a release naming one sometimes names the grant.
    let token = (0u64..16).prop_map(FencingToken);
    prop_oneof![
        (
            lease.clone(),
            prop::sample::select(vec![LockOrder::None, LockOrder::Lexicographic]),
            prop::sample::select(vec![0u64, 200]),
        )
            .prop_map(
                |(lease_id, lock_order, lock_delay_ms)| Command::GrantLease {
                    lease_id,
                    ttl_ms: 1_000,
                    lock_order,
                    lock_delay_ms,
                }
            ),
        lease
            .clone()
            .prop_map(|lease_id| Command::RevokeLease { lease_id }),
        lease
            .clone()
            .prop_map(|lease_id| Command::ExpireLease { lease_id }),
        (lease.clone(), lock.clone(), mode.clone(), wait.clone()).prop_map(
            |(lease_id, name, mode, wait_ms)| Command::Acquire {
                lease_id,
                name,
                mode,
                wait_ms
            }
        ),
        (lease.clone(), names.clone(), mode, wait.clone()).prop_map(
            |(lease_id, names, mode, wait_ms)| Command::AcquireAll {
                lease_id,
                names,
                mode,
                wait_ms
            }
        ),
        (lease.clone(), sem, 2u32..4, 1u32..4, wait.clone()).prop_map(
            |(lease_id, name, limit, permits, wait_ms)| Command::AcquirePermits {
                lease_id,
                name,
                limit,
                permits,
                wait_ms
            }
        ),
        (
            lease.clone(),
            any_name.clone(),
            kind.clone(),
            prop::option::of(token.clone())
        )
            .prop_map(|(lease_id, name, kind, fencing_token)| Command::Release {
                lease_id,
                name,
                kind,
                fencing_token,
            }),
        (lease.clone(), any_name, kind).prop_map(|(lease_id, name, kind)| Command::CancelWait {
            lease_id,
            name,
            kind
        }),
        (lease.clone(), names)
            .prop_map(|(lease_id, names)| Command::CancelWaitAll { lease_id, names }),
        Just(Command::LiftLockDelays),
        (lease.clone(), election.clone(), value.clone(), wait.clone()).prop_map(
            |(lease_id, name, value, wait_ms)| Command::Campaign {
                lease_id,
                name,
                value,
                wait_ms
            }
        ),
        (lease.clone(), election.clone(), value).prop_map(|(lease_id, name, value)| {
            Command::Proclaim {
                lease_id,
                name,
                value,
            }
        }),
        (lease.clone(), election, prop::option::of(token.clone())).prop_map(
            |(lease_id, name, fencing_token)| Command::Resign {
                lease_id,
                name,
                fencing_token,
            }
        ),
        (lock.clone(), 0u64..12, prop::sample::select(vec!["k", "m"])).prop_map(
            |(lock, token, key)| Command::KvPut {
                key: name(key),
                value: format!("{lock}@{token}"),
                fence: Fence {
                    lock,
                    fencing_token: FencingToken(token),
                },
                keys_max: 1,
                bytes_max: 16,
            }
        ),
        prop::sample::select(vec![vec![], vec!["b"], vec!["c", "a"]]).prop_map(|p| {
            Command::SetLockOrder {
                prefixes: p.into_iter().map(String::from).collect(),
            }
        }),
    ]
}

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
) -> Option<BTreeSet<LockName>> {
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

fn new_grants(applied: &Applied, last: FencingToken) -> Vec<Grant> {
    let mut grants: Vec<Grant> = applied
        .events
        .iter()
        .flat_map(|e| match e {
            Event::Granted { grant, .. } => vec![grant.clone()],
            Event::GrantedAll(grants) => grants.clone(),
            Event::WaitEnded { .. } | Event::Withdrawn { .. } => vec![],
        })
        .collect();
    match &applied.response {
        Ok(Outcome::Granted(g)) => grants.push(g.clone()),
        Ok(Outcome::GrantedAll(gs)) => grants.extend(gs.iter().cloned()),
        _ => {}
    }
    grants.retain(|g| g.fencing_token > last);
    grants.sort_by_key(|g| g.fencing_token);
    // A request can be answered with the grant an event of the same step
    // reports (a lifted lock-delay granted its waiting lease first).
    grants.dedup();
    grants
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
            (0u64..50, command(), prop::option::of(prop::sample::select(vec!["x", "y"]))),
            1..150,
        )
    ) {
        let mut table = LockTable::new();
        let mut replica = LockTable::new();
        let mut last = FencingToken(0);
        let mut now_ms = 0;
        for (step_ms, command, key) in commands {
            now_ms += step_ms;
            let before = table.clone();
            let mut proposal = Proposal::new(now_ms, command.clone());
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
            if retried {
                // A remembered answer: nothing but time and the memory of
                // answers may change.
                prop_assert_eq!(table.last_token(), before.last_token());
                prop_assert!(applied.events.is_empty());
                continue;
            }
            table.check_invariants().map_err(TestCaseError::fail)?;

            for g in new_grants(&applied, last) {
                prop_assert!(g.fencing_token > last, "token {} after {}", g.fencing_token, last);
                last = g.fencing_token;
            }
            prop_assert_eq!(table.last_token(), last);

            if let Command::AcquireAll { lease_id, names, .. } = &command {
                let asked: BTreeSet<LockName> = names.iter().cloned().collect();
                let lease = table.lease(*lease_id);
                match &applied.response {
                    Ok(Outcome::GrantedAll(grants)) => {
                        let got: BTreeSet<LockName> = grants.iter().map(|g| g.name.clone()).collect();
                        prop_assert_eq!(&got, &asked);
                    }
                    Ok(Outcome::Queued { .. }) => {
                        let lease = lease.expect("a queued lease lives");
                        let held = asked.iter().filter(|n| lease.holds.contains(*n)).count();
                        let waited = asked.iter().filter(|n| lease.waits.contains(*n)).count();
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

        now_ms += LOCK_DELAY_MS_MAX + 1;
        table.apply(Proposal::new(now_ms, Command::LiftLockDelays));
        let leases: Vec<LeaseId> = table.leases().map(|(id, _)| *id).collect();
        for lease_id in leases {
            table.apply(Proposal::new(now_ms, Command::RevokeLease { lease_id }));
            table.check_invariants().map_err(TestCaseError::fail)?;
        }
        prop_assert_eq!(table.locks_with_prefix("").count(), 0);
        prop_assert_eq!(table.with_prefix(Kind::Semaphore, "").count(), 0);
    }
}
