use clap::{CommandFactory, FromArgMatches, Parser};

use super::*;
use crate::Cli;

/// The connection options of a command line, settled as `main` settles
/// them, or clap's error.
fn connection(args: &[&str]) -> Result<Connection, clap::Error> {
    let line = ["corral"].iter().chain(args).chain(&["cluster", "status"]);
    let matches = Cli::command().try_get_matches_from(line)?;
    let mut connection = Cli::from_arg_matches(&matches)?.connection;
    connection.settle_token(&matches)?;
    Ok(connection)
}

#[test]
fn a_token_comes_from_the_flag_or_a_file_not_both() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "  corral_from_file\n").unwrap();
    let file = file.to_str().unwrap();
    let given = connection(&["--token", " corral_flag "]).unwrap();
    assert_eq!(given.token().unwrap().as_deref(), Some("corral_flag"));
    assert!(!format!("{given:?}").contains("corral_flag"));
    let read = connection(&["--token-file", file]).unwrap();
    assert_eq!(read.token().unwrap().as_deref(), Some("corral_from_file"));
    assert!(read.client().unwrap().has_token());
    let both = connection(&["--token", "x", "--token-file", file]).unwrap_err();
    assert!(
        both.to_string().contains("--token and --token-file"),
        "{both}"
    );
    assert_eq!(both.exit_code(), 2);
    // Global options go after the subcommand too.
    let line = ["corral", "cluster", "status", "--token-file", file];
    let after = Cli::try_parse_from(line).unwrap().connection;
    assert_eq!(after.token().unwrap().as_deref(), Some("corral_from_file"));
}

#[test]
fn a_bad_token_file_is_named_and_its_text_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, " \n").unwrap();
    let missing = dir.path().join("missing");
    for path in [&empty, &missing] {
        let given = connection(&["--token-file", path.to_str().unwrap()]).unwrap();
        let error = format!("{:#}", given.token().unwrap_err());
        assert!(error.contains(&path.display().to_string()), "{error}");
    }
    // A token no header can carry: the client refuses it without showing
    // it.
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "corral_one\ncorral_two\n").unwrap();
    let given = connection(&["--token-file", bad.to_str().unwrap()]).unwrap();
    let error = format!("{:#}", given.client().unwrap_err());
    assert!(!error.contains("corral_"), "{error}");
}

#[test]
fn no_subcommand_option_shadows_a_global_one() {
    // clap takes such a pair and panics only when the value is read (`kv
    // put --token`, a fencing token, once met the bearer token's).
    let command = Cli::command();
    command.clone().debug_assert();
    let globals: Vec<(String, Option<String>)> = command
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| (a.get_id().to_string(), a.get_long().map(str::to_string)))
        .collect();
    assert!(globals.iter().any(|(id, _)| id == "token"));
    let mut commands = vec![command];
    while let Some(command) = commands.pop() {
        for sub in command.get_subcommands() {
            for arg in sub.get_arguments() {
                let long = arg.get_long().map(str::to_string);
                let shadows = globals
                    .iter()
                    .any(|(id, l)| arg.get_id() == id.as_str() || (long.is_some() && *l == long));
                assert!(!shadows, "`{}` of `{}`", arg.get_id(), sub.get_name());
            }
            commands.push(sub.clone());
        }
    }
}

#[test]
fn kv_writes_take_a_fencing_token_beside_the_bearer_token() {
    let line = [
        "corral",
        "kv",
        "put",
        "k",
        "v",
        "--lock",
        "l",
        "--fencing-token",
        "7",
        "--token",
        "corral_s3cret",
    ];
    let cli = Cli::try_parse_from(line).unwrap();
    assert_eq!(
        cli.connection.token().unwrap().as_deref(),
        Some("corral_s3cret")
    );
    match cli.command {
        crate::Commands::Client(ClientCommand::Kv(KvCommand::Put { fencing_token, .. })) => {
            assert_eq!(fencing_token, 7)
        }
        _ => panic!("not a kv put"),
    }
}
