//! Load for corral, and for etcd beside it, driven by the same client
//! code, so that the two are compared at the same durability on the same
//! machine in the same run.
//!
//! - [`Target`]: a lock service reached over HTTP/1.1 with keep-alive:
//!   corral's API v1, or etcd's JSON gateway (`/v3/lease/grant`,
//!   `/v3/lock/lock`, `/v3/lock/unlock`). Worker `i` talks to endpoint
//!   `i mod n`, so the load spreads over every node.
//! - [`Workload`] and [`run`]: workers that cycle acquire/release over
//!   names of their own (`uncontended`) or all on one name (`contended`).
//! - [`run_inside`]: the same cycles run inside one corral node (`POST
//!   /test/load`), with no client HTTP.
//! - [`keepalive`]: many leases renewed in batches at ttl/3; how many
//!   were lost, and the leader's CPU.
//! - [`table_scale`]: the lock table at 10k to 1M leases in this
//!   process: memory per lease and lock, snapshot size and times.
//! - [`SnapshotsReport`]: a working set of leases with locks on a cluster
//!   of its own: snapshot size and build time, a new node's install, a
//!   follower's restart (the cluster is run by the binary).
//! - [`Report`]: cycles per second, acquire and release p50/p99, errors;
//!   [`markdown`] puts runs side by side with the corral/etcd ratios.

mod compare;
mod keepalive;
mod report;
mod snapshots;
mod table;
mod target;
mod workload;

pub use compare::markdown;
pub use keepalive::{keepalive, KeepaliveReport, KeepaliveSpec};
pub use report::{FailoverReport, Report};
pub use snapshots::{snapshots_markdown, SnapshotsReport};
pub use table::{table_markdown, table_scale, TableError, TableReport};
pub use target::{BenchError, Held, Lease, Target};
pub use workload::{run, run_inside, Workload};
