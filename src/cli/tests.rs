//! Unit tests of the command line.

use super::Cli;
use clap::{CommandFactory, Parser};

/// Flags without a help line, as `<command path> <flag>`.
fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
    for a in cmd.get_arguments() {
        let id = a.get_id().as_str();
        let builtin = id == "help" || id == "version";
        if !builtin && a.get_help().is_none() && a.get_long_help().is_none() {
            out.push(format!("{path} {id}"));
        }
    }
    for sub in cmd.get_subcommands() {
        undocumented(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_flag_of_every_command_has_a_help_line() {
    let mut cmd = Cli::command();
    cmd.build();
    let mut missing = Vec::new();
    undocumented(&cmd, "crowdpark", &mut missing);
    assert!(missing.is_empty(), "flags without help: {missing:?}");
}

#[test]
fn simulate_takes_its_brokers_from_the_configuration_unless_given() {
    let cli = Cli::try_parse_from(["crowdpark", "simulate", "--rate", "10"]).unwrap();
    let super::Command::Simulate(args) = cli.command else {
        panic!("not simulate");
    };
    assert_eq!(args.brokers, None);
}

#[test]
fn the_log_format_is_text_unless_json_is_asked_for() {
    use super::LogFormat;
    let cli = Cli::try_parse_from(["crowdpark", "check-config", "x.toml"]).unwrap();
    assert_eq!(cli.log_format, LogFormat::Text);
    let cli = Cli::try_parse_from([
        "crowdpark",
        "check-config",
        "x.toml",
        "--log-format",
        "json",
    ])
    .unwrap();
    assert_eq!(cli.log_format, LogFormat::Json);
}
