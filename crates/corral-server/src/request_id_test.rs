use super::*;

#[test]
fn a_clean_client_id_is_kept_and_a_bad_one_replaced() {
    let mut headers = HeaderMap::new();
    headers.insert(HEADER, "job-42".parse().unwrap());
    assert_eq!(from_headers(&headers), "job-42");
    headers.insert(HEADER, "a b".parse().unwrap());
    let made = from_headers(&headers);
    assert_eq!(made.len(), 16);
    assert!(made.bytes().all(|b| b.is_ascii_hexdigit()));
    headers.insert(HEADER, "x".repeat(LEN_MAX + 1).parse().unwrap());
    assert_ne!(from_headers(&headers).len(), LEN_MAX + 1);
    assert_eq!(from_headers(&HeaderMap::new()).len(), 16);
}

#[tokio::test]
async fn the_id_is_current_inside_its_scope_only() {
    assert_eq!(current(), None);
    let inside = scope("r1".into(), async { current() }).await;
    assert_eq!(inside.as_deref(), Some("r1"));
}
