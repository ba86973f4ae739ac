//! Work queues: claims under tokens, stale workers refused, items that come
//! back at their deadline, lease end or nack and never early, dead letters,
//! claims that wait in turn, and no item ever lost.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::super::story::{id, name, Story};
use crate::arbitrary::command;
use crate::*;

const LIMITS: QueueLimits = QueueLimits {
    items_max: 3,
    queues_max: 2,
    dedup_window_ms: 1_000,
};

fn push(s: &mut Story, queue: &str, payload: &str) -> Response {
    s.run(Command::Enqueue {
        queue: name(queue),
        payload: payload.into(),
        delay_ms: 0,
        dedup_id: None,
        limits: LIMITS,
    })
    .response
}

/// A claim with id 1: a lease's second waiting claim of the same id is
/// refused, as a retry after the key's window would be.
fn claim(s: &mut Story, lease: u128, queue: &str, max: u32, wait_ms: u64) -> Applied {
    claim_as(s, (lease, 1), queue, max, wait_ms)
}

fn claim_as(
    s: &mut Story,
    (lease, claim_id): (u128, u64),
    queue: &str,
    max: u32,
    wait_ms: u64,
) -> Applied {
    s.run(Command::Claim {
        queue: name(queue),
        lease_id: id(lease),
        visibility_ms: 500,
        max,
        wait_ms,
        claim_id: ClaimId(claim_id),
    })
}

fn claimed(applied: &Applied) -> Vec<ClaimedItem> {
    match &applied.response {
        Ok(Outcome::Claimed { items }) => items.clone(),
        other => panic!("expected a claim, got {other:?}"),
    }
}

fn ack(s: &mut Story, queue: &str, item: &ClaimedItem) -> Response {
    s.run(Command::Ack {
        queue: name(queue),
        item_id: item.item_id,
        fencing_token: item.fencing_token,
    })
    .response
}

#[test]
fn claims_take_tokens_and_a_stale_worker_is_refused() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    push(&mut s, "jobs", "1").expect("enqueued");
    push(&mut s, "jobs", "2").expect("enqueued");
    let first = claimed(&claim(&mut s, 1, "jobs", 1, 0));
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].seq, first[0].attempt), (0, 1), "oldest first");
    assert_eq!(first[0].fencing_token, FencingToken(1));
    assert_eq!(s.token(2, "a"), FencingToken(2), "one counter for all");

    // Its deadline passes; only the leader's tick returns it, not before.
    s.now_ms += 499;
    let early = s.run(Command::TickQueue {
        queue: name("jobs"),
    });
    assert_eq!(early.response, Ok(Outcome::QueueTicked { returned: 0 }));
    s.now_ms += 1;
    let tick = s.run(Command::TickQueue {
        queue: name("jobs"),
    });
    assert_eq!(tick.response, Ok(Outcome::QueueTicked { returned: 1 }));
    let again = claimed(&claim(&mut s, 2, "jobs", 1, 0));
    assert_eq!((again[0].item_id, again[0].attempt), (first[0].item_id, 2));
    assert!(again[0].fencing_token > first[0].fencing_token);

    // The first worker's ack is refused and names the live claim.
    assert_eq!(
        ack(&mut s, "jobs", &first[0]),
        Err(Refusal::StaleClaim {
            current_token: Some(again[0].fencing_token)
        })
    );
    assert_eq!(ack(&mut s, "jobs", &again[0]), Ok(Outcome::Acked));
    assert_eq!(ack(&mut s, "jobs", &again[0]), Err(Refusal::ItemNotFound));
}

#[test]
fn a_lease_that_ends_returns_its_claims_and_a_nack_returns_one() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    for payload in ["1", "2", "3"] {
        push(&mut s, "jobs", payload).expect("enqueued");
    }
    let held = claimed(&claim(&mut s, 1, "jobs", 3, 0));
    assert_eq!(held.len(), 3);
    assert!(claimed(&claim(&mut s, 2, "jobs", 1, 0)).is_empty());
    let nack = s.run(Command::Nack {
        queue: name("jobs"),
        item_id: held[2].item_id,
        fencing_token: held[2].fencing_token,
        delay_ms: 100,
    });
    assert!(matches!(
        nack.response,
        Ok(Outcome::Nacked {
            dead_lettered: false,
            ..
        })
    ));
    assert!(
        claimed(&claim(&mut s, 2, "jobs", 3, 0)).is_empty(),
        "not before its delay"
    );
    s.run(Command::RevokeLease { lease_id: id(1) });
    let back = claimed(&claim(&mut s, 2, "jobs", 3, 0));
    let seqs: Vec<u64> = back.iter().map(|i| i.seq).collect();
    assert_eq!(seqs, vec![0, 1], "the revoked lease's claims, at once");
    s.now_ms += 100;
    assert_eq!(claimed(&claim(&mut s, 2, "jobs", 3, 0))[0].seq, 2);
}

