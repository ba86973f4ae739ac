//! A table driven by commands at a test's clock, checked after every step.

use crate::*;

pub(super) fn id(n: u128) -> LeaseId {
    LeaseId(n)
}

pub(super) fn name(s: &str) -> LockName {
    LockName::new(s).expect("valid name")
}

/// A table driven by commands at a fixed clock, checked after every step.
pub(super) struct Story {
    pub(super) table: LockTable,
    pub(super) now_ms: u64,
}

impl Story {
    pub(super) fn new() -> Story {
        Story {
            table: LockTable::new(),
            now_ms: 1_000,
        }
    }

    pub(super) fn run(&mut self, command: Command) -> Applied {
        let applied = self.table.apply(Proposal::new(self.now_ms, command));
        self.table.check_invariants().expect("invariants hold");
        applied
    }

    pub(super) fn lease(&mut self, n: u128) {
        let r = self.run(Command::GrantLease {
            lease_id: id(n),
            ttl_ms: 10_000,
            lock_order: LockOrder::None,
            lock_delay_ms: 0,
        });
        assert!(r.response.is_ok(), "{r:?}");
    }

    pub(super) fn acquire(&mut self, n: u128, lock: &str, wait_ms: u64) -> Applied {
        self.acquire_mode(n, lock, Mode::Exclusive, wait_ms)
    }

    pub(super) fn acquire_mode(
        &mut self,
        n: u128,
        lock: &str,
        mode: Mode,
        wait_ms: u64,
    ) -> Applied {
        self.run(Command::Acquire {
            lease_id: id(n),
            name: name(lock),
            mode,
            wait_ms,
        })
    }

    pub(super) fn token(&mut self, n: u128, lock: &str) -> FencingToken {
        match self.acquire(n, lock, 0).response {
            Ok(Outcome::Granted(g)) => g.fencing_token,
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    pub(super) fn release(&mut self, n: u128, lock: &str) -> Applied {
        self.run(Command::Release {
            lease_id: id(n),
            name: name(lock),
            kind: Kind::Lock,
            fencing_token: None,
        })
    }

    pub(super) fn holder(&self, lock: &str) -> Option<LeaseId> {
        self.table
            .lock(&name(lock))
            .and_then(|l| l.exclusive_holder())
            .map(|h| h.lease_id)
    }

    pub(super) fn holders(&self, lock: &str) -> Vec<LeaseId> {
        self.table
            .lock(&name(lock))
            .map(|l| l.holders.keys().copied().collect())
            .unwrap_or_default()
    }
}

impl Story {
    /// Grants lease `n` with a lock order and a lock-delay.
    pub(super) fn lease_with(&mut self, n: u128, lock_order: LockOrder, lock_delay_ms: u64) {
        let r = self.run(Command::GrantLease {
            lease_id: id(n),
            ttl_ms: 10_000,
            lock_order,
            lock_delay_ms,
        });
        assert!(r.response.is_ok(), "{r:?}");
    }

    pub(super) fn acquire_all(&mut self, n: u128, locks: &[&str], wait_ms: u64) -> Applied {
        self.run(Command::AcquireAll {
            lease_id: id(n),
            names: locks.iter().map(|l| name(l)).collect(),
            mode: Mode::Exclusive,
            wait_ms,
        })
    }

    pub(super) fn permits(
        &mut self,
        n: u128,
        sem: &str,
        limit: u32,
        permits: u32,
        wait_ms: u64,
    ) -> Applied {
        self.run(Command::AcquirePermits {
            lease_id: id(n),
            name: name(sem),
            limit,
            permits,
            wait_ms,
        })
    }

    pub(super) fn release_permits(&mut self, n: u128, sem: &str) -> Applied {
        self.run(Command::Release {
            lease_id: id(n),
            name: name(sem),
            kind: Kind::Semaphore,
            fencing_token: None,
        })
    }
}
