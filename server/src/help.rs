//! What `hypha --help`, `hypha help COMMAND` (= `hypha COMMAND --help`),
//! `hypha man` and `hypha completions bash` print: all drawn from the one
//! command table in `commands.rs`.

use crate::commands::{Command, Flag, COMMANDS};
use std::fmt::Write as _;

/// Lines are wrapped to this width.
const WIDTH: usize = 80;
/// Where a flag's help starts.
const FLAG_COLUMN: usize = 30;

/// `hypha --version`: the release and the formats it speaks.
pub fn version() -> String {
    format!(
        "hypha {} (wire protocol {}, data files version {}, checkpoint version {})\n",
        env!("CARGO_PKG_VERSION"),
        hypha_net::PROTOCOL_VERSION,
        hypha_engine::tables::DATA_VERSION,
        hypha_engine::tables::META_VERSION
    )
}

const ENVIRONMENT: &str = "Every flag can also come from the environment: --sync-timeout-ms is HYPHA_SYNC_TIMEOUT_MS; a switch is on with HYPHA_NAME=1. Addresses are HOST:PORT, IPv6 as [ADDR]:PORT (e.g. a Mycelium address [4a0:1234::1]:7000). Logs: RUST_LOG=info|debug.";

/// Words of `text` in lines of at most `WIDTH` columns, each line indented
/// by `indent` spaces (the first by `first` spaces).
fn wrap(out: &mut String, text: &str, first: usize, indent: usize) {
    out.push_str(&" ".repeat(first));
    wrap_from(out, text, first, indent);
}

