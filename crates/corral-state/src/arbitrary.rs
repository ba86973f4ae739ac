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
///
/// Each family is weighted by its number of variants, so that every
/// variant is as likely as any other (1 in 16).
pub fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        3 => lease_commands(),
        3 => acquire_commands(),
        3 => release_commands(),
        2 => cluster_commands(),
        3 => election_commands(),
        2 => kv_commands(),
    ]
}

/// Five leases: few enough that they meet on the same locks.
fn lease() -> impl Strategy<Value = LeaseId> {
    (0u128..5).prop_map(LeaseId)
}

/// Three lock names.
fn lock() -> impl Strategy<Value = LockName> {
    prop::sample::select(vec!["a", "b", "c"]).prop_map(name)
}

/// Names of every kind, some shared between kinds, for releases and
/// cancels that may name the wrong kind.
fn any_name() -> impl Strategy<Value = LockName> {
    prop::sample::select(vec!["a", "b", "c", "s", "e"]).prop_map(name)
}

/// Whether a request answers at once or waits a little.
fn wait() -> impl Strategy<Value = u64> {
    prop::sample::select(vec![0u64, 100])
}

/// Low tokens, so that a release naming one sometimes names the grant.
fn token() -> impl Strategy<Value = Option<FencingToken>> {
    prop::option::of((0u64..16).prop_map(FencingToken))
}

/// `GrantLease`, `RevokeLease`, `ExpireLease`.
fn lease_commands() -> impl Strategy<Value = Command> {
    let grant = (
        lease(),
        prop::sample::select(vec![LockOrder::None, LockOrder::Lexicographic]),
        prop::sample::select(vec![0u64, 200]),
    )
        .prop_map(
            |(lease_id, lock_order, lock_delay_ms)| Command::GrantLease {
                lease_id,
                ttl_ms: 1_000,
                lock_order,
                lock_delay_ms,
            },
        );
    prop_oneof![
        grant,
        lease().prop_map(|lease_id| Command::RevokeLease { lease_id }),
        lease().prop_map(|lease_id| Command::ExpireLease { lease_id }),
    ]
}

/// `Acquire`, `AcquireAll`, `AcquirePermits`.
fn acquire_commands() -> impl Strategy<Value = Command> {
    let mode = || prop::sample::select(vec![Mode::Exclusive, Mode::Shared]);
    let sem = prop::sample::select(vec!["a", "s"]).prop_map(name);
    prop_oneof![
        (lease(), lock(), mode(), wait()).prop_map(|(lease_id, name, mode, wait_ms)| {
            Command::Acquire {
                lease_id,
                name,
                mode,
                wait_ms,
            }
        }),
        (lease(), prop::collection::vec(lock(), 1..4), mode(), wait()).prop_map(
            |(lease_id, names, mode, wait_ms)| Command::AcquireAll {
                lease_id,
                names,
                mode,
                wait_ms,
            }
        ),
        (lease(), sem, 2u32..4, 1u32..4, wait()).prop_map(
            |(lease_id, name, limit, permits, wait_ms)| Command::AcquirePermits {
                lease_id,
                name,
                limit,
                permits,
                wait_ms,
            }
        ),
    ]
}

/// `Release`, `CancelWait`, `CancelWaitAll`.
fn release_commands() -> impl Strategy<Value = Command> {
    let kind = || prop::sample::select(Kind::ALL.to_vec());
    prop_oneof![
        (lease(), any_name(), kind(), token()).prop_map(|(lease_id, name, kind, fencing_token)| {
            Command::Release {
                lease_id,
                name,
                kind,
                fencing_token,
            }
        }),
        (lease(), any_name(), kind()).prop_map(|(lease_id, name, kind)| Command::CancelWait {
            lease_id,
            name,
            kind,
        }),
        (lease(), prop::collection::vec(lock(), 1..4))
            .prop_map(|(lease_id, names)| Command::CancelWaitAll { lease_id, names }),
    ]
}

/// `LiftLockDelays`, `SetLockOrder`: commands of the cluster, not of a
/// lease.
fn cluster_commands() -> impl Strategy<Value = Command> {
    let prefixes = prop::sample::select(vec![vec![], vec!["b"], vec!["c", "a"]]);
    prop_oneof![
        Just(Command::LiftLockDelays),
        prefixes.prop_map(|p| Command::SetLockOrder {
            prefixes: p.into_iter().map(String::from).collect(),
        }),
    ]
}

/// `Campaign`, `Proclaim`, `Resign`.
fn election_commands() -> impl Strategy<Value = Command> {
    let election = || prop::sample::select(vec!["e", "a"]).prop_map(name);
    let value = || prop::sample::select(vec!["v1", "v2"]).prop_map(String::from);
    prop_oneof![
        (lease(), election(), value(), wait()).prop_map(|(lease_id, name, value, wait_ms)| {
            Command::Campaign {
                lease_id,
                name,
                value,
                wait_ms,
            }
        }),
        (lease(), election(), value()).prop_map(|(lease_id, name, value)| Command::Proclaim {
            lease_id,
            name,
            value,
        }),
        (lease(), election(), token()).prop_map(|(lease_id, name, fencing_token)| {
            Command::Resign {
                lease_id,
                name,
                fencing_token,
            }
        }),
    ]
}

/// `KvPut`, `KvDelete`: fenced writes under the three locks, with tokens
/// that are sometimes the lock's and often stale.
fn kv_commands() -> impl Strategy<Value = Command> {
    let fenced = || (lock(), 0u64..12, prop::sample::select(vec!["k", "m"]));
    let fence = |lock, token| Fence {
        lock,
        fencing_token: FencingToken(token),
    };
    prop_oneof![
        fenced().prop_map(move |(lock, token, key)| Command::KvPut {
            key: name(key),
            value: format!("{lock}@{token}"),
            fence: fence(lock, token),
            keys_max: 1,
            bytes_max: 16,
        }),
        fenced().prop_map(move |(lock, token, key)| Command::KvDelete {
            key: name(key),
            fence: fence(lock, token),
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
