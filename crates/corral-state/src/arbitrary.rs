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

/// Any name the checks accept.
impl Arbitrary for TokenName {
    type Parameters = ();
    type Strategy = BoxedStrategy<TokenName>;

    fn arbitrary_with((): ()) -> Self::Strategy {
        "[A-Za-z0-9._-]{1,64}"
            .prop_filter_map("a valid token name", |s| TokenName::new(s).ok())
            .boxed()
    }
}

/// Any hash.
impl Arbitrary for TokenHash {
    type Parameters = ();
    type Strategy = BoxedStrategy<TokenHash>;

    fn arbitrary_with((): ()) -> Self::Strategy {
        any::<[u8; 32]>().prop_map(TokenHash).boxed()
    }
}

fn name(s: &str) -> LockName {
    LockName::new(s).expect("valid name")
}

/// Commands over a small alphabet of leases and names, so that random
/// sequences collide often: waits, hand-offs, refusals and deadlocks.
///
/// Each family is weighted by its number of variants, so that every
/// variant is as likely as any other (1 in 20).
pub fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        3 => lease_commands(),
        3 => acquire_commands(),
        3 => release_commands(),
        2 => cluster_commands(),
        3 => election_commands(),
        2 => kv_commands(),
        3 => auth_commands(),
        1 => restore_command(),
        8 => queue_commands(),
    ]
}

/// The commands of leases, locks, semaphores, elections and lock-delays
/// alone, which neither auth nor the work queues refuse: sequences of them
/// queue, hand off and delay far more often than those of [`command`].
pub fn lock_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        3 => lease_commands(),
        3 => acquire_commands(),
        3 => release_commands(),
        2 => cluster_commands(),
        3 => election_commands(),
    ]
}

/// Two queues: `q`, whose dead letters go to `r` when so configured, and
/// `r`.
fn queue() -> impl Strategy<Value = LockName> {
    prop::sample::select(vec!["q", "r"]).prop_map(name)
}

/// A few claim ids, so that a lease's claims sometimes share one (the
/// unset id among them).
fn claim_id() -> impl Strategy<Value = ClaimId> {
    (0u64..3).prop_map(ClaimId)
}

/// A few items, so that acks and nacks often name one that exists.
fn item() -> impl Strategy<Value = ItemId> {
    (0u64..8).prop_map(ItemId)
}

/// Every command of the work queues, over small queues, short
/// visibilities, and low tokens that sometimes name the live claim.
fn queue_commands() -> impl Strategy<Value = Command> {
    let ms = || prop::sample::select(vec![0u64, 50, 500]);
    let visibility = || prop::sample::select(vec![50u64, 500]);
    let fencing_token = || (0u64..16).prop_map(FencingToken);
    let config = (0u32..3, any::<bool>()).prop_map(|(max_attempts, dead_letter)| QueueConfig {
        max_attempts,
        dead_letter: dead_letter.then(|| name("r")),
    });
    let limits = QueueLimits {
        items_max: 4,
        queues_max: 2,
        dedup_window_ms: 100,
    };
    let dedup = prop::option::of(prop::sample::select(vec!["d1", "d2"]).prop_map(String::from));
    let claims = claim_commands(ClaimParts {
        queue: queue().boxed(),
        item: item().boxed(),
        token: fencing_token().boxed(),
        visibility: visibility().boxed(),
        delay: ms().boxed(),
        lease: lease().boxed(),
        claim: claim_id().boxed(),
    });
    prop_oneof![
        3 => prop_oneof![
        (queue(), config).prop_map(|(queue, config)| Command::ConfigureQueue {
            queue,
            config,
            queues_max: 2,
        }),
        (queue(), ms(), dedup).prop_map(move |(queue, delay_ms, dedup_id)| Command::Enqueue {
            payload: format!("{{\"at\":{delay_ms}}}"),
            queue,
            delay_ms,
            dedup_id,
            limits,
        }),
        (queue(), lease(), visibility(), 1u32..3, wait(), claim_id()).prop_map(
            |(queue, lease_id, visibility_ms, max, wait_ms, claim_id)| Command::Claim {
                queue,
                lease_id,
                visibility_ms,
                max,
                wait_ms,
                claim_id,
            }
        ),
    ],
        5 => claims,
    ]
}

