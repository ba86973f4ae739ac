//! The compact collections read and write exactly as the `BTree` ones they
//! replace, and keep their order and uniqueness.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::lock::Mode;
use crate::token::FencingToken;

fn name(n: u8) -> LockName {
    LockName::new(format!("lock/{n}")).expect("a name")
}

fn grant(lease: u8, token: u64) -> Grant {
    Grant {
        name: name(0),
        lease_id: LeaseId(u128::from(lease)),
        mode: Mode::Shared,
        permits: 1,
        value: None,
        fencing_token: FencingToken(token),
        granted_at_ms: 7,
    }
}

proptest! {
    /// Any inserts and removes leave the same names as a `BTreeSet`, and the
    /// same JSON; the `BTreeSet`'s JSON reads back as the same set.
    #[test]
    fn a_name_set_behaves_as_a_btree_set(ops in prop::collection::vec((any::<bool>(), 0u8..12), 0..64)) {
        let (mut set, mut model) = (NameSet::default(), BTreeSet::new());
        for (add, n) in ops {
            let changed = match add {
                true => (set.insert(name(n)), model.insert(name(n))),
                false => (set.remove(&name(n)), model.remove(&name(n))),
            };
            prop_assert_eq!(changed.0, changed.1);
        }
        prop_assert!(set.iter().eq(model.iter()));
        prop_assert_eq!(set.len(), model.len());
        let json = serde_json::to_string(&set).expect("encodes");
        prop_assert_eq!(&json, &serde_json::to_string(&model).expect("encodes"));
        let back: NameSet = serde_json::from_str(&json).expect("decodes");
        prop_assert_eq!(back, set);
    }

    /// Any inserts and removes leave the same holders as a `BTreeMap` by
    /// lease id, and the same JSON, which reads back.
    #[test]
    fn holders_behave_as_a_btree_map(ops in prop::collection::vec((any::<bool>(), 0u8..12, 0u64..99), 0..64)) {
        let (mut holders, mut model) = (Holders::default(), BTreeMap::new());
        for (add, lease, token) in ops {
            let g = grant(lease, token);
            let replaced = match add {
                true => (holders.insert(g.clone()), model.insert(g.lease_id, g)),
                false => (holders.remove(&g.lease_id), model.remove(&g.lease_id)),
            };
            prop_assert_eq!(replaced.0, replaced.1);
        }
        prop_assert!(holders.values().eq(model.values()));
        prop_assert!(holders.keys().eq(model.keys()));
        let json = serde_json::to_string(&holders).expect("encodes");
        prop_assert_eq!(&json, &serde_json::to_string(&model).expect("encodes"));
        let back: Holders = serde_json::from_str(&json).expect("decodes");
        prop_assert_eq!(back, holders);
    }
}

#[test]
fn a_set_reads_any_order_and_repeats_once() {
    let set: NameSet = serde_json::from_str(r#"["lock/2","lock/1","lock/2"]"#).expect("decodes");
    assert_eq!(set.iter().cloned().collect::<Vec<_>>(), [name(1), name(2)]);
}

#[test]
fn a_holder_keyed_by_another_lease_is_refused() {
    let mut model = BTreeMap::new();
    model.insert(LeaseId(9), grant(1, 1));
    let json = serde_json::to_string(&model).expect("encodes");
    let read = serde_json::from_str::<Holders>(&json);
    assert!(read.is_err(), "{read:?}");
}
