//! What a corral leader decides by its own clock, apart from the HTTP
//! server so that the simulation (`corral-sim`) runs the same rules:
//! - [`SmClock`] and [`stamp_ms`]: the state-machine time every proposal
//!   carries, which follows the leader's monotonic clock, never its wall
//!   clock;
//! - [`LeaseClock`]: lease deadlines, renewed by keepalives and expired by
//!   the leader's sweep, within one leader term;
//! - [`renew_leases`], [`due_leases`] and [`learn_leases`]: which leases a
//!   keepalive renews, which a sweep expires, and what the lease clock
//!   learns of them as commands apply.

mod lease_clock;
mod leases;
mod sm_clock;
mod stamp;

pub use lease_clock::{LeaseClock, LiveLeases, Renewal};
pub use leases::{due_leases, learn_leases, renew_leases};
pub use sm_clock::{Anchor, SmClock};
pub use stamp::{sm_now_ms_in, stamp_ms};
