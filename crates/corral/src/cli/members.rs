//! `corral cluster members|add|remove`: the cluster's membership, as the
//! leader sees it, and changing it (with a cluster admin's token when auth
//! is on).

use std::time::Duration;

use clap::Args;
use corral_client::{AddMemberRequest, Client, MemberList, MemberRole, CATCH_UP_MS_MAX};

use super::inspect::finish;
use super::output::{self, duration};

/// `corral cluster add`.
#[derive(Args, Debug)]
pub(crate) struct AddArgs {
    /// The new node's --node-id: one the cluster never had (ids are never
    /// reused).
    #[arg(long, value_name = "N")]
    pub node_id: u64,
    /// Where the leader reaches the new node's peer listener: its
    /// --peer-listen (or its --listen without one).
    #[arg(long, value_name = "HOST:PORT")]
    pub peer_addr: String,
    /// Where it serves clients; when given, the node must say the same.
    #[arg(long, value_name = "HOST:PORT")]
    pub client_addr: Option<String>,
    /// How long the leader waits for the node to catch up before giving up
    /// (it then stays a learner; run the same add again to wait longer),
    /// in milliseconds [default: 60000, at most 600000].
    #[arg(
        long,
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(0..=CATCH_UP_MS_MAX)
    )]
    pub catch_up_ms: Option<u64>,
    /// Leave it a learner: it receives the log but does not vote.
    #[arg(long)]
    pub learner: bool,
}

impl AddArgs {
    /// The request these arguments make.
    pub(super) fn request(&self) -> AddMemberRequest {
        AddMemberRequest {
            node_id: self.node_id,
            peer_addr: self.peer_addr.clone(),
            client_addr: self.client_addr.clone(),
            catch_up_ms: self.catch_up_ms,
            learner: self.learner,
        }
    }
}

/// `corral cluster remove`.
#[derive(Args, Debug)]
pub(crate) struct RemoveArgs {
    /// The member's id.
    pub id: u64,
    /// Remove it even if too few voters would be reachable after for a
    /// majority: the cluster may then make no progress until they return.
    #[arg(long)]
    pub force: bool,
}

/// The header of the members table.
pub(super) const MEMBERS_HEADER: [&str; 8] = [
    "ID",
    "ROLE",
    "LEADER",
    "PEER ADDRESS",
    "CLIENT ADDRESS",
    "LAG",
    "REACHABLE",
    "LAST ACK",
];

/// The rows of the members table, one per member in the leader's order.
pub(super) fn member_rows(list: &MemberList) -> Vec<Vec<String>> {
    list.members
        .iter()
        .map(|m| {
            let role = match m.role {
                MemberRole::Voter => "voter",
                MemberRole::Learner => "learner",
            };
            let last_ack = match m.last_ack_ms_ago {
                Some(ms) => format!("{} ago", duration(Duration::from_millis(ms))),
                // The leader does not ack itself.
                None if m.leader => "-".into(),
                None => "never".into(),
            };
            vec![
                m.id.to_string(),
                role.into(),
                if m.leader { "*" } else { "" }.into(),
                m.peer_addr.clone(),
                m.client_addr.clone().unwrap_or_else(|| "?".into()),
                m.lag.map_or_else(|| "?".into(), |lag| lag.to_string()),
                if m.reachable { "yes" } else { "no" }.into(),
                last_ack,
            ]
        })
        .collect()
}

/// The line above the table: leader, voters and learners, whether a change
/// is under way, and the ids retired.
pub(super) fn summary(list: &MemberList) -> String {
    let count = |role| list.members.iter().filter(|m| m.role == role).count();
    let mut line = format!(
        "leader {}: {} voters, {} learners",
        list.leader_id,
        count(MemberRole::Voter),
        count(MemberRole::Learner)
    );
    if list.changing {
        line.push_str("; a membership change is under way");
    }
    if !list.retired.is_empty() {
        let ids: Vec<String> = list.retired.iter().map(u64::to_string).collect();
        line.push_str(&format!("; retired ids {}", ids.join(", ")));
    }
    line
}

/// Prints a member list for people.
fn show(list: &MemberList) -> std::io::Result<()> {
    outln!("{}", summary(list))?;
    output::table(&MEMBERS_HEADER, &member_rows(list))
}

/// `corral cluster members`.
pub(super) async fn list(client: &Client, json: bool) -> anyhow::Result<i32> {
    finish(client.members().await, json, show)
}

/// `corral cluster add`: may wait up to --catch-up-ms for the node, so
/// people are told why it takes a while.
pub(super) async fn add(client: &Client, args: AddArgs, json: bool) -> anyhow::Result<i32> {
    let request = args.request();
    if !json {
        let catch_up = request
            .catch_up_ms
            .unwrap_or(corral_client::CATCH_UP_MS_DEFAULT);
        eprintln!(
            "corral: adding node {} at {}; waiting up to {} for it to catch up",
            request.node_id,
            request.peer_addr,
            duration(Duration::from_millis(catch_up))
        );
    }
    finish(client.add_member(&request).await, json, |list| {
        outln!("{}", added(list, request.node_id))?;
        show(list)
    })
}

/// What an add made of node `id`, as the answer says: an add of a node
/// that was a voter already leaves it one, `--learner` or not.
pub(super) fn added(list: &MemberList, id: u64) -> String {
    match list.members.iter().find(|m| m.id == id).map(|m| m.role) {
        Some(MemberRole::Voter) => format!("node {id} is a voter"),
        Some(MemberRole::Learner) => format!("node {id} is a learner"),
        None => format!("node {id} was added"),
    }
}

/// `corral cluster remove`.
pub(super) async fn remove(client: &Client, args: RemoveArgs, json: bool) -> anyhow::Result<i32> {
    let removed = client.remove_member(args.id, args.force).await;
    finish(removed, json, |list| {
        outln!("removed node {}; its id is never taken again", args.id)?;
        show(list)
    })
}

#[cfg(test)]
#[path = "members_test.rs"]
mod tests;
