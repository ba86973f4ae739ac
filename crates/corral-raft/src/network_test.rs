use super::*;

fn answer_naming(format: Option<&str>) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(format) = format {
        headers.insert(FORMAT_HEADER, format.parse().expect("a header value"));
    }
    headers
}

/// A peer not heard from is sent the newest format; one that answered
/// without naming a format reads JSON only; one that names a newer format
/// than this node's is sent this node's; one that names garbage is taken
/// as an old one.
#[test]
fn peer_formats_follow_what_each_peer_answered() {
    let formats = PeerFormats::default();
    assert_eq!(formats.sending("a:1"), PEER_FORMAT);
    formats.learn("a:1", &answer_naming(None));
    assert_eq!(formats.sending("a:1"), JSON_PEER_FORMAT);
    assert_eq!(formats.sending("b:1"), PEER_FORMAT, "each peer apart");
    formats.learn("a:1", &answer_naming(Some("2")));
    assert_eq!(formats.sending("a:1"), 2);
    formats.learn("a:1", &answer_naming(Some("200")));
    assert_eq!(formats.sending("a:1"), PEER_FORMAT);
    formats.learn("a:1", &answer_naming(Some("two")));
    assert_eq!(formats.sending("a:1"), JSON_PEER_FORMAT);
}