/// As [`wrap`], with the cursor already at `column`.
fn wrap_from(out: &mut String, text: &str, mut column: usize, indent: usize) {
    let mut line_empty = true;
    for word in text.split_whitespace() {
        if !line_empty && column + 1 + word.chars().count() > WIDTH {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            column = indent;
            line_empty = true;
        }
        if !line_empty {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += word.chars().count();
        line_empty = false;
    }
    out.push('\n');
}

fn flag_lines(out: &mut String, f: &Flag) {
    let name = match f.value {
        "" => format!("    --{}", f.name),
        value => format!("    --{} {value}", f.name),
    };
    out.push_str(&name);
    let used = name.chars().count();
    if used + 2 <= FLAG_COLUMN {
        out.push_str(&" ".repeat(FLAG_COLUMN - used));
        wrap_from(out, f.help, FLAG_COLUMN, FLAG_COLUMN);
    } else {
        out.push('\n');
        wrap(out, f.help, FLAG_COLUMN, FLAG_COLUMN);
    }
}

fn title(c: &Command) -> String {
    match c.name {
        "" => "hypha".to_string(),
        name => format!("hypha {name}"),
    }
}

/// `hypha COMMAND --help`.
pub fn command(c: &Command) -> String {
    let mut out = format!(
        "{} — {}\n\nUSAGE:\n    hypha {}\n\n",
        title(c),
        c.summary,
        c.usage
    );
    wrap(&mut out, c.about, 0, 0);
    if c.is_client() {
        out.push('\n');
        wrap(&mut out, crate::commands::CLIENT_EXITS, 0, 0);
    }
    if c.all_flags().next().is_some() {
        out.push_str("\nFLAGS:\n");
        c.all_flags().for_each(|f| flag_lines(&mut out, f));
        out.push('\n');
        wrap(&mut out, ENVIRONMENT, 0, 0);
    }
    out
}

/// `hypha --help`: the commands, then what `hypha` alone takes.
pub fn overview() -> String {
    let mut out = format!(
        "hypha {} — a replicated key-value store for edge devices\n\nUSAGE:\n    hypha [FLAGS]            everything on this machine (flags below)\n    hypha COMMAND [FLAGS]\n\nCOMMANDS:\n",
        env!("CARGO_PKG_VERSION")
    );
    for c in COMMANDS.iter().filter(|c| !c.name.is_empty()) {
        out.push_str(&format!("    {:<12} ", c.name));
        wrap_from(&mut out, c.summary, 17, 17);
    }
    out.push_str("\n`hypha help COMMAND` or `hypha COMMAND --help` shows a command's flags.\n\n");
    let all = crate::commands::get("");
    wrap(&mut out, all.about, 0, 0);
    out.push_str("\nFLAGS OF hypha ALONE:\n");
    all.all_flags().for_each(|f| flag_lines(&mut out, f));
    out.push('\n');
    wrap(&mut out, ENVIRONMENT, 0, 0);
    out
}

/// Escapes text for roff.
fn roff(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    match text.starts_with(['.', '\'']) {
        true => format!("\\&{text}"),
        false => text,
    }
}

/// `hypha man`: hypha(1) in roff.
pub fn man() -> String {
    let mut out = format!(
        ".TH HYPHA 1 \"\" \"hypha {}\" \"User Commands\"\n.SH NAME\nhypha \\- a replicated key\\-value store for edge devices\n.SH SYNOPSIS\n",
        env!("CARGO_PKG_VERSION")
    );
    for c in COMMANDS {
        let _ = writeln!(out, ".B hypha\n{}\n.br", roff(c.usage));
    }
    out.push_str(".SH COMMANDS\n");
    for c in COMMANDS {
        let _ = writeln!(out, ".SS \"{}\"\n{}", roff(&title(c)), roff(c.about));
        for f in c.all_flags() {
            let _ = writeln!(out, ".TP\n.B \\-\\-{}", roff(f.name));
            if !f.value.is_empty() {
                let _ = writeln!(out, ".I {}", roff(f.value));
            }
            let _ = writeln!(out, "{}", roff(f.help));
        }
    }
    let _ = writeln!(out, ".SH ENVIRONMENT\n{}", roff(ENVIRONMENT));
    out.push_str(
        ".SH SEE ALSO\nREADME.md of the source: the HTTP API, every route with a curl line.\n",
    );
    out
}

/// `hypha completions bash`.
pub fn bash_completion() -> String {
    let names: Vec<&str> = COMMANDS
        .iter()
        .map(|c| c.name)
        .filter(|n| !n.is_empty())
        .collect();
    let mut cases = String::new();
    // Named commands first: `*)` (hypha alone) must come last.
    for c in COMMANDS.iter().rev() {
        let flags: Vec<String> = c.all_flags().map(|f| format!("--{}", f.name)).collect();
        let pattern = if c.name.is_empty() { "*" } else { c.name };
        let _ = writeln!(cases, "    {pattern}) flags=\"{}\" ;;", flags.join(" "));
    }
    let paths: Vec<String> = COMMANDS
        .iter()
        .flat_map(|c| c.all_flags())
        .filter(|f| matches!(f.value, "DIR" | "PATH"))
        .map(|f| format!("--{}", f.name))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    format!(
        "# bash completion for hypha (from `hypha completions bash`)\n\
         _hypha() {{\n\
         \x20 local cur=\"${{COMP_WORDS[COMP_CWORD]}}\" prev=\"${{COMP_WORDS[COMP_CWORD-1]}}\" cmd=\"\" flags\n\
         \x20 if [[ $COMP_CWORD -eq 1 && $cur != -* ]]; then\n\
         \x20   COMPREPLY=($(compgen -W \"{}\" -- \"$cur\")); return\n\
         \x20 fi\n\
         \x20 [[ ${{COMP_WORDS[1]}} != -* ]] && cmd=\"${{COMP_WORDS[1]}}\"\n\
         \x20 case \"$prev\" in {}) COMPREPLY=($(compgen -f -- \"$cur\")); return ;; esac\n\
         \x20 case \"$cmd\" in\n{cases}\x20 esac\n\
         \x20 COMPREPLY=($(compgen -W \"$flags --help\" -- \"$cur\"))\n\
         }}\n\
         complete -F _hypha hypha\n",
        names.join(" "),
        paths.join("|"),
    )
}
