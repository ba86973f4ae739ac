use std::time::Duration;

use super::*;

const WALL_MS: u64 = 1_764_280_000_000;
const HOUR: Duration = Duration::from_secs(3_600);

fn wall_never_read() -> u64 {
    panic!("the wall clock was read for a table that has a time")
}

#[test]
fn time_is_the_base_plus_monotonic_time_since_the_anchor() {
    let t0 = Instant::now();
    let a = Anchor::new(3, 5_000, wall_never_read, t0);
    assert_eq!(a.base_ms, 5_000);
    assert_eq!(a.time_ms(t0, 5_000), 5_000);
    assert_eq!(a.time_ms(t0 + Duration::from_millis(1_500), 5_000), 6_500);
    assert_eq!(a.time_ms(t0 + HOUR, 0), 5_000 + 3_600_000);
    // Never behind the table (another proposal of the term applied a
    // later stamp), and an instant before the anchor counts as the anchor.
    assert_eq!(a.time_ms(t0 + Duration::from_millis(10), 9_000), 9_000);
    assert_eq!(a.time_ms(t0 - Duration::from_millis(10), 5_000), 5_000);
}

#[test]
fn only_a_fresh_table_takes_the_wall_clock() {
    let t0 = Instant::now();
    assert_eq!(Anchor::new(1, 0, || WALL_MS, t0).base_ms, WALL_MS);
    assert_eq!(Anchor::new(1, 42, wall_never_read, t0).base_ms, 42);
}

#[test]
fn a_term_anchors_once_after_its_blank_entry_applied() {
    let clock = SmClock::default();
    let t0 = Instant::now();
    assert_eq!(clock.now_ms(2, false, 7_000, wall_never_read, t0), None);
    assert_eq!(clock.peek_ms(2, 7_000, t0), None);
    assert_eq!(
        clock.now_ms(2, true, 7_000, wall_never_read, t0),
        Some(7_000)
    );
    let later = t0 + Duration::from_millis(250);
    // Later calls of the term keep the anchor whatever the table says.
    assert_eq!(
        clock.now_ms(2, true, 7_100, wall_never_read, later),
        Some(7_250)
    );
    assert_eq!(clock.peek_ms(2, 7_100, later), Some(7_250));
    // A stale term is refused, a newer one anchors afresh.
    assert_eq!(clock.now_ms(1, true, 7_000, wall_never_read, later), None);
    assert_eq!(
        clock.now_ms(4, true, 7_300, wall_never_read, later),
        Some(7_300)
    );
    clock.clear();
    assert_eq!(clock.peek_ms(4, 7_300, later), None);
}

#[test]
fn wall_clock_jumps_change_nothing_once_anchored() {
    // The wall clock is read at most once, for a fresh table; an hour's
    // jump of it afterwards is invisible to the clock.
    let clock = SmClock::default();
    let t0 = Instant::now();
    assert_eq!(clock.now_ms(1, true, 0, || WALL_MS, t0), Some(WALL_MS));
    let jumped = || WALL_MS + 3_600_000;
    let t1 = t0 + Duration::from_secs(2);
    assert_eq!(
        clock.now_ms(1, true, WALL_MS, jumped, t1),
        Some(WALL_MS + 2_000)
    );
    let behind = || WALL_MS - 3_600_000;
    let t2 = t0 + Duration::from_secs(5);
    assert_eq!(
        clock.now_ms(1, true, WALL_MS + 2_000, behind, t2),
        Some(WALL_MS + 5_000)
    );
}
