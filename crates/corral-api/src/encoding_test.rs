//! Bodies that cross between nodes or reach clients decode to what was
//! encoded, for any value: what a member says of itself to its peers, and
//! the bodies of token management.

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{
    AddMemberRequest, AddTokenRequest, AddTokenResponse, JoinRequest, MemberList, MemberSelf,
    RevokeTokenResponse, TokenList, TokenView,
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

    /// The membership API's bodies, and the join handshake between peers.
    #[test]
    fn membership_bodies_round_trip(
        list in any::<MemberList>(),
        add in any::<AddMemberRequest>(),
        join in any::<JoinRequest>(),
    ) {
        prop_assert!(round_trips(&list));
        prop_assert!(round_trips(&add));
        prop_assert!(round_trips(&join));
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
