use clap::Parser;
use serde_json::json;

use super::*;
use crate::cli::ClientCommand;
use crate::{Cli, Commands};

fn parse(args: &[&str]) -> Result<QueueCommand, clap::Error> {
    let line = ["corral", "queue"].iter().chain(args);
    match Cli::try_parse_from(line)?.command {
        Commands::Client(ClientCommand::Queue(command)) => Ok(command),
        _ => panic!("not a queue command"),
    }
}

fn name(text: &str) -> LockName {
    LockName::new(text).unwrap()
}

#[test]
fn a_push_takes_any_json_and_refuses_what_is_not() {
    let line = ["push", "jobs/email", r#"{"to":"a"}"#, "--delay-ms", "1500"];
    let QueueCommand::Push(push) = parse(&line).unwrap() else {
        panic!("not a push");
    };
    assert_eq!((push.queue.as_str(), push.delay_ms), ("jobs/email", 1_500));
    assert_eq!((push.payload, push.dedup_id), (json!({"to": "a"}), None));
    let QueueCommand::Push(push) = parse(&["push", "q", "\"text\"", "--dedup-id", "d"]).unwrap()
    else {
        panic!("not a push");
    };
    assert_eq!(
        (push.payload, push.dedup_id.as_deref()),
        (json!("text"), Some("d"))
    );
    let error = parse(&["push", "q", "text"]).unwrap_err();
    assert_eq!(error.exit_code(), 2);
    assert!(error.to_string().contains("needs its quotes"), "{error}");
    let delay = (VISIBILITY_MS_MAX + 1).to_string();
    assert!(parse(&["push", "q", "1", "--delay-ms", &delay]).is_err());
}

#[test]
fn work_takes_its_command_after_the_dashes_with_defaults() {
    let line = [
        "work",
        "q",
        "--max-items",
        "3",
        "--",
        "sh",
        "-c",
        "cat >> f",
    ];
    let QueueCommand::Work(work) = parse(&line).unwrap() else {
        panic!("not work");
    };
    assert_eq!(work.command, ["sh", "-c", "cat >> f"]);
    assert_eq!((work.max_items, work.concurrency), (Some(3), 1));
    assert_eq!((work.visibility_ms, work.nack_delay_ms), (30_000, 0));
    assert_eq!(
        (work.ttl, work.grace),
        (Duration::from_secs(10), Duration::from_secs(5))
    );
    // A command is needed, and so is at least one worker and a visibility.
    assert!(parse(&["work", "q"]).is_err());
    assert!(parse(&["work", "q", "--concurrency", "0", "--", "true"]).is_err());
    assert!(parse(&["work", "q", "--visibility-ms", "0", "--", "true"]).is_err());
}

#[test]
fn configure_and_items_read_their_options() {
    let line = [
        "configure",
        "q",
        "--max-attempts",
        "3",
        "--dead-letter",
        "q/dead",
    ];
    let QueueCommand::Configure(configure) = parse(&line).unwrap() else {
        panic!("not configure");
    };
    assert_eq!(configure.max_attempts, 3);
    assert_eq!(configure.dead_letter.as_deref(), Some("q/dead"));
    assert!(
        parse(&["configure", "q"]).is_err(),
        "--max-attempts is needed"
    );
    let QueueCommand::Items(items) = parse(&["items", "q", "--state", "claimed"]).unwrap() else {
        panic!("not items");
    };
    assert_eq!((items.state, items.limit), (Some(StateArg::Claimed), 100));
    assert!(parse(&["items", "q", "--limit", "1001"]).is_err());
    assert!(parse(&["items", "q", "--state", "gone"]).is_err());
}

fn view() -> QueueView {
    QueueView {
        queue: name("jobs/email"),
        max_attempts: 0,
        dead_letter: None,
        ready: 4,
        claimed: 2,
        delayed: 1,
        waiting_claims: 0,
        dead_lettered_total: 5,
        dropped_total: 0,
        oldest_ready_age_ms: Some(2_500),
    }
}

#[test]
fn stats_show_counts_and_settings() {
    let row = stats_row(&view());
    assert_eq!(row, ["jobs/email", "4", "2", "1", "0", "2.5s", "5", "0"]);
    assert_eq!(row.len(), STATS_HEADER.len());
    let idle = QueueView {
        oldest_ready_age_ms: None,
        ..view()
    };
    assert_eq!(stats_row(&idle)[5], "-");
    assert_eq!(settings(&view()), "no limit on attempts");
    let limited = QueueView {
        max_attempts: 3,
        dead_letter: Some(name("jobs/dead")),
        ..view()
    };
    assert_eq!(
        settings(&limited),
        "after 3 attempts an item moves to jobs/dead"
    );
    let dropping = QueueView {
        dead_letter: None,
        ..limited
    };
    assert_eq!(settings(&dropping), "after 3 attempts an item is dropped");
}

#[test]
fn items_show_their_state_token_and_a_short_payload() {
    let item = ItemView {
        item_id: ItemId(7),
        seq: 3,
        state: ItemState::Claimed,
        attempt: 2,
        enqueued_ms: 0,
        visible_at_ms: 1_700_000_000_000,
        fencing_token: Some(FencingToken(12)),
        payload: json!({"text": "x".repeat(100)}),
        dead_letter_from: None,
    };
    let row = item_row(&item);
    assert_eq!(
        row[..6],
        ["7", "3", "claimed", "2", "2023-11-14 22:13:20", "12"]
    );
    assert_eq!(row[6].chars().count(), PAYLOAD_SHOWN_MAX);
    assert!(row[6].starts_with(r#"{"text":"xxx"#) && row[6].ends_with("..."));
    let ready = ItemView {
        state: ItemState::Ready,
        fencing_token: None,
        payload: json!(1),
        ..item
    };
    assert_eq!(item_row(&ready)[5..], ["-", "1"]);
    assert_eq!(item_row(&ready).len(), ITEMS_HEADER.len());
}

#[test]
fn pushes_and_runs_are_told_in_words() {
    let mut pushed = EnqueueResponse {
        item_id: ItemId(7),
        seq: 3,
        duplicate: false,
    };
    assert_eq!(
        pushed_line(&name("q"), &pushed),
        "pushed item 7 to q (seq 3)"
    );
    pushed.duplicate = true;
    assert!(pushed_line(&name("q"), &pushed).contains("nothing added"));
    assert_eq!(ran_words(Ran::Exited(0)), "done");
    assert_eq!(ran_words(Ran::Exited(1)), "the command exited with 1");
    assert_eq!(nacked_word(false, Duration::ZERO), "nacked: ready again");
    let later = nacked_word(false, Duration::from_secs(2));
    assert_eq!(later, "nacked: ready again in 2s");
    assert!(nacked_word(true, Duration::ZERO).contains("left the queue"));
}

#[test]
fn the_command_gets_the_item_in_its_environment_and_its_payload_on_a_line() {
    let lease_id = LeaseId(0xabc);
    let item = (ItemId(7), FencingToken(12), 2);
    let env = item_env(&name("jobs/email"), item, lease_id);
    let expected = [
        ("CORRAL_QUEUE", "jobs/email".to_string()),
        ("CORRAL_ITEM_ID", "7".to_string()),
        ("CORRAL_FENCING_TOKEN", "12".to_string()),
        ("CORRAL_ATTEMPT", "2".to_string()),
        ("CORRAL_LEASE_ID", lease_id.to_string()),
    ];
    assert_eq!(env, expected);
    assert_eq!(stdin_of(&json!({"n": 1})), b"{\"n\":1}\n");
}

#[test]
fn the_budget_counts_items_taken_and_given_back() {
    let budget = Budget::new(Some(2));
    assert!(budget.take() && budget.take());
    assert!(!budget.take(), "spent");
    budget.give_back();
    assert!(budget.take());
    assert!(!budget.take());
    let endless = Budget::new(None);
    assert!((0..1_000).all(|_| endless.take()));
}
