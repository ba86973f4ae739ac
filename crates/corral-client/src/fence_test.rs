use std::sync::Arc;

use super::*;

#[tokio::test]
async fn lower_tokens_are_refused_per_resource() {
    let guard = FenceGuard::new(MemoryFenceStore::default());
    guard.admit("a", FencingToken(5)).await.unwrap();
    guard.admit("a", FencingToken(5)).await.unwrap();
    guard.admit("b", FencingToken(1)).await.unwrap();
    let refused = guard.admit("a", FencingToken(4)).await;
    assert!(matches!(
        refused,
        Err(FenceError::Stale {
            token: FencingToken(4),
            highest: FencingToken(5)
        })
    ));
    guard.admit("a", FencingToken(6)).await.unwrap();
    assert_eq!(guard.highest("a").await.unwrap(), Some(FencingToken(6)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admit_then_keeps_a_stale_write_from_landing_last() {
    let guard = Arc::new(FenceGuard::new(MemoryFenceStore::default()));
    let log = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (1..=32u64)
        .map(|t| {
            let (guard, log) = (guard.clone(), log.clone());
            tokio::spawn(async move {
                let write = async {
                    tokio::task::yield_now().await;
                    log.lock().unwrap().push(t);
                };
                guard.admit_then("r", FencingToken(t), write).await.is_ok()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let log = log.lock().unwrap().clone();
    assert!(
        log.windows(2).all(|w| w[0] < w[1]),
        "writes landed in token order: {log:?}"
    );
    assert_eq!(log.last(), Some(&32));
    assert!(
        guard.serial_lock().is_empty(),
        "per-resource locks are dropped"
    );
}

/// The limit `admit_then` documents: two guards (two processes) over
/// one token store. The stale writer is admitted first and writes
/// last, after the newer writer's whole write.
#[tokio::test]
async fn admit_then_in_two_guards_lets_a_stale_write_land_last() {
    let store = Arc::new(MemoryFenceStore::default());
    let (old, new) = (FenceGuard::new(store.clone()), FenceGuard::new(store));
    let log = Mutex::new(Vec::new());
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let stale = old.admit_then("r", FencingToken(5), async {
        wait.await.ok();
        log.lock().unwrap().push(5);
    });
    let newer = async {
        // Once token 5 was admitted, token 6 is admitted and written
        // in full; then the stale write goes on.
        while old.highest("r").await.unwrap() != Some(FencingToken(5)) {
            tokio::task::yield_now().await;
        }
        new.admit_then("r", FencingToken(6), async { log.lock().unwrap().push(6) })
            .await
            .unwrap();
        go.send(()).unwrap();
    };
    let (stale, ()) = tokio::join!(stale, newer);
    assert!(stale.is_ok(), "admitted before 6 was");
    assert_eq!(
        *log.lock().unwrap(),
        vec![6, 5],
        "the stale write landed last"
    );
}

#[tokio::test]
async fn a_fenced_store_refuses_a_stale_write_from_another_guard() {
    let store = Arc::new(MemoryFencedStore::default());
    let (old, new) = (FenceGuard::new(store.clone()), FenceGuard::new(store));
    old.write("r", FencingToken(5), "five").await.unwrap();
    new.write("r", FencingToken(6), "six").await.unwrap();
    let stale = old.write("r", FencingToken(5), "five again").await;
    assert!(matches!(
        stale,
        Err(FenceError::Stale {
            token: FencingToken(5),
            highest: FencingToken(6)
        })
    ));
    new.write("r", FencingToken(6), "six again").await.unwrap();
    assert_eq!(
        new.store().get("r"),
        Some((FencingToken(6), "six again")),
        "an equal token is the same grant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_in_many_guards_over_a_fenced_store_end_at_the_highest() {
    let store = Arc::new(MemoryFencedStore::default());
    let tasks: Vec<_> = (1..=64u64)
        .map(|t| {
            let guard = FenceGuard::new(store.clone());
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                guard.write("r", FencingToken(t), t).await.is_ok()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.get("r"), Some((FencingToken(64), 64)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_end_at_the_highest_token() {
    let guard = Arc::new(FenceGuard::new(MemoryFenceStore::default()));
    let tasks: Vec<_> = (1..=64u64)
        .map(|t| {
            let guard = guard.clone();
            tokio::spawn(async move { guard.admit("r", FencingToken(t)).await.is_ok() })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await.unwrap());
    }
    assert!(admitted >= 1);
    assert_eq!(guard.highest("r").await.unwrap(), Some(FencingToken(64)));
}
