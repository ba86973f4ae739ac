use super::*;

#[test]
fn durations_read_and_print() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1_500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
    assert!(parse_duration("5 days").is_err());
    assert!(parse_duration("-1s").is_err());
    assert_eq!(duration(Duration::from_millis(250)), "250ms");
    assert_eq!(duration(Duration::from_millis(9_800)), "9.8s");
    assert_eq!(duration(Duration::from_secs(10)), "10s");
    assert_eq!(duration(Duration::from_secs(150)), "2m30s");
}
