//! The API's copies of state types write the JSON the state types write,
//! for any value, both ways: a drift between the HTTP format and the
//! snapshot format fails here first.

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{TimelineEvent, WaitEdge};

fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("encodes")
}

/// `state` and its API copy write the same bytes, and the API reads them
/// back as the copy.
fn same_from_state<S, A>(state: S)
where
    S: Serialize + Clone,
    A: Serialize + DeserializeOwned + From<S> + PartialEq + std::fmt::Debug,
{
    let copy = A::from(state.clone());
    let bytes = json(&state);
    assert_eq!(bytes, json(&copy));
    assert_eq!(serde_json::from_str::<A>(&bytes).expect("decodes"), copy);
}

/// Whatever the API writes, the state type reads and writes again byte for
/// byte: the API has no variant or field the state type lacks.
fn same_from_api<S, A>(api: A)
where
    S: Serialize + DeserializeOwned,
    A: Serialize,
{
    let bytes = json(&api);
    let state: S = serde_json::from_str(&bytes).expect("the state type reads it");
    assert_eq!(json(&state), bytes);
}

proptest! {
    #[test]
    fn timeline_events_write_the_same_json(event: corral_state::TimelineEvent) {
        same_from_state::<_, TimelineEvent>(event);
    }

    #[test]
    fn api_timeline_events_read_as_state_ones(event: TimelineEvent) {
        same_from_api::<corral_state::TimelineEvent, _>(event);
    }

    #[test]
    fn wait_edges_write_the_same_json(edge: corral_state::WaitEdge) {
        same_from_state::<_, WaitEdge>(edge);
    }

    #[test]
    fn api_wait_edges_read_as_state_ones(edge: WaitEdge) {
        same_from_api::<corral_state::WaitEdge, _>(edge);
    }
}