/// `Restore` of a small backup: a lease holding a lock, and a token
/// counter bumped by up to a few; built by hand, as a table strategy that
/// drew commands would draw restores of its own.
fn restore_command() -> impl Strategy<Value = Command> {
    (0u64..4, lease()).prop_map(|(bump, lease_id)| {
        let mut table = LockTable::new();
        let grant = Command::GrantLease {
            lease_id,
            ttl_ms: 1_000,
            lock_order: LockOrder::None,
            lock_delay_ms: 0,
        };
        let acquire = Command::Acquire {
            lease_id,
            name: name("a"),
            mode: Mode::Exclusive,
            wait_ms: 0,
        };
        table.apply(Proposal::new(5, grant));
        table.apply(Proposal::new(5, acquire));
        table.bump_tokens(bump);
        Command::Restore {
            table: Box::new(table),
        }
    })
}

/// The callers of the generated tables: root, and two others, each with
/// the hash of its secret as [`auth_commands`] makes it (root's as the
/// first of its two `EnableAuth`s), or now and then a wrong one.
pub fn caller() -> impl Strategy<Value = Option<Bearer>> {
    let name = prop::sample::select(vec!["root", "a", "b"]);
    prop::option::of((name, prop::bool::weighted(0.9))).prop_map(|caller| {
        caller.map(|(name, right)| {
            let byte = if name == "root" {
                0
            } else {
                name.as_bytes()[0]
            };
            Bearer {
                name: token_name(name),
                hash: TokenHash([if right { byte } else { 0xff }; 32]),
            }
        })
    })
}

fn token_name(s: &str) -> TokenName {
    TokenName::new(s).expect("valid token name")
}

/// `EnableAuth`, `AddToken`, `RevokeToken`, over three tokens: `a` may
/// write locks under `a`, `b` may write everything but has small quotas.
fn auth_commands() -> impl Strategy<Value = Command> {
    let permission = |kind, prefix: &str, access| Permission {
        kind,
        prefix: prefix.to_string(),
        access,
    };
    let tokens = vec![
        ("a", vec![permission(Scope::Lock, "a", Access::Write)]),
        ("b", vec![permission(Scope::Any, "", Access::Write)]),
    ];
    let quotas = Quotas {
        leases_max: 2,
        holds_max: 3,
        kv_keys_max: 1,
    };
    prop_oneof![
        (0u8..2).prop_map(|b| Command::EnableAuth {
            root_hash: TokenHash([b; 32]),
        }),
        prop::sample::select(tokens).prop_map(move |(name, permissions)| Command::AddToken {
            name: token_name(name),
            hash: TokenHash([name.as_bytes()[0]; 32]),
            permissions,
            quotas,
        }),
        prop::sample::select(vec!["a", "b", "root"]).prop_map(|name| Command::RevokeToken {
            name: token_name(name),
        }),
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

/// Commands with values at and past their bounds: ttls, waits and
/// lock-delays of 0 and `u64::MAX`, names of one byte and of
/// [`LOCK_NAME_BYTES_MAX`], name lists empty, oversized or naming a lock
/// twice, limits and permits of 0 and `u32::MAX`, values past their caps,
/// tokens of 0 and `u64::MAX`. Some pass the checks of `check.rs`, others
/// only a route refuses; apply must take them all. Over four leases and
/// few names, so that they still meet; every variant as likely as any
/// other, as in [`command`].
pub fn extreme_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        3 => extreme_lease_commands(),
        3 => extreme_acquire_commands(),
        3 => extreme_release_commands(),
        2 => extreme_cluster_commands(),
        3 => extreme_election_commands(),
        2 => extreme_kv_commands(),
        3 => extreme_auth_commands(),
        1 => extreme_restore_command(),
        8 => extreme_queue_commands(),
    ]
}

