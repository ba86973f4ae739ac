use super::*;

#[test]
fn endpoints_become_base_urls() {
    assert_eq!(base_url("127.0.0.1:7101"), "http://127.0.0.1:7101");
    assert_eq!(base_url("http://h:1/"), "http://h:1");
    assert_eq!(base_url(" https://h:2 "), "https://h:2");
}