#[test]
fn items_past_max_attempts_go_to_the_dead_letters_or_are_dropped() {
    let mut s = Story::new();
    s.lease(1);
    let config = QueueConfig {
        max_attempts: 2,
        dead_letter: Some(name("dlq")),
    };
    let configure = s.run(Command::ConfigureQueue {
        queue: name("jobs"),
        config,
        queues_max: 2,
    });
    assert_eq!(configure.response, Ok(Outcome::QueueConfigured));
    push(&mut s, "jobs", "x").expect("enqueued");
    for attempt in 1..=2 {
        let item = claimed(&claim(&mut s, 1, "jobs", 1, 0)).remove(0);
        assert_eq!(item.attempt, attempt);
        let nack = s.run(Command::Nack {
            queue: name("jobs"),
            item_id: item.item_id,
            fencing_token: item.fencing_token,
            delay_ms: 0,
        });
        let left = matches!(
            nack.response,
            Ok(Outcome::Nacked {
                dead_lettered: true,
                ..
            })
        );
        assert_eq!(left, attempt == 2);
    }
    let jobs = s.table.queues().get(&name("jobs")).expect("configured");
    assert!(jobs.items.is_empty());
    assert_eq!(jobs.dead_lettered_total, 1);
    let dead = claimed(&claim(&mut s, 1, "dlq", 1, 0)).remove(0);
    assert_eq!(dead.payload, "x");
    let dlq = s.table.queues().get(&name("dlq")).expect("made");
    let origin = dlq.items[&dead.item_id]
        .dead_letter
        .clone()
        .expect("an origin");
    assert_eq!((origin.queue, origin.attempts), (name("jobs"), 2));
}

#[test]
fn waiting_claims_are_served_in_turn_and_end_with_their_lease() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    s.lease(3);
    let first = claim(&mut s, 1, "jobs", 1, 1_000);
    assert_eq!(first.response, Ok(Outcome::ClaimWaiting { position: 0 }));
    let second = claim(&mut s, 2, "jobs", 1, 1_000);
    assert_eq!(second.response, Ok(Outcome::ClaimWaiting { position: 1 }));
    // A lease's claims wait apart by id; the same id again is refused.
    let again = claim(&mut s, 2, "jobs", 1, 1_000);
    assert_eq!(
        again.response,
        Err(Refusal::ClaimAlreadyWaiting {
            queue: name("jobs")
        })
    );
    claim(&mut s, 3, "jobs", 1, 1_000);
    let pushed = s.run(Command::Enqueue {
        queue: name("jobs"),
        payload: "1".into(),
        delay_ms: 0,
        dedup_id: None,
        limits: LIMITS,
    });
    match pushed.events.as_slice() {
        [Event::ItemsClaimed {
            lease_id, items, ..
        }] => {
            assert_eq!((*lease_id, items.len()), (id(1), 1), "the first to wait");
        }
        other => panic!("expected one claim, got {other:?}"),
    }
    let revoked = s.run(Command::RevokeLease { lease_id: id(2) });
    assert!(revoked.events.contains(&Event::ClaimWaitEnded {
        queue: name("jobs"),
        lease_id: id(2),
        claim_id: ClaimId(1),
    }));
    s.run(Command::CancelClaimWait {
        queue: name("jobs"),
        lease_id: id(3),
        claim_id: ClaimId(1),
    });
    assert!(s
        .table
        .queues()
        .get(&name("jobs"))
        .expect("in use")
        .claimers
        .is_empty());
}

