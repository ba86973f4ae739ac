use proptest::prelude::*;

use super::*;

proptest! {
    /// Every command that may wait can be withdrawn, by a cancel of the
    /// same lease, kind and names; no other command waits.
    #[test]
    fn what_waits_can_be_withdrawn(command in crate::arbitrary::command()) {
        let wait = command.wait_for();
        let withdrawal = command.withdrawal();
        prop_assert_eq!(wait.is_some(), withdrawal.is_some());
        let (Some(wait), Some(withdrawal)) = (wait, withdrawal) else {
            return Ok(());
        };
        match withdrawal {
            Command::CancelWait { lease_id, name, kind } => {
                prop_assert_eq!(lease_id, wait.lease_id);
                prop_assert_eq!(kind, wait.kind);
                prop_assert_eq!(vec![name], wait.names);
            }
            Command::CancelWaitAll { lease_id, names } => {
                let acquires_all = matches!(command, Command::AcquireAll { .. });
                prop_assert!(acquires_all);
                prop_assert_eq!(lease_id, wait.lease_id);
                prop_assert_eq!(names, wait.names);
            }
            other => prop_assert!(false, "not a withdrawal: {:?}", other),
        }
    }
}

#[test]
fn a_campaign_waits_for_its_election() {
    let name = LockName::new("leader").expect("a valid name");
    let campaign = Command::Campaign {
        lease_id: LeaseId(3),
        name: name.clone(),
        value: "me".into(),
        wait_ms: 500,
    };
    let wait = campaign.wait_for().expect("a campaign waits");
    assert_eq!(wait.kind, Kind::Election);
    assert_eq!(wait.wait_ms, 500);
    assert_eq!(
        campaign.withdrawal(),
        Some(Command::CancelWait {
            lease_id: LeaseId(3),
            name,
            kind: Kind::Election,
        })
    );
    assert_eq!(Command::LiftLockDelays.wait_for(), None);
}
