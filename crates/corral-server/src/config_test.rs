use super::*;

#[test]
fn parses_members() {
    let members = parse_initial_cluster("1=127.0.0.1:7101, 2=127.0.0.1:7102").unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(members[&2], "127.0.0.1:7102");
    assert!(parse_initial_cluster("").is_err());
    assert!(parse_initial_cluster("x=1").is_err());
    assert!(parse_initial_cluster("1=a,1=b").is_err());
    assert!(parse_initial_cluster("1").is_err());
}

#[test]
fn parses_lock_order() {
    let order = parse_lock_order("user/, cart/,,inventory/").unwrap();
    assert_eq!(order, ["user/", "cart/", "inventory/"]);
    assert!(parse_lock_order("").unwrap().is_empty());
    assert!(parse_lock_order("a,a").is_err());
}
