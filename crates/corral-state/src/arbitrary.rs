//! Strategies for property tests (proptest): any value of every wire type
//! (derived on the types themselves), any lock name, commands that collide,
//! and lock tables reached by applying them, for the encoding tests of
//! every crate that stores or sends these values. Built only for tests and
//! with the `arbitrary` feature.

use proptest::prelude::*;

use crate::*;

/// Any name the checks accept, for property tests of every encoding.
impl Arbitrary for LockName {
    type Parameters = ();
    type Strategy = BoxedStrategy<LockName>;

    fn arbitrary_with((): ()) -> Self::Strategy {
        "[^\\p{Cc}]{1,24}"
            .prop_filter_map("a valid lock name", |s| LockName::new(s).ok())
            .boxed()
    }
}

fn name(s: &str) -> LockName {
    LockName::new(s).expect("valid name")
}

/// Commands over a small alphabet of leases and names, so that random
/// sequences collide often: waits, hand-offs, refusals and deadlocks.
pub fn command() -> impl Strategy<Value = Command> {
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
        (lock.clone(), 0u64..12, prop::sample::select(vec!["k", "m"])).prop_map(
            |(lock, token, key)| Command::KvDelete {
                key: name(key),
                fence: Fence {
                    lock,
                    fencing_token: FencingToken(token),
                },
            }
        ),
        prop::sample::select(vec![vec![], vec!["b"], vec!["c", "a"]]).prop_map(|p| {
            Command::SetLockOrder {
                prefixes: p.into_iter().map(String::from).collect(),
            }
        }),
    ]
}

/// Any table a cluster can reach: a random command sequence applied, some
/// of it with idempotency keys, then a few remembered answers of any kind,
/// so that a snapshot of it holds every kind of state and record.
impl Arbitrary for LockTable {
    type Parameters = ();
    type Strategy = BoxedStrategy<LockTable>;

    fn arbitrary_with((): ()) -> Self::Strategy {
        let step = (0u64..50, command(), prop::option::of("[a-d]"));
        let remembered = prop::collection::vec(any::<Response>(), 0..4);
        (prop::collection::vec(step, 0..80), remembered)
            .prop_map(|(steps, remembered)| table_after(steps, &remembered))
            .boxed()
    }
}

fn table_after(steps: Vec<(u64, Command, Option<String>)>, remembered: &[Response]) -> LockTable {
    let mut table = LockTable::new();
    let mut now_ms = 0;
    for (step_ms, command, key) in steps {
        now_ms += step_ms;
        let fingerprint = fingerprint(&[format!("{command:?}").as_bytes()]);
        let mut proposal = Proposal::new(now_ms, command);
        proposal.idempotency = key.map(|key| Idempotency {
            key,
            fingerprint,
            window_ms: 1_000,
        });
        table.apply(proposal);
    }
    for (i, response) in remembered.iter().enumerate() {
        let idempotency = Idempotency {
            key: format!("remembered-{i}"),
            fingerprint: i as u64,
            window_ms: 60_000,
        };
        table.remember(idempotency, response);
    }
    table
}
