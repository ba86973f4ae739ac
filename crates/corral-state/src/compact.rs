//! Small sorted collections for what a lease or a lock usually holds one
//! of: a lease's names, a lock's holders. A `BTreeSet` or `BTreeMap` with
//! one entry allocates a whole node (11 slots: about 1 KiB for a lock's
//! one holder), which made a lease with one lock cost over 2 KiB. A sorted
//! `Vec` allocates what it holds; lookups are binary searches, and the
//! rare long one (a shared lock with thousands of holders) pays a move on
//! insert and remove.
//!
//! Each encodes exactly as the `BTree` collection it replaces (a sequence,
//! a map by lease id), so logs and snapshots read the same either way.
//! A lease with one lock and a lock with one holder cost about 0.5 KiB
//! together in the table (measured at 1M: see docs/benchmarks.md).

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thin_vec::ThinVec;

use crate::lease::LeaseId;
use crate::lock::{Grant, LockName};

/// A set of lock names, sorted, each once. A `ThinVec` is one pointer
/// wide and allocates nothing empty: a lease has six of these sets, and
/// most are empty.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct NameSet(ThinVec<LockName>);

impl NameSet {
    /// Adds `name`; false if it was there.
    pub fn insert(&mut self, name: LockName) -> bool {
        match self.0.binary_search(&name) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, name);
                true
            }
        }
    }

    /// Removes `name`; false if it was not there.
    pub fn remove(&mut self, name: &LockName) -> bool {
        match self.0.binary_search(name) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether `name` is in it.
    pub fn contains(&self, name: &LockName) -> bool {
        self.0.binary_search(name).is_ok()
    }

    /// The names, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, LockName> {
        self.0.iter()
    }

    /// How many names.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first name in order.
    pub fn first(&self) -> Option<&LockName> {
        self.0.first()
    }
}

impl fmt::Debug for NameSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(&self.0).finish()
    }
}

impl FromIterator<LockName> for NameSet {
    fn from_iter<I: IntoIterator<Item = LockName>>(names: I) -> NameSet {
        let mut names: ThinVec<LockName> = names.into_iter().collect();
        names.sort_unstable();
        names.dedup();
        NameSet(names)
    }
}

impl<'a> IntoIterator for &'a NameSet {
    type Item = &'a LockName;
    type IntoIter = std::slice::Iter<'a, LockName>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for NameSet {
    type Item = LockName;
    type IntoIter = thin_vec::IntoIter<LockName>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Serialize for NameSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(&self.0)
    }
}

impl<'de> Deserialize<'de> for NameSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NameSet, D::Error> {
        // As a `BTreeSet` reads it: any order, repeats once.
        Ok(Vec::<LockName>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

/// A lock's holders, sorted by lease id: each grant is keyed by its own
/// `lease_id`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Holders(Vec<Grant>);

impl Holders {
    fn find(&self, lease_id: &LeaseId) -> Result<usize, usize> {
        self.0.binary_search_by(|g| g.lease_id.cmp(lease_id))
    }

    /// The grant of `lease_id`.
    pub fn get(&self, lease_id: &LeaseId) -> Option<&Grant> {
        self.find(lease_id).ok().map(|at| &self.0[at])
    }

    /// The grant of `lease_id`, to change (not its lease).
    pub fn get_mut(&mut self, lease_id: &LeaseId) -> Option<&mut Grant> {
        self.find(lease_id).ok().map(|at| &mut self.0[at])
    }

    /// Whether `lease_id` holds it.
    pub fn contains_key(&self, lease_id: &LeaseId) -> bool {
        self.find(lease_id).is_ok()
    }

    /// Sets the grant of `grant.lease_id`; the one it replaced, if any.
    pub fn insert(&mut self, grant: Grant) -> Option<Grant> {
        match self.find(&grant.lease_id) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at], grant)),
            Err(at) => {
                self.0.insert(at, grant);
                None
            }
        }
    }

    /// Removes the grant of `lease_id`.
    pub fn remove(&mut self, lease_id: &LeaseId) -> Option<Grant> {
        self.find(lease_id).ok().map(|at| self.0.remove(at))
    }

    /// The grants, by lease id.
    pub fn values(&self) -> std::slice::Iter<'_, Grant> {
        self.0.iter()
    }

    /// The holding leases, in order.
    pub fn keys(&self) -> impl Iterator<Item = &LeaseId> + '_ {
        self.0.iter().map(|g| &g.lease_id)
    }

    /// How many hold it.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none holds it.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Holders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|g| (&g.lease_id, g)))
            .finish()
    }
}

impl Serialize for Holders {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|g| (g.lease_id, g)))
    }
}

impl<'de> Deserialize<'de> for Holders {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Holders, D::Error> {
        deserializer.deserialize_map(HoldersVisitor)
    }
}

struct HoldersVisitor;

impl<'de> Visitor<'de> for HoldersVisitor {
    type Value = Holders;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of lease ids to their grants")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Holders, A::Error> {
        let mut holders = Holders::default();
        while let Some((lease_id, grant)) = map.next_entry::<LeaseId, Grant>()? {
            if grant.lease_id != lease_id {
                return Err(serde::de::Error::custom(format!(
                    "the holder {lease_id} has a grant of lease {}",
                    grant.lease_id
                )));
            }
            // As a `BTreeMap` reads it: the last of a repeated key counts.
            holders.insert(grant);
        }
        Ok(holders)
    }
}

#[cfg(test)]
#[path = "compact_test.rs"]
mod tests;
