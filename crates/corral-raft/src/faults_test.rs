use super::*;

#[test]
fn off_blocks_nothing_and_on_blocks_what_it_is_told() {
    let off = Faults::default();
    assert!(!off.set_blocked(["a:1".to_string()]));
    assert!(!off.blocks("a:1"));
    let on = Faults::enabled();
    assert!(on.set_blocked(["a:1".to_string()]));
    assert!(on.blocks("a:1") && !on.blocks("b:2"));
    on.set_blocked([]);
    assert!(!on.blocks("a:1"));
}

#[test]
fn off_delays_no_log_sync_and_on_delays_by_what_it_is_told() {
    let off = Faults::default();
    assert!(!off.set_log_sync_delay_ms(50));
    assert_eq!(off.log_sync_delay_ms(), 0);
    let on = Faults::enabled();
    assert_eq!(on.log_sync_delay_ms(), 0);
    assert!(on.set_log_sync_delay_ms(50));
    // A clone is the same node's faults: the flusher sees the change.
    let flusher = on.clone();
    assert_eq!(flusher.log_sync_delay_ms(), 50);
    let started = std::time::Instant::now();
    flusher.delay_log_sync();
    assert!(started.elapsed() >= Duration::from_millis(50));
    on.set_log_sync_delay_ms(0);
    assert_eq!(flusher.log_sync_delay_ms(), 0);
    assert!(!off.set_log_sync_fails(true) && !off.log_sync_fails());
    assert!(on.set_log_sync_fails(true) && flusher.log_sync_fails());
    assert!(!off.set_clock_offset_ms(5) && off.clock_offset_ms() == 0);
    assert!(on.set_clock_offset_ms(-5) && flusher.clock_offset_ms() == -5);
}