/// Milliseconds at and past the queue bounds.
fn extreme_queue_ms() -> impl Strategy<Value = u64> {
    prop::sample::select(vec![
        0u64,
        1,
        VISIBILITY_MS_MAX,
        VISIBILITY_MS_MAX + 1,
        u64::MAX,
    ])
}

/// Counts at and past the queue bounds.
fn extreme_queue_count() -> impl Strategy<Value = u32> {
    prop::sample::select(vec![
        0u32,
        1,
        CLAIM_ITEMS_MAX,
        CLAIM_ITEMS_MAX + 1,
        u32::MAX,
    ])
}

/// Queue commands at their bounds: payloads, delays, visibilities and
/// counts of 0, at the most and past it, dead letters into the queue
/// itself, limits of 0, and any ids and tokens.
fn extreme_queue_commands() -> impl Strategy<Value = Command> {
    prop_oneof![
        3 => extreme_queue_writes(),
        5 => extreme_claim_commands(),
    ]
}

/// `ConfigureQueue`, `Enqueue`, `Claim` at their bounds.
fn extreme_queue_writes() -> impl Strategy<Value = Command> {
    let queue = extreme_name;
    let payload = prop::sample::select(vec![
        0usize,
        ITEM_PAYLOAD_BYTES_MAX,
        ITEM_PAYLOAD_BYTES_MAX + 1,
    ])
    .prop_map(|bytes| "x".repeat(bytes));
    let limits = (0usize..3, 0usize..3, extreme_queue_ms()).prop_map(
        |(items_max, queues_max, dedup_window_ms)| QueueLimits {
            items_max,
            queues_max,
            dedup_window_ms,
        },
    );
    let dedup = prop::option::of(prop::sample::select(vec![
        0usize,
        1,
        DEDUP_ID_BYTES_MAX + 1,
    ]))
    .prop_map(|bytes| bytes.map(|b| "d".repeat(b)));
    prop_oneof![
        (
            queue(),
            extreme_queue_count(),
            prop::option::of(queue()),
            0usize..2
        )
            .prop_map(|(queue, max_attempts, dead_letter, queues_max)| {
                Command::ConfigureQueue {
                    queue,
                    config: QueueConfig {
                        max_attempts,
                        dead_letter,
                    },
                    queues_max,
                }
            }),
        (queue(), payload, extreme_queue_ms(), dedup, limits).prop_map(
            |(queue, payload, delay_ms, dedup_id, limits)| Command::Enqueue {
                queue,
                payload,
                delay_ms,
                dedup_id,
                limits,
            }
        ),
        (
            queue(),
            extreme_lease(),
            extreme_queue_ms(),
            extreme_queue_count(),
            extreme_queue_ms(),
            any::<ClaimId>()
        )
            .prop_map(|(queue, lease_id, visibility_ms, max, wait_ms, claim_id)| {
                Command::Claim {
                    queue,
                    lease_id,
                    visibility_ms,
                    max,
                    wait_ms,
                    claim_id,
                }
            }),
    ]
}

/// `Ack`, `ExtendClaim`, `Nack`, `TickQueue`, `CancelClaimWait` with any
/// ids and tokens.
fn extreme_claim_commands() -> impl Strategy<Value = Command> {
    claim_commands(ClaimParts {
        queue: extreme_name().boxed(),
        item: any::<u64>().prop_map(ItemId).boxed(),
        token: any::<u64>().prop_map(FencingToken).boxed(),
        visibility: extreme_queue_ms().boxed(),
        delay: extreme_queue_ms().boxed(),
        lease: extreme_lease().boxed(),
        claim: any::<ClaimId>().boxed(),
    })
}

