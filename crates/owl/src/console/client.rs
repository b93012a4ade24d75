//! `owl console`: talks to a running node through its console socket —
//! one command and exit, or an interactive shell with history.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use super::socket::SOCKET;

#[derive(Args, Debug)]
pub(crate) struct ConsoleArgs {
    /// The data directory of the node to talk to.
    #[arg(long, default_value = "./owl-data")]
    data_dir: PathBuf,
    /// Print one JSON document per command (for scripts).
    #[arg(long)]
    json: bool,
    /// A command to run (then exit); without one, an interactive shell.
    /// `owl console help` lists the commands.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// The longest a command may take to answer (`top` and `trace` run for up
/// to 60 s, `chaos` for up to 10 minutes and then waits for the tree).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(660);

struct Connection {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Connection {
    fn open(data_dir: &Path) -> Result<Connection, String> {
        let path = data_dir.join(SOCKET);
        let stream = UnixStream::connect(&path).map_err(|e| {
            format!(
                "no node answers on {} ({e}); is `owl serve --data-dir {}` running?",
                path.display(),
                data_dir.display()
            )
        })?;
        stream
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        Ok(Connection { stream, reader })
    }

    fn ask(&mut self, words: &[String]) -> Result<Value, String> {
        let cwd = std::env::current_dir().unwrap_or_default();
        let mut request = json!({"words": words, "cwd": cwd}).to_string();
        request.push('\n');
        self.stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("the node closed the console: {e}"))?;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err("the node closed the console".into()),
            Ok(_) => {
                serde_json::from_str(&line).map_err(|e| format!("bad answer from the node: {e}"))
            }
            Err(e) => Err(format!("no answer from the node: {e}")),
        }
    }
}

pub(crate) fn run(args: ConsoleArgs) -> Result<(), String> {
    let mut conn = Connection::open(&args.data_dir)?;
    if is_watch(&args.command) {
        return watch(&mut conn, &args.command, args.json);
    }
    if !args.command.is_empty() {
        let answer = conn.ask(&args.command)?;
        return print(&answer, args.json);
    }
    shell(&mut conn, &args)
}

/// Prints an answer; an error answer becomes this command's error.
fn print(answer: &Value, as_json: bool) -> Result<(), String> {
    let ok = answer["ok"].as_bool() == Some(true);
    let error = answer["error"]
        .as_str()
        .unwrap_or("unknown error")
        .to_string();
    if as_json {
        let doc = if ok {
            answer["json"].clone()
        } else {
            json!({"error": error})
        };
        println!("{doc}");
    } else if ok {
        print!("{}", answer["text"].as_str().unwrap_or_default());
    }
    if ok { Ok(()) } else { Err(error) }
}

/// `top --watch`: asks again and again (the node answers one view at a
/// time, each after watching for `--seconds`).
fn is_watch(words: &[String]) -> bool {
    words.first().is_some_and(|w| w == "top") && words.iter().any(|w| w == "--watch")
}

/// Shows `top` until Ctrl-C, like observer_cli: redrawn in place on a
/// terminal, one view after another into a pipe or a file.
fn watch(conn: &mut Connection, words: &[String], as_json: bool) -> Result<(), String> {
    use std::io::IsTerminal;
    let terminal = std::io::stdout().is_terminal() && !as_json;
    loop {
        let answer = conn.ask(words)?;
        if terminal {
            // Home and clear: the new view replaces the old one.
            print!("\x1b[H\x1b[2J");
            println!("owl top — Ctrl-C leaves\n");
        }
        print(&answer, as_json)?;
        if !terminal {
            println!();
        }
        std::io::stdout()
            .flush()
            .map_err(|e| format!("writing the view: {e}"))?;
    }
}

fn shell(conn: &mut Connection, args: &ConsoleArgs) -> Result<(), String> {
    let mut editor = rustyline::DefaultEditor::new().map_err(|e| format!("no line editor: {e}"))?;
    let history = args.data_dir.join("console_history");
    let _ = editor.load_history(&history);
    println!(
        "owl console on {} — `help` lists the commands, Ctrl-D leaves",
        args.data_dir.join(SOCKET).display()
    );
    loop {
        let line = match editor.readline("owl> ") {
            Ok(line) => line,
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(format!("reading input: {e}")),
        };
        let words = match split_words(&line) {
            Ok(words) if words.is_empty() => continue,
            Ok(words) => words,
            Err(e) => {
                eprintln!("error: {e}");
                continue;
            }
        };
        let _ = editor.add_history_entry(line.as_str());
        if matches!(words[0].as_str(), "exit" | "quit") {
            break;
        }
        if is_watch(&words) {
            // Ctrl-C would end the shell too.
            eprintln!("error: `top --watch` runs on its own: `owl console top --watch`");
            continue;
        }
        match conn.ask(&words) {
            Ok(answer) => {
                if let Err(e) = print(&answer, args.json) {
                    eprintln!("error: {e}");
                }
            }
            Err(e) => {
                let _ = editor.save_history(&history);
                return Err(e);
            }
        }
    }
    let _ = editor.save_history(&history);
    Ok(())
}

/// Splits a shell line into words the way a POSIX shell does: spaces
/// separate, quotes group (`ps --filter "live session"`), a backslash escapes.
pub(crate) fn split_words(line: &str) -> Result<Vec<String>, String> {
    shlex::split(line).ok_or_else(|| "unclosed quote or a backslash at the end of the line".into())
}

#[cfg(test)]
mod tests {
    use super::split_words;

    #[test]
    fn shell_lines_split_like_a_shell() {
        let w = |s: &str| split_words(s).unwrap();
        assert_eq!(w("  ps  --limit 5 "), ["ps", "--limit", "5"]);
        assert_eq!(
            w(r#"ps --filter "live session""#),
            ["ps", "--filter", "live session"]
        );
        assert_eq!(w("kill '<0.42.0>'"), ["kill", "<0.42.0>"]);
        assert_eq!(
            w(r"upgrade math my\ file.wat"),
            ["upgrade", "math", "my file.wat"]
        );
        assert_eq!(w(r#"x """#), ["x", ""]);
        assert!(w("").is_empty());
        assert!(split_words("ps \"open").is_err());
        assert!(split_words("ps \\").is_err());
    }
}
