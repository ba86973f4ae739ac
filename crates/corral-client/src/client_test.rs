use super::*;

#[test]
fn backoff_stays_under_its_ceiling() {
    let policy = RetryPolicy::default();
    for attempt in 1..30 {
        assert!(policy.backoff(attempt) <= policy.cap);
    }
    assert!(policy.backoff(1) <= policy.base);
}

#[test]
fn endpoints_are_normalized_and_required() {
    let client = Client::new(["127.0.0.1:7101", "http://h:2/"]).unwrap();
    assert_eq!(client.endpoints(), ["http://127.0.0.1:7101", "http://h:2"]);
    assert!(Client::new(Vec::<String>::new()).is_err());
    assert!(Client::new([" "]).is_err());
}

#[test]
fn query_values_are_encoded() {
    assert_eq!(encode("a/b c&d"), "a/b%20c%26d");
    assert_eq!(encode("é"), "%C3%A9");
}
