//! [`History`]: what the clients were told, in virtual time, and the
//! trace of the run: one line per event, hashed to show that a seed
//! replays the same run.
//!
//! It checks leases as they go: a lease must not expire before its proven
//! deadline, the send time of its grant or of its last acked keepalive plus
//! its ttl. And it keeps each lock's operations, as the clients saw them,
//! for the linearizability check at the end.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use corral_check::{MutexInput, MutexOutput, Operation};

/// One operation on a lock, as its client saw it.
pub(crate) type LockOp = Operation<MutexInput, MutexOutput>;

/// A grant a client was told of.
#[derive(Clone, Debug)]
pub(crate) struct AckedGrant {
    pub lock: String,
    pub token: u64,
}

/// A fenced write a client was told was applied.
#[derive(Clone, Debug)]
pub(crate) struct AckedPut {
    pub key: String,
    pub token: u64,
}

/// The record of one run.
#[derive(Clone, Default)]
pub(crate) struct History {
    inner: Arc<Mutex<Record>>,
}

#[derive(Default)]
struct Record {
    trace: Vec<String>,
    grants: Vec<AckedGrant>,
    /// The token each acked grant took, to catch one handed out twice.
    granted_tokens: BTreeMap<u64, String>,
    /// The highest token acked so far.
    highest_acked: u64,
    puts: Vec<AckedPut>,
    violations: Vec<String>,
    /// Each lease's proven deadline, in virtual microseconds.
    proven_until_us: BTreeMap<u64, u64>,
    /// When each lease's expiry was first applied, on any node.
    expired_at_us: BTreeMap<u64, u64>,
    /// Each lock's operations.
    lock_ops: BTreeMap<String, Vec<LockOp>>,
}

impl History {
    fn record(&self) -> MutexGuard<'_, Record> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a line to the trace, stamped with virtual time.
    pub(crate) fn trace(&self, line: impl Into<String>) {
        let at_ms = crate::clock::elapsed_ms();
        let line = format!("{at_ms:>8} {}", line.into());
        self.record().trace.push(line);
    }

    /// Records a violation of a guarantee, in the trace too.
    pub(crate) fn violation(&self, what: impl Into<String>) {
        let what = what.into();
        self.trace(format!("VIOLATION {what}"));
        self.record().violations.push(what);
    }

    /// The highest token acked so far: a grant asked for after now must
    /// take a higher one.
    pub(crate) fn highest_acked(&self) -> u64 {
        self.record().highest_acked
    }

    /// Records an acked grant, asked for when `floor` was the highest
    /// token acked; refuses a token seen before or not above the floor.
    pub(crate) fn granted(&self, client: &str, lock: &str, token: u64, floor: u64) {
        let twice = {
            let mut record = self.record();
            let before = record
                .granted_tokens
                .insert(token, format!("{client} {lock}"));
            record.highest_acked = record.highest_acked.max(token);
            record.grants.push(AckedGrant {
                lock: lock.to_string(),
                token,
            });
            before
        };
        self.trace(format!("{client} granted {lock} token {token}"));
        if let Some(first) = twice {
            self.violation(format!(
                "token {token} acked twice: to {first}, and to {client} {lock}"
            ));
        }
        if token <= floor {
            self.violation(format!(
                "{client} {lock}: token {token} is not above {floor}, acked before it was asked for"
            ));
        }
    }

    /// Records an acked fenced write.
    pub(crate) fn put(&self, client: &str, key: &str, token: u64) {
        self.trace(format!("{client} wrote {key} under {token}"));
        self.record().puts.push(AckedPut {
            key: key.to_string(),
            token,
        });
    }

    /// Lease `lease` lives at least until `until_us`: a grant or keepalive
    /// sent a ttl before was acked.
    pub(crate) fn proven(&self, lease: u64, until_us: u64) {
        let expired_at_us = {
            let mut record = self.record();
            let proven = record.proven_until_us.entry(lease).or_default();
            *proven = (*proven).max(until_us);
            record.expired_at_us.get(&lease).copied()
        };
        if let Some(at_us) = expired_at_us.filter(|at_us| *at_us < until_us) {
            self.violation(format!(
                "lease {lease:x} expired at {at_us} us, and then a keepalive proved it alive until {until_us} us"
            ));
        }
    }

    /// A node applied the expiry of lease `lease`.
    pub(crate) fn expired(&self, lease: u64) {
        let at_us = crate::clock::elapsed_us();
        let proven_until_us = {
            let mut record = self.record();
            if record.expired_at_us.contains_key(&lease) {
                return;
            }
            record.expired_at_us.insert(lease, at_us);
            record.proven_until_us.get(&lease).copied()
        };
        self.trace(format!("lease {lease:x} expired"));
        if let Some(until_us) = proven_until_us.filter(|until_us| at_us < *until_us) {
            self.violation(format!(
                "lease {lease:x} expired at {at_us} us, before its proven deadline {until_us} us"
            ));
        }
    }

    /// Whether lease `lease` has expired.
    pub(crate) fn has_expired(&self, lease: u64) -> bool {
        self.record().expired_at_us.contains_key(&lease)
    }

    /// Records an operation on `lock`.
    pub(crate) fn lock_op(&self, lock: &str, op: LockOp) {
        let mut record = self.record();
        record
            .lock_ops
            .entry(lock.to_string())
            .or_default()
            .push(op);
    }

    /// Each lock's operations, and each lease's proven deadline.
    pub(crate) fn lock_ops(&self) -> (BTreeMap<String, Vec<LockOp>>, BTreeMap<u64, u64>) {
        let record = self.record();
        (record.lock_ops.clone(), record.proven_until_us.clone())
    }

    pub(crate) fn grants(&self) -> Vec<AckedGrant> {
        self.record().grants.clone()
    }

    pub(crate) fn puts(&self) -> Vec<AckedPut> {
        self.record().puts.clone()
    }

    pub(crate) fn violations(&self) -> Vec<String> {
        self.record().violations.clone()
    }

    /// The whole trace.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.record().trace.clone()
    }

    /// A hash of the trace: equal for two runs of one seed.
    pub(crate) fn trace_hash(&self) -> u64 {
        // `DefaultHasher::new` has fixed keys: the same in every process.
        let mut hasher = DefaultHasher::new();
        self.record().trace.hash(&mut hasher);
        hasher.finish()
    }
}
