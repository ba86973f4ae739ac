//! Bodies that cross between nodes or reach clients decode to what was
//! encoded, for any value: what a member says of itself to its peers, and
//! the bodies of token management.

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{
    AckRequest, AddMemberRequest, AddTokenRequest, AddTokenResponse, ClaimRequest, ClaimResponse,
    ClaimedItemView, ConfigureQueueRequest, EnqueueRequest, EnqueueResponse, ExtendRequest, ItemId,
    ItemList, ItemResponse, ItemState, ItemView, JoinRequest, MemberList, MemberSelf, NackRequest,
    QueueList, QueueView, RevokeTokenResponse, SnapshotBuilt, TokenList, TokenView,
};

fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) -> bool {
    let text = serde_json::to_string(value).expect("encodes");
    let back: T = serde_json::from_str(&text).expect("decodes");
    &back == value
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_member_round_trips(member in any::<MemberSelf>()) {
        prop_assert!(round_trips(&member));
    }

    /// The work queue API's bodies.
    #[test]
    fn queue_bodies_round_trip(
        enqueued in any::<EnqueueResponse>(),
        claim in any::<ClaimRequest>(),
        ack in any::<AckRequest>(),
        extend in any::<ExtendRequest>(),
        nack in any::<NackRequest>(),
        answer in any::<ItemResponse>(),
        view in any::<QueueView>(),
    ) {
        prop_assert!(round_trips(&enqueued));
        prop_assert!(round_trips(&claim));
        prop_assert!(round_trips(&ack));
        prop_assert!(round_trips(&extend));
        prop_assert!(round_trips(&nack));
        prop_assert!(round_trips(&answer));
        prop_assert!(round_trips(&view));
        let list = QueueList { queues: vec![view], truncated: false };
        prop_assert!(round_trips(&list));
    }

    /// The membership API's bodies, and the join handshake between peers.
    #[test]
    fn membership_bodies_round_trip(
        list in any::<MemberList>(),
        add in any::<AddMemberRequest>(),
        join in any::<JoinRequest>(),
        built in any::<SnapshotBuilt>(),
    ) {
        prop_assert!(round_trips(&list));
        prop_assert!(round_trips(&add));
        prop_assert!(round_trips(&join));
        prop_assert!(round_trips(&built));
    }

    /// Lists are kept short: proptest's default vectors of vectors of
    /// permissions take a minute to generate and test nothing more.
    #[test]
    fn token_bodies_round_trip(
        add in any::<AddTokenRequest>(),
        added in any::<AddTokenResponse>(),
        view in any::<TokenView>(),
        views in prop::collection::vec(any::<TokenView>(), 0..4),
        revoked in any::<RevokeTokenResponse>(),
    ) {
        let list = TokenList { tokens: views };
        prop_assert!(round_trips(&add));
        prop_assert!(round_trips(&added));
        prop_assert!(round_trips(&view));
        prop_assert!(round_trips(&list));
        prop_assert!(round_trips(&revoked));
    }
}

/// The queue bodies that carry any JSON as a payload, with payloads of
/// every JSON kind (proptest has no strategy for JSON values).
#[test]
fn queue_bodies_with_payloads_round_trip() {
    let payloads = [
        serde_json::json!(null),
        serde_json::json!(true),
        serde_json::json!(-7),
        serde_json::json!(u64::MAX),
        serde_json::json!(1.5),
        serde_json::json!("text"),
        serde_json::json!([1, "two", {"three": [3]}]),
        serde_json::json!({"invoice": 42, "lines": [{"sku": "a"}]}),
    ];
    for payload in payloads {
        let enqueue = EnqueueRequest {
            payload: payload.clone(),
            delay_ms: 5,
            dedup_id: Some("d".into()),
        };
        assert!(round_trips(&enqueue));
        let claimed = ClaimedItemView {
            item_id: ItemId(3),
            seq: 2,
            payload: payload.clone(),
            fencing_token: crate::FencingToken(9),
            attempt: 1,
            visible_at_ms: 10,
        };
        assert!(round_trips(&ClaimResponse {
            items: vec![claimed]
        }));
        let item = ItemView {
            item_id: ItemId(3),
            seq: 2,
            state: ItemState::Claimed,
            attempt: 1,
            enqueued_ms: 1,
            visible_at_ms: 10,
            fencing_token: Some(crate::FencingToken(9)),
            payload,
            dead_letter_from: None,
        };
        assert!(round_trips(&ItemList {
            items: vec![item],
            truncated: true
        }));
    }
    let configure = ConfigureQueueRequest {
        max_attempts: 5,
        dead_letter: Some(crate::LockName::new("dlq").expect("a name")),
    };
    assert!(round_trips(&configure));
}