/// What the commands on claims are drawn from.
struct ClaimParts {
    queue: BoxedStrategy<LockName>,
    item: BoxedStrategy<ItemId>,
    token: BoxedStrategy<FencingToken>,
    visibility: BoxedStrategy<u64>,
    delay: BoxedStrategy<u64>,
    lease: BoxedStrategy<LeaseId>,
    claim: BoxedStrategy<ClaimId>,
}

/// `Ack`, `ExtendClaim`, `Nack`, `TickQueue`, `CancelClaimWait`, each as
/// likely, drawn from `parts`.
fn claim_commands(parts: ClaimParts) -> impl Strategy<Value = Command> {
    let ClaimParts {
        queue,
        item,
        token,
        visibility,
        delay,
        lease,
        claim,
    } = parts;
    let named = (queue.clone(), item, token);
    prop_oneof![
        named
            .clone()
            .prop_map(|(queue, item_id, fencing_token)| Command::Ack {
                queue,
                item_id,
                fencing_token,
            }),
        (named.clone(), visibility).prop_map(|((queue, item_id, fencing_token), visibility_ms)| {
            Command::ExtendClaim {
                queue,
                item_id,
                fencing_token,
                visibility_ms,
            }
        }),
        (named, delay).prop_map(
            |((queue, item_id, fencing_token), delay_ms)| Command::Nack {
                queue,
                item_id,
                fencing_token,
                delay_ms,
            }
        ),
        queue.clone().prop_map(|queue| Command::TickQueue { queue }),
        (queue, lease, claim).prop_map(|(queue, lease_id, claim_id)| {
            Command::CancelClaimWait {
                queue,
                lease_id,
                claim_id,
            }
        }),
    ]
}

/// `Restore` of an empty backup bumped to the edges: by nothing, to the
/// most a restore takes, and past it.
fn extreme_restore_command() -> impl Strategy<Value = Command> {
    prop::sample::select(vec![0, TOKENS_LEFT_MIN, u64::MAX]).prop_map(|bump| {
        let mut table = LockTable::new();
        table.bump_tokens(bump);
        Command::Restore {
            table: Box::new(table),
        }
    })
}

/// Auth commands with any names, hashes, permissions and quotas, the
/// longest permission lists included.
fn extreme_auth_commands() -> impl Strategy<Value = Command> {
    let permissions = prop::collection::vec(any::<Permission>(), 0..=PERMISSIONS_PER_TOKEN_MAX + 1);
    prop_oneof![
        any::<TokenHash>().prop_map(|root_hash| Command::EnableAuth { root_hash }),
        (
            any::<TokenName>(),
            any::<TokenHash>(),
            permissions,
            any::<Quotas>()
        )
            .prop_map(|(name, hash, permissions, quotas)| Command::AddToken {
                name,
                hash,
                permissions,
                quotas,
            }),
        any::<TokenName>().prop_map(|name| Command::RevokeToken { name }),
    ]
}

/// Leases at both ends of the id space.
fn extreme_lease() -> impl Strategy<Value = LeaseId> {
    prop::sample::select(vec![0u128, 1, 2, u128::MAX]).prop_map(LeaseId)
}

/// The shortest and longest names (one of them multi-byte), shared with
/// [`lock`] so that extreme commands meet ordinary ones.
fn extreme_name() -> impl Strategy<Value = LockName> {
    let longest = "n".repeat(LOCK_NAME_BYTES_MAX);
    let longest_multibyte = "é".repeat(LOCK_NAME_BYTES_MAX / 2);
    prop::sample::select(vec![
        "a".to_string(),
        "b".to_string(),
        longest,
        longest_multibyte,
    ])
    .prop_map(|s| name(&s))
}

