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

#[test]
fn dates_print_in_utc() {
    assert_eq!(date_time(0), "1970-01-01 00:00:00");
    assert_eq!(date_time(951_782_400_000), "2000-02-29 00:00:00");
    assert_eq!(date_time(951_868_799_999), "2000-02-29 23:59:59");
    assert_eq!(date_time(1_700_000_000_000), "2023-11-14 22:13:20");
    assert_eq!(date_time(4_107_542_400_000), "2100-03-01 00:00:00");
}
