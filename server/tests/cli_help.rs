//! The binary's own help: every command has its `--help` (the same as
//! `hypha help COMMAND`) naming every flag it accepts, `--version` names
//! the formats, the man page and bash completion come from the same table
//! and install with `deploy/install.sh`, and an address in use is named.

mod common;

use hypha_server::commands::COMMANDS;
use std::process::{Command, Output};

fn hypha(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hypha"))
        .args(args)
        .output()
        .expect("run hypha")
}

fn stdout(args: &[&str]) -> String {
    let out = hypha(args);
    assert!(out.status.success(), "hypha {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn every_command_has_its_own_help_naming_each_of_its_flags() {
    let overview = stdout(&["--help"]);
    assert_eq!(stdout(&["help"]), overview);
    for c in COMMANDS.iter().filter(|c| !c.name.is_empty()) {
        let own = stdout(&[c.name, "--help"]);
        assert_eq!(stdout(&["help", c.name]), own, "{}", c.name);
        assert_ne!(own, overview, "{} --help prints the global text", c.name);
        assert!(own.starts_with(&format!("hypha {} — ", c.name)), "{own}");
        assert!(
            overview.contains(&format!("    {:<12} ", c.name)),
            "{}",
            c.name
        );
        let mut names = std::collections::BTreeSet::new();
        for f in c.all_flags() {
            assert!(
                own.contains(&format!("--{}", f.name)),
                "{}: --{}",
                c.name,
                f.name
            );
            assert!(names.insert(f.name), "{} lists --{} twice", c.name, f.name);
        }
    }
    for f in hypha_server::commands::get("").all_flags() {
        assert!(overview.contains(&format!("--{}", f.name)), "--{}", f.name);
    }
    assert!(
        overview.lines().all(|l| l.chars().count() <= 80),
        "{overview}"
    );
}

#[test]
fn flags_outside_a_commands_table_are_refused_with_where_to_look() {
    let out = hypha(&["worker", "--sync", "2"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown flag --sync; see hypha worker --help"),
        "{err}"
    );
    let out = hypha(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown command \"frobnicate\"") && err.contains("master, worker"),
        "{err}"
    );
    assert_eq!(hypha(&["help", "frobnicate"]).status.code(), Some(2));
}

#[test]
fn version_names_the_release_and_its_formats() {
    let v = stdout(&["--version"]);
    assert_eq!(stdout(&["version"]), v);
    assert!(
        v.starts_with(&format!("hypha {} ", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    let protocol = format!("wire protocol {}", hypha_net::PROTOCOL_VERSION);
    assert!(v.contains(&protocol), "{v}");
}

#[test]
fn the_man_page_and_completion_come_from_the_table_and_install() {
    let stage = common::TempDir::new("install");
    let status = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/install.sh"))
        .arg(env!("CARGO_BIN_EXE_hypha"))
        .env("DESTDIR", &stage.0)
        .env("PREFIX", "/usr")
        .status()
        .expect("install.sh");
    assert!(status.success());
    assert!(stage.join("usr/bin/hypha").is_file());
    let man = std::fs::read_to_string(stage.join("usr/share/man/man1/hypha.1")).expect("man");
    assert!(man.starts_with(".TH HYPHA 1 "));
    for c in COMMANDS.iter().filter(|c| !c.name.is_empty()) {
        assert!(
            man.contains(&format!(".SS \"hypha {}\"", c.name)),
            "{}",
            c.name
        );
    }
    let completion = stage.join("usr/share/bash-completion/completions/hypha");
    // Completing as bash would: a command, then a flag of that command only.
    let complete = |words: &str| {
        let script = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _hypha; echo \"${{COMPREPLY[*]}}\"",
            completion.display()
        );
        let out = Command::new("bash")
            .arg("-c")
            .arg(script)
            .output()
            .expect("bash");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string()
    };
    assert_eq!(complete("hypha wit"), "witness");
    assert_eq!(complete("hypha master --fs"), "--fsync");
    assert_eq!(complete("hypha worker --acc"), "--accept-new-history");
    assert_eq!(
        complete("hypha master --acc"),
        "",
        "a worker's flag offered to master"
    );
    assert_eq!(complete("hypha --fail"), "--failover");
}

#[test]
fn an_address_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = common::TempDir::new("in-use");
    let data = common::data(&dir, "m");
    let out = hypha(&["master", "--data", &data, "--listen", &addr]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{addr} is already in use")), "{err}");
    let out = hypha(&["http", "--listen", &addr, "--master", "127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}