/// Name lists of every length the checks refuse or take: none, one, a
/// name twice, the most an acquire-all may name, and one more.
fn extreme_names() -> impl Strategy<Value = Vec<LockName>> {
    let numbered = |count: usize| (0..count).map(|i| name(&format!("n{i}"))).collect();
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(extreme_name(), 1..4),
        Just(numbered(ACQUIRE_ALL_NAMES_MAX)),
        Just(numbered(ACQUIRE_ALL_NAMES_MAX + 1)),
    ]
}

/// Milliseconds at the bounds of ttls, waits and lock-delays, or any.
fn extreme_ms() -> impl Strategy<Value = u64> {
    prop_oneof![
        prop::sample::select(vec![
            0,
            1,
            LOCK_DELAY_MS_MAX,
            LOCK_DELAY_MS_MAX + 1,
            TTL_MS_MAX,
            TTL_MS_MAX + 1,
            u64::MAX - 1,
            u64::MAX,
        ]),
        any::<u64>(),
    ]
}

/// Limits and permits at their bounds, or any.
fn extreme_count() -> impl Strategy<Value = u32> {
    prop_oneof![
        prop::sample::select(vec![
            0,
            1,
            2,
            SEMAPHORE_LIMIT_MAX,
            SEMAPHORE_LIMIT_MAX + 1,
            u32::MAX - 1,
            u32::MAX,
        ]),
        any::<u32>(),
    ]
}

/// Tokens at both ends, or none.
fn extreme_token() -> impl Strategy<Value = Option<FencingToken>> {
    prop::option::of(prop::sample::select(vec![0, 1, 2, u64::MAX]).prop_map(FencingToken))
}

/// Strings empty, at a cap of `bytes_max` bytes, and one byte past it.
fn extreme_text(bytes_max: usize) -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        String::new(),
        "v".to_string(),
        "v".repeat(bytes_max),
        "v".repeat(bytes_max + 1),
    ])
}

fn extreme_lease_commands() -> impl Strategy<Value = Command> {
    let order = prop::sample::select(vec![LockOrder::None, LockOrder::Lexicographic]);
    let grant = (extreme_lease(), extreme_ms(), order, extreme_ms()).prop_map(
        |(lease_id, ttl_ms, lock_order, lock_delay_ms)| Command::GrantLease {
            lease_id,
            ttl_ms,
            lock_order,
            lock_delay_ms,
        },
    );
    prop_oneof![
        grant,
        extreme_lease().prop_map(|lease_id| Command::RevokeLease { lease_id }),
        extreme_lease().prop_map(|lease_id| Command::ExpireLease { lease_id }),
    ]
}

fn extreme_acquire_commands() -> impl Strategy<Value = Command> {
    let mode = || prop::sample::select(vec![Mode::Exclusive, Mode::Shared]);
    prop_oneof![
        (extreme_lease(), extreme_name(), mode(), extreme_ms()).prop_map(
            |(lease_id, name, mode, wait_ms)| Command::Acquire {
                lease_id,
                name,
                mode,
                wait_ms,
            }
        ),
        (extreme_lease(), extreme_names(), mode(), extreme_ms()).prop_map(
            |(lease_id, names, mode, wait_ms)| Command::AcquireAll {
                lease_id,
                names,
                mode,
                wait_ms,
            }
        ),
        (
            extreme_lease(),
            extreme_name(),
            extreme_count(),
            extreme_count(),
            extreme_ms()
        )
            .prop_map(|(lease_id, name, limit, permits, wait_ms)| {
                Command::AcquirePermits {
                    lease_id,
                    name,
                    limit,
                    permits,
                    wait_ms,
                }
            }),
    ]
}

fn extreme_release_commands() -> impl Strategy<Value = Command> {
    let kind = || prop::sample::select(Kind::ALL.to_vec());
    prop_oneof![
        (extreme_lease(), extreme_name(), kind(), extreme_token()).prop_map(
            |(lease_id, name, kind, fencing_token)| Command::Release {
                lease_id,
                name,
                kind,
                fencing_token,
            }
        ),
        (extreme_lease(), extreme_name(), kind()).prop_map(|(lease_id, name, kind)| {
            Command::CancelWait {
                lease_id,
                name,
                kind,
            }
        }),
        (extreme_lease(), extreme_names())
            .prop_map(|(lease_id, names)| Command::CancelWaitAll { lease_id, names }),
    ]
}

