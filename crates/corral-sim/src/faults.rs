//! The faults of a run, drawn from its seed: crashes with fast and slow
//! restarts (losing what was not synced, or keeping part of it), a leader
//! crashed while its disk lags, partitions (one way too), lost, delayed
//! and duplicated messages, paused nodes, slow disks and clock jumps. Each
//! heals by itself after a while; the run heals everything at its end.

use std::time::Duration;

use corral_raft::NodeId;

use crate::cluster::SYNC_MS_MAX;
use crate::net::Weather;
use crate::workload::World;

/// Injects faults until `end_ms` of virtual time.
pub(crate) async fn inject(world: World, end_ms: u64) {
    while crate::clock::elapsed_ms() < end_ms {
        let pause_ms = world.rng.between(300, 3_000);
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        match world.rng.below(11) {
            0 => crash_any(&world),
            1 | 2 => crash_leader_with_lagging_disk(&world).await,
            3 => isolate(&world, any_node(&world)),
            10 => isolate_leader(&world),
            4 => cut_one_way(&world),
            5 => storm(&world),
            6 => slow_disk(&world),
            7 => pause(&world, any_node(&world)),
            8 => pause_leader(&world),
            _ => jump_clock(&world),
        }
    }
}

fn any_node(world: &World) -> NodeId {
    let ids = world.cluster.ids();
    ids[world.rng.below(ids.len() as u64) as usize]
}

/// Restarts `id` after `after_ms`, in the background.
fn restart_later(world: &World, id: NodeId, after_ms: u64) {
    let world = world.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        world.history.trace(format!("fault: n{id} restarts"));
        world.cluster.boot(id).await;
    });
}

/// A fast restart (within an election timeout) or a slow one.
fn restart_delay_ms(world: &World) -> u64 {
    if world.rng.chance(500) {
        world.rng.below(100)
    } else {
        world.rng.between(1_000, 8_000)
    }
}

fn crash_any(world: &World) {
    let id = any_node(world);
    crash(world, id, restart_delay_ms(world));
}

fn crash(world: &World, id: NodeId, restart_ms: u64) {
    let torn = if world.rng.chance(300) {
        world.rng.between(1, 3) as usize
    } else {
        0
    };
    if let Some(lost) = world.cluster.crash(id, torn) {
        let line = format!("fault: n{id} crashes, losing {lost} unsynced writes (torn {torn})");
        world.history.trace(line);
        restart_later(world, id, restart_ms);
    }
}

/// The leader's disk starts to lag, so acked entries live only in its
/// memory; then it crashes and comes back at once.
async fn crash_leader_with_lagging_disk(world: &World) {
    let Some(id) = world.cluster.leader().map(|leader| leader.id) else {
        return;
    };
    let lag_ms = world.rng.between(100, 1_000);
    world
        .history
        .trace(format!("fault: n{id} (leader) syncs in up to {lag_ms} ms"));
    world.cluster.set_sync_ms_max(id, lag_ms);
    let run_ms = world.rng.between(50, 1_500);
    tokio::time::sleep(Duration::from_millis(run_ms)).await;
    let restart_ms = world.rng.below(100);
    crash(world, id, restart_ms);
}

/// Cuts a node off both ways for a while.
fn isolate(world: &World, id: NodeId) {
    let heal_ms = world.rng.between(500, 5_000);
    world
        .history
        .trace(format!("fault: n{id} isolated for {heal_ms} ms"));
    for other in world.cluster.ids().into_iter().filter(|o| *o != id) {
        world.cluster.net.cut(id, other);
        world.cluster.net.cut(other, id);
    }
    heal_later(world, heal_ms);
}

/// Cuts the leader off: another node leads while it still believes it
/// does, and the clients that know it keep asking it.
fn isolate_leader(world: &World) {
    if let Some(leader) = world.cluster.leader() {
        isolate(world, leader.id);
    }
}

/// Cuts one link, one way, for a while.
fn cut_one_way(world: &World) {
    let from = any_node(world);
    let to = any_node(world);
    if from == to {
        return;
    }
    let heal_ms = world.rng.between(500, 5_000);
    world
        .history
        .trace(format!("fault: n{from} -> n{to} cut for {heal_ms} ms"));
    world.cluster.net.cut(from, to);
    heal_later(world, heal_ms);
}

/// Heals the network after `after_ms`. Heals every cut: faults overlap
/// rarely, and a heal that ends another fault early is a schedule too.
fn heal_later(world: &World, after_ms: u64) {
    let world = world.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        world.history.trace("fault: network healed");
        world.cluster.net.heal();
    });
}

/// Loses, delays and duplicates messages for a while.
fn storm(world: &World) {
    let weather = Weather {
        delay_ms_max: world.rng.between(5, 200),
        loss_per_mille: world.rng.between(0, 300),
        duplicate_per_mille: world.rng.between(0, 300),
    };
    let heal_ms = world.rng.between(500, 5_000);
    world
        .history
        .trace(format!("fault: {weather:?} for {heal_ms} ms"));
    world.cluster.net.set_weather(weather);
    heal_later(world, heal_ms);
}

/// A node's syncs become slow for a while.
fn slow_disk(world: &World) {
    let id = any_node(world);
    let sync_ms_max = world.rng.between(50, 800);
    let heal_ms = world.rng.between(500, 5_000);
    world.history.trace(format!(
        "fault: n{id} syncs in up to {sync_ms_max} ms for {heal_ms} ms"
    ));
    world.cluster.set_sync_ms_max(id, sync_ms_max);
    let world = world.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(heal_ms)).await;
        world.cluster.set_sync_ms_max(id, SYNC_MS_MAX);
    });
}

/// Pauses node `id` (a long GC, a VM migration) for up to a few seconds:
/// long enough, often, for another node to lead and for leases to expire
/// while it still believes it leads.
fn pause(world: &World, id: NodeId) {
    let for_ms = world.rng.between(100, 6_000);
    world
        .history
        .trace(format!("fault: n{id} paused for {for_ms} ms"));
    world.cluster.net.pause(id, for_ms);
}

fn pause_leader(world: &World) {
    if let Some(leader) = world.cluster.leader() {
        pause(world, leader.id);
    }
}

/// A node's wall clock jumps by up to an hour, either way.
fn jump_clock(world: &World) {
    let id = any_node(world);
    let by_ms = world.rng.between(0, 7_200_000) as i64 - 3_600_000;
    world
        .history
        .trace(format!("fault: n{id} clock jumps {by_ms} ms"));
    world.cluster.clocks.jump(id, by_ms);
}
