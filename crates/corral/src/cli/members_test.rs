use clap::Parser;
use corral_client::{Error, ErrorKind, MemberStatus};

use super::*;
use crate::cli::{exit, ClientCommand, ClusterCommand};
use crate::{Cli, Commands};

fn member(id: u64, role: MemberRole, leader: bool) -> MemberStatus {
    MemberStatus {
        id,
        peer_addr: format!("10.0.0.{id}:7201"),
        client_addr: Some(format!("10.0.0.{id}:7101")),
        role,
        leader,
        lag: Some(0),
        reachable: true,
        last_ack_ms_ago: None,
    }
}

/// A leader, a follower 2.5 s behind on acks and 7 entries behind, and a
/// learner never heard from.
fn three() -> MemberList {
    let mut follower = member(2, MemberRole::Voter, false);
    follower.lag = Some(7);
    follower.last_ack_ms_ago = Some(2_500);
    let mut learner = member(4, MemberRole::Learner, false);
    learner.client_addr = None;
    learner.lag = None;
    learner.reachable = false;
    MemberList {
        leader_id: 1,
        changing: true,
        members: vec![member(1, MemberRole::Voter, true), follower, learner],
        retired: vec![3, 5],
    }
}

#[test]
fn the_members_table_has_a_row_per_member() {
    let expected: Vec<Vec<&str>> = vec![
        vec![
            "1",
            "voter",
            "*",
            "10.0.0.1:7201",
            "10.0.0.1:7101",
            "0",
            "yes",
            "-",
        ],
        vec![
            "2",
            "voter",
            "",
            "10.0.0.2:7201",
            "10.0.0.2:7101",
            "7",
            "yes",
            "2.5s ago",
        ],
        vec!["4", "learner", "", "10.0.0.4:7201", "?", "?", "no", "never"],
    ];
    let rows = member_rows(&three());
    assert_eq!(rows, expected);
    assert!(rows.iter().all(|r| r.len() == MEMBERS_HEADER.len()));
}

#[test]
fn the_summary_says_leader_counts_change_and_retired_ids() {
    assert_eq!(
        summary(&three()),
        "leader 1: 2 voters, 1 learners; a membership change is under way; retired ids 3, 5"
    );
    let settled = MemberList {
        leader_id: 2,
        changing: false,
        members: vec![member(2, MemberRole::Voter, true)],
        retired: Vec::new(),
    };
    assert_eq!(summary(&settled), "leader 2: 1 voters, 0 learners");
}

#[test]
fn an_add_says_what_the_node_became() {
    let list = three();
    assert_eq!(added(&list, 2), "node 2 is a voter");
    assert_eq!(added(&list, 4), "node 4 is a learner");
    assert_eq!(added(&list, 9), "node 9 was added");
}

/// The `corral cluster ...` command of a command line, or clap's error.
fn cluster(args: &[&str]) -> Result<ClusterCommand, clap::Error> {
    let line = ["corral", "cluster"].iter().chain(args);
    match Cli::try_parse_from(line)?.command {
        Commands::Client(ClientCommand::Cluster(command)) => Ok(command),
        _ => panic!("not a cluster command: {args:?}"),
    }
}

#[test]
fn add_takes_the_node_and_its_addresses() {
    let line = [
        "add",
        "--node-id",
        "4",
        "--peer-addr",
        "10.0.0.4:7201",
        "--client-addr",
        "10.0.0.4:7101",
        "--catch-up-ms",
        "120000",
        "--learner",
    ];
    let Ok(ClusterCommand::Add(args)) = cluster(&line) else {
        panic!("not an add")
    };
    let expected = AddMemberRequest {
        node_id: 4,
        peer_addr: "10.0.0.4:7201".into(),
        client_addr: Some("10.0.0.4:7101".into()),
        catch_up_ms: Some(120_000),
        learner: true,
    };
    assert_eq!(args.request(), expected);
    // The least: the node's id and peer address; the server's defaults.
    let line = ["add", "--node-id", "5", "--peer-addr", "h:1"];
    let Ok(ClusterCommand::Add(args)) = cluster(&line) else {
        panic!("not an add")
    };
    let request = args.request();
    assert_eq!((request.client_addr, request.catch_up_ms), (None, None));
    assert!(!request.learner);
    // No peer address, or a catch-up the server would refuse: usage.
    assert!(cluster(&["add", "--node-id", "5"]).is_err());
    let long = ["add", "--node-id", "5", "--peer-addr", "h:1"];
    let error = cluster(&[&long[..], &["--catch-up-ms", "600001"]].concat()).unwrap_err();
    assert_eq!(error.exit_code(), 2, "{error}");
}

#[test]
fn remove_takes_an_id_and_force() {
    let Ok(ClusterCommand::Remove(args)) = cluster(&["remove", "3"]) else {
        panic!("not a remove")
    };
    assert_eq!((args.id, args.force), (3, false));
    let Ok(ClusterCommand::Remove(args)) = cluster(&["remove", "--force", "7", "--json"]) else {
        panic!("not a remove")
    };
    assert_eq!((args.id, args.force), (7, true));
    assert!(cluster(&["remove"]).is_err());
    assert!(cluster(&["remove", "three"]).is_err());
    assert!(matches!(cluster(&["members"]), Ok(ClusterCommand::Members)));
    assert!(matches!(cluster(&["status"]), Ok(ClusterCommand::Status)));
}

#[test]
fn membership_refusals_exit_1_with_a_hint() {
    let refused = |kind| Error::Refused {
        kind,
        message: "why".into(),
    };
    let hinted = [
        (ErrorKind::NoReachableMajority, "--force"),
        (
            ErrorKind::MembershipChangeInProgress,
            "one membership change",
        ),
        (ErrorKind::LearnerLagging, "--catch-up-ms"),
        (ErrorKind::JoinFailed, "--join"),
        (ErrorKind::NodeIdRetired, "never reused"),
        (ErrorKind::MemberNotFound, "retired ids"),
    ];
    for (kind, says) in hinted {
        let error = refused(kind.clone());
        assert_eq!(exit::for_error(&error), exit::ERROR, "{kind:?}");
        let hint = exit::hint(&error).unwrap_or_default();
        assert!(hint.contains(says), "{kind:?}: {hint}");
    }
    for kind in [ErrorKind::MemberExists, ErrorKind::NodeRemoved] {
        assert_eq!(exit::for_error(&refused(kind)), exit::ERROR);
    }
    assert_eq!(exit::hint(&refused(ErrorKind::TokenExists)), None);
}