/// Lock orders with empty, longest and too many prefixes.
fn extreme_cluster_commands() -> impl Strategy<Value = Command> {
    let prefix = prop::sample::select(vec![
        String::new(),
        "a".to_string(),
        "n".repeat(LOCK_NAME_BYTES_MAX + 1),
    ]);
    prop_oneof![
        Just(Command::LiftLockDelays),
        prop::collection::vec(prefix, 0..LOCK_ORDER_PREFIXES_MAX + 2)
            .prop_map(|prefixes| Command::SetLockOrder { prefixes }),
    ]
}

fn extreme_election_commands() -> impl Strategy<Value = Command> {
    let value = || extreme_text(ELECTION_VALUE_BYTES_MAX);
    prop_oneof![
        (extreme_lease(), extreme_name(), value(), extreme_ms()).prop_map(
            |(lease_id, name, value, wait_ms)| Command::Campaign {
                lease_id,
                name,
                value,
                wait_ms,
            }
        ),
        (extreme_lease(), extreme_name(), value()).prop_map(|(lease_id, name, value)| {
            Command::Proclaim {
                lease_id,
                name,
                value,
            }
        }),
        (extreme_lease(), extreme_name(), extreme_token()).prop_map(
            |(lease_id, name, fencing_token)| Command::Resign {
                lease_id,
                name,
                fencing_token,
            }
        ),
    ]
}

/// Fenced writes with tokens at both ends and caps of nothing and of
/// everything.
fn extreme_kv_commands() -> impl Strategy<Value = Command> {
    let fence = || {
        (extreme_name(), prop::sample::select(vec![0, 1, u64::MAX])).prop_map(|(lock, token)| {
            Fence {
                lock,
                fencing_token: FencingToken(token),
            }
        })
    };
    let cap = || prop::sample::select(vec![0usize, 1, usize::MAX]);
    prop_oneof![
        (
            extreme_name(),
            extreme_text(KV_VALUE_BYTES_MAX),
            fence(),
            cap(),
            cap()
        )
            .prop_map(|(key, value, fence, keys_max, bytes_max)| Command::KvPut {
                key,
                value,
                fence,
                keys_max,
                bytes_max,
            }),
        (extreme_name(), fence()).prop_map(|(key, fence)| Command::KvDelete { key, fence }),
    ]
}

/// Any table a cluster can reach: a random command sequence applied, some
/// of it with idempotency keys, then a few remembered answers of any kind,
/// so that a snapshot of it holds every kind of state and record.
impl Arbitrary for LockTable {
    type Parameters = ();
    type Strategy = BoxedStrategy<LockTable>;

    fn arbitrary_with((): ()) -> Self::Strategy {
        let step = (0u64..50, command(), prop::option::of("[a-d]"), caller());
        let remembered = prop::collection::vec(any::<Response>(), 0..4);
        let retired = prop::collection::btree_set(1u64..10, 0..3);
        (prop::collection::vec(step, 0..80), remembered, retired)
            .prop_map(|(steps, remembered, retired)| {
                let mut table = table_after(steps, &remembered);
                table.retire_nodes(retired);
                table
            })
            .boxed()
    }
}

type Step = (u64, Command, Option<String>, Option<Bearer>);

fn table_after(steps: Vec<Step>, remembered: &[Response]) -> LockTable {
    let mut table = LockTable::new();
    let mut now_ms = 0;
    for (step_ms, command, key, caller) in steps {
        now_ms += step_ms;
        let fingerprint = fingerprint(&[format!("{command:?}").as_bytes()]);
        let mut proposal = Proposal::new(now_ms, command);
        proposal.caller = caller;
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
