//! The command strategies reach every variant of [`Command`].

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

use crate::arbitrary::{command, extreme_command};
use crate::Command;

/// Each variant's place; exhaustive, so a new variant does not compile
/// until it is counted here (and then the test asks the strategy for it).
fn variant(command: &Command) -> usize {
    match command {
        Command::GrantLease { .. } => 0,
        Command::RevokeLease { .. } => 1,
        Command::ExpireLease { .. } => 2,
        Command::Acquire { .. } => 3,
        Command::AcquireAll { .. } => 4,
        Command::AcquirePermits { .. } => 5,
        Command::Release { .. } => 6,
        Command::CancelWait { .. } => 7,
        Command::CancelWaitAll { .. } => 8,
        Command::LiftLockDelays => 9,
        Command::SetLockOrder { .. } => 10,
        Command::Campaign { .. } => 11,
        Command::Proclaim { .. } => 12,
        Command::Resign { .. } => 13,
        Command::KvPut { .. } => 14,
        Command::KvDelete { .. } => 15,
        Command::EnableAuth { .. } => 16,
        Command::AddToken { .. } => 17,
        Command::RevokeToken { .. } => 18,
        Command::Restore { .. } => 19,
        Command::ConfigureQueue { .. } => 20,
        Command::Enqueue { .. } => 21,
        Command::Claim { .. } => 22,
        Command::Ack { .. } => 23,
        Command::ExtendClaim { .. } => 24,
        Command::Nack { .. } => 25,
        Command::TickQueue { .. } => 26,
        Command::CancelClaimWait { .. } => 27,
    }
}

const VARIANTS: usize = 28;

/// Draws 28,000 commands of `strategy` and checks that each variant
/// comes about 1 in 28 times.
fn check_every_variant_about_equally_often(strategy: impl Strategy<Value = Command>) {
    let mut runner = TestRunner::deterministic();
    let mut seen = [0usize; VARIANTS];
    let draws = 28_000;
    for _ in 0..draws {
        let tree = strategy.new_tree(&mut runner).expect("a command");
        seen[variant(&tree.current())] += 1;
    }
    // 1 in 28 each: 1000 expected; far from the bounds unless a variant
    // is missing or a family is weighted wrong.
    for (i, count) in seen.iter().enumerate() {
        assert!(
            (700..1300).contains(count),
            "variant {i}: {count} of {draws}"
        );
    }
}

#[test]
fn the_command_strategy_makes_every_variant_about_equally_often() {
    check_every_variant_about_equally_often(command());
}

#[test]
fn the_extreme_command_strategy_makes_every_variant_about_equally_often() {
    check_every_variant_about_equally_often(extreme_command());
}