/// Two requests of one lease wait on one queue at once (a worker with two
/// threads): each gets items of its own, told apart by claim id, and a
/// withdrawal names one of them alone.
#[test]
fn a_leases_waiting_claims_are_told_apart_by_id() {
    let mut s = Story::new();
    s.lease(1);
    for claim_id in [7, 8, 9] {
        claim_as(&mut s, (1, claim_id), "jobs", 1, 1_000);
    }
    let withdrawn = s.run(Command::CancelClaimWait {
        queue: name("jobs"),
        lease_id: id(1),
        claim_id: ClaimId(8),
    });
    assert_eq!(
        withdrawn.response,
        Ok(Outcome::ClaimWaitCancelled { withdrawn: true })
    );
    let mut served = Vec::new();
    for payload in ["x", "y", "z"] {
        let pushed = s.run(Command::Enqueue {
            queue: name("jobs"),
            payload: format!("\"{payload}\""),
            delay_ms: 0,
            dedup_id: None,
            limits: LIMITS,
        });
        for event in pushed.events {
            if let Event::ItemsClaimed {
                claim_id, items, ..
            } = event
            {
                served.push((claim_id, items[0].item_id));
            }
        }
    }
    // First come first served; the withdrawn claim gets nothing.
    let ids: Vec<ClaimId> = served.iter().map(|(claim_id, _)| *claim_id).collect();
    assert_eq!(ids, [ClaimId(7), ClaimId(9)]);
    assert_ne!(served[0].1, served[1].1, "one item for two claims");
    let q = s.table.queues().get(&name("jobs")).expect("in use");
    let claims: Vec<ClaimId> = q
        .items
        .values()
        .filter_map(|i| i.claim.as_ref())
        .map(|c| c.claim_id)
        .collect();
    assert_eq!(
        claims,
        [ClaimId(7), ClaimId(9)],
        "each item names its claim"
    );
}

#[test]
fn a_dedup_id_adds_once_and_limits_refuse_without_losing_anything() {
    let mut s = Story::new();
    let enqueue = |dedup: Option<&str>| Command::Enqueue {
        queue: name("jobs"),
        payload: "p".into(),
        delay_ms: 0,
        dedup_id: dedup.map(String::from),
        limits: LIMITS,
    };
    let first = s.run(enqueue(Some("d"))).response;
    let again = s.run(enqueue(Some("d"))).response;
    match (first, again) {
        (
            Ok(Outcome::Enqueued {
                item_id: a,
                duplicate: false,
                ..
            }),
            Ok(Outcome::Enqueued {
                item_id: b,
                duplicate: true,
                ..
            }),
        ) => assert_eq!(a, b),
        other => panic!("expected one item twice, got {other:?}"),
    }
    s.run(enqueue(None));
    s.run(enqueue(None));
    let full = s.run(enqueue(None)).response;
    assert_eq!(
        full,
        Err(Refusal::LimitReached(Limit::QueueItems { max: 3 }))
    );
    assert_eq!(
        s.table
            .queues()
            .get(&name("jobs"))
            .expect("a queue")
            .items
            .len(),
        3
    );
    s.run(Command::Enqueue {
        queue: name("other"),
        payload: "p".into(),
        delay_ms: 0,
        dedup_id: None,
        limits: LIMITS,
    });
    let third = push(&mut s, "third", "p");
    assert_eq!(third, Err(Refusal::LimitReached(Limit::Queues { max: 2 })));
}

/// What the queues hold and have let go of, summed over every queue.
fn accounted(table: &LockTable, acked: usize) -> usize {
    let queues = table.queues();
    let present: usize = queues.iter().map(|(_, q)| q.items.len()).sum();
    let dropped: u64 = queues.iter().map(|(_, q)| q.dropped_total).sum();
    // A dead-lettered item left one queue for another: it is present in
    // the dead-letter queue.
    present + acked + dropped as usize
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Over any commands: an ack whose token is not the item's live claim
    /// is refused; an item is acked at most once; every item enqueued is
    /// acked, dropped after its last attempt, or still in a queue (a dead
    /// letter is one item moved); a claimed item is ready again only after
    /// its deadline, its lease's end or a nack; and ending every lease
    /// leaves no claim.
    #[test]
    fn no_item_is_lost_or_acked_by_a_stale_worker(
        steps in prop::collection::vec((0u64..200, command()), 1..200)
    ) {
        let mut table = LockTable::new();
        let mut now_ms = 0;
        let mut enqueued = 0usize;
        let mut acked_ids = BTreeSet::new();
        for (step_ms, command) in steps {
            now_ms += step_ms;
            let before = table.clone();
            let applied = table.apply(Proposal::new(now_ms, command.clone()));
            if let Command::Ack { queue, item_id, fencing_token } = &command {
                let live = before.queues().get(queue)
                    .and_then(|q| q.items.get(item_id))
                    .and_then(|item| item.claim.as_ref())
                    .map(|claim| claim.fencing_token);
                // Only the live claim's token acks (a right one may still be
                // refused: by auth, say).
                if applied.response.is_ok() {
                    prop_assert_eq!(live, Some(*fencing_token));
                    prop_assert!(acked_ids.insert(*item_id), "acked twice");
                }
            }
            if let Ok(Outcome::Enqueued { duplicate: false, .. }) = &applied.response {
                enqueued += 1;
            }
            if let Ok(Outcome::Restored { .. }) = &applied.response {
                prop_assert!(before.queues().is_empty(), "a restore replaces no item");
            }
            prop_assert_eq!(accounted(&table, acked_ids.len()), enqueued, "no item lost");
            check_none_ready_early(&before, &table, &command, now_ms)?;
        }
        let leases: Vec<LeaseId> = table.leases().map(|(id, _)| *id).collect();
        // Expiries: the cluster's own, accepted with auth on too.
        for lease_id in leases {
            table.apply(Proposal::new(now_ms, Command::ExpireLease { lease_id }));
        }
        for (_, queue) in table.queues().iter() {
            prop_assert!(queue.items.values().all(|item| item.claim.is_none()));
            prop_assert!(queue.claimers.is_empty());
        }
    }
}

