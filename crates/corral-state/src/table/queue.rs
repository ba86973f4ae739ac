//! Granting: handing locks and permits to their waiters in FIFO order,
//! acquire-alls all at once, and lock-delay.

use super::LockTable;
use crate::lease::LeaseId;
use crate::lock::{Claim, Grant, Kind, LockName};
use crate::outcome::Event;

impl LockTable {
    /// Takes `lease_id` out of the holders and queues of `names` (its lease
    /// has already let go of them), then grants each onwards.
    ///
    /// All removals come before any grant, so that a grant cascading into
    /// another of `names` never finds the departing lease still queued.
    pub(super) fn remove_lease_from(
        &mut self,
        kind: Kind,
        lease_id: LeaseId,
        names: &[LockName],
        events: &mut Vec<Event>,
    ) {
        for name in names {
            let lock = self
                .map_mut(kind)
                .get_mut(name)
                .expect("a lock a lease held or waited for is in use");
            lock.holders.remove(&lease_id);
            self.remove_waiter(kind, name, lease_id);
        }
        for name in names {
            self.grant_waiters(kind, name, events);
        }
    }

    /// Grants `name` to the head of its queue for as long as the head fits,
    /// in order, and removes the lock once nothing keeps it in use.
    ///
    /// A head that waits for an acquire-all is granted only together with
    /// the rest of it, when it heads every one of its queues and fits in
    /// each; its grant may free up those other queues, which are then
    /// granted onwards too.
    pub(super) fn grant_waiters(&mut self, kind: Kind, name: &LockName, events: &mut Vec<Event>) {
        let mut todo = vec![name.clone()];
        while let Some(name) = todo.pop() {
            loop {
                let map = self.map_mut(kind);
                let Some(lock) = map.get_mut(&name) else {
                    break;
                };
                if lock.is_unused() {
                    map.remove(&name);
                    break;
                }
                if !lock.head_fits() {
                    break;
                }
                let head = lock.waiters.front().expect("a head that fits").clone();
                if !head.grouped {
                    self.pop_waiter(kind, &name);
                    self.lease_mut(head.lease_id).waited_mut(kind).remove(&name);
                    let grant = self.grant(kind, head.lease_id, name.clone(), head.claim());
                    events.push(Event::Granted { kind, grant });
                    continue;
                }
                let Some(waited) = self.ready_group(head.lease_id, &name) else {
                    break;
                };
                let grants = self.grant_group(head.lease_id, &name, &waited);
                events.push(Event::GrantedAll(grants));
                todo.extend(waited.into_iter().filter(|n| *n != name));
            }
        }
    }

    /// The locks the acquire-all that queues `lease_id` in `name` still
    /// waits for, if it heads every one of those queues and fits in each.
    pub(super) fn ready_group(&self, lease_id: LeaseId, name: &LockName) -> Option<Vec<LockName>> {
        let lease = self.leases.get(&lease_id)?;
        let group = lease.group_of(name)?;
        let waited: Vec<LockName> = group.waiting.iter().cloned().collect();
        let ready = waited.iter().all(|n| {
            self.locks.get(n).is_some_and(|lock| {
                lock.waiters.front().map(|w| w.lease_id) == Some(lease_id)
                    && lock.admits(group.mode, 1)
            })
        });
        ready.then_some(waited)
    }

    /// Grants a ready acquire-all every lock it waits for, in name order,
    /// and answers with all its grants.
    fn grant_group(
        &mut self,
        lease_id: LeaseId,
        name: &LockName,
        waited: &[LockName],
    ) -> Vec<Grant> {
        let lease = self.lease_mut(lease_id);
        let at = lease
            .groups
            .iter()
            .position(|g| g.waiting.contains(name))
            .expect("a grouped waiter's lease keeps its group");
        let group = lease.groups.remove(at);
        for n in waited {
            lease.waits.remove(n);
        }
        // Names the lease held when it asked are in the answer too, unless
        // it released one meanwhile; they are re-granted, as an acquire-all
        // granted at once re-grants them, all in name order.
        for n in &group.names {
            if waited.contains(n) {
                self.pop_waiter(Kind::Lock, n);
                self.grant(Kind::Lock, lease_id, n.clone(), Claim::lock(group.mode));
            } else if self.lease_mut(lease_id).holds.contains(n) {
                self.regrant(Kind::Lock, lease_id, n);
            }
        }
        self.grants_of(lease_id, &group.names)
    }

    /// Grants `name` of `kind`, which is in use, to `lease_id` under the
    /// next token.
    pub(super) fn grant(
        &mut self,
        kind: Kind,
        lease_id: LeaseId,
        name: LockName,
        claim: Claim,
    ) -> Grant {
        self.last_token = self.last_token.next();
        let Claim {
            mode,
            permits,
            value,
        } = claim;
        let grant = Grant {
            name: name.clone(),
            lease_id,
            mode,
            permits,
            value,
            fencing_token: self.last_token,
            granted_at_ms: self.now_ms,
        };
        self.lease_mut(lease_id).held_mut(kind).insert(name.clone());
        let lock = self
            .map_mut(kind)
            .get_mut(&name)
            .expect("a lock is in use before it is granted");
        assert!(
            lock.admits(mode, permits),
            "granted a lock beside an incompatible holder"
        );
        lock.holders.insert(grant.clone());
        grant
    }

    /// Grants `name` of `kind` again to `lease_id`, which holds it: the
    /// same holder, mode, permits and value, under the next token. The
    /// grant time stays: the lease's hold goes on, and hold-time metrics
    /// measure it whole (the timeline records the re-grant).
    ///
    /// An acquire by a lease that already holds answers so, never with the
    /// grant it had: a release of the old grant sent earlier and delayed
    /// (a node paused with it) names the old token and so cannot end what
    /// the client was just told it holds. No one else is admitted, so
    /// neither the queue nor a lock-delay holds it back.
    pub(super) fn regrant(&mut self, kind: Kind, lease_id: LeaseId, name: &LockName) -> Grant {
        let next = self.last_token.next();
        let held = self
            .map_mut(kind)
            .get_mut(name)
            .and_then(|lock| lock.holders.get_mut(&lease_id))
            .expect("a re-granted lock is held by the lease");
        held.fencing_token = next;
        let grant = held.clone();
        self.last_token = next;
        grant
    }

    /// Ends the lock-delay of `name` if it has run out, granting its
    /// waiters before any new request.
    pub(super) fn lift_if_due(&mut self, name: &LockName, events: &mut Vec<Event>) {
        let now_ms = self.now_ms;
        let due = self
            .locks
            .get(name)
            .is_some_and(|lock| lock.delayed_until_ms > 0 && lock.delayed_until_ms <= now_ms);
        if due {
            self.end_delay(name);
            self.grant_waiters(Kind::Lock, name, events);
        }
    }

    /// Ends every lock-delay that has run out and says how many.
    pub(super) fn lift_lock_delays(&mut self, events: &mut Vec<Event>) -> usize {
        let due = self.due_lock_delays(self.now_ms);
        for name in &due {
            self.lift_if_due(name, events);
        }
        due.len()
    }
}