/// A claim that was live before `command` and is not after it ended for a
/// reason: its deadline passed (and the leader ticked), its lease ended,
/// or it was acked or nacked.
fn check_none_ready_early(
    before: &LockTable,
    after: &LockTable,
    command: &Command,
    now_ms: u64,
) -> Result<(), TestCaseError> {
    for (name, queue) in before.queues().iter() {
        for item in queue.items.values() {
            let Some(claim) = &item.claim else { continue };
            let still = after
                .queues()
                .get(name)
                .and_then(|q| q.items.get(&item.id))
                .and_then(|i| i.claim.as_ref());
            if still == Some(claim) || still.is_some_and(|c| c.fencing_token == claim.fencing_token)
            {
                continue;
            }
            let reason = match command {
                Command::TickQueue { queue } => queue == name && claim.deadline_ms <= now_ms,
                Command::RevokeLease { lease_id } | Command::ExpireLease { lease_id } => {
                    *lease_id == claim.lease_id
                }
                Command::Ack {
                    item_id,
                    fencing_token,
                    ..
                }
                | Command::Nack {
                    item_id,
                    fencing_token,
                    ..
                } => *item_id == item.id && *fencing_token == claim.fencing_token,
                _ => false,
            };
            prop_assert!(
                reason,
                "claim {:?} of {} ended early by {:?}",
                claim,
                item.id,
                command
            );
        }
    }
    Ok(())
}

/// The queue's timeline and the metrics' tally tell what happened to its
/// items, under their tokens.
#[test]
fn the_timeline_and_the_tally_tell_what_happened() {
    let mut s = Story::new();
    s.lease(1);
    s.lease(2);
    push(&mut s, "jobs", "1").expect("enqueued");
    let first = claimed(&claim(&mut s, 1, "jobs", 1, 0)).remove(0);
    s.now_ms += 500;
    let tick = s.run(Command::TickQueue {
        queue: name("jobs"),
    });
    assert_eq!(tick.queue_tally().timed_out, 1);
    let stale = s.run(Command::Ack {
        queue: name("jobs"),
        item_id: first.item_id,
        fencing_token: first.fencing_token,
    });
    assert_eq!(stale.queue_tally().stale_refused, 1);
    let again = claim(&mut s, 2, "jobs", 1, 0);
    assert_eq!(again.queue_tally().claimed, 1);
    let second = claimed(&again).remove(0);
    let acked = s.run(Command::Ack {
        queue: name("jobs"),
        item_id: second.item_id,
        fencing_token: second.fencing_token,
    });
    assert_eq!(acked.queue_tally().acked, 1);
    let kinds: Vec<(TimelineKind, Option<FencingToken>)> = s
        .table
        .timeline(&name("jobs"))
        .iter()
        .map(|e| (e.kind, e.fencing_token))
        .collect();
    let (t1, t2) = (Some(first.fencing_token), Some(second.fencing_token));
    assert_eq!(
        kinds,
        vec![
            (TimelineKind::ItemClaimed, t1),
            (TimelineKind::ItemTimedOut, t1),
            (TimelineKind::StaleClaimRefused, t1),
            (TimelineKind::ItemClaimed, t2),
            (TimelineKind::ItemAcked, t2),
        ]
    );
}
