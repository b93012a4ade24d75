//! Helpers for tests that run the `owl` binary.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Every wait is bounded by this; reaching it is a failure.
pub(crate) const LIMIT: Duration = Duration::from_secs(20);

/// The `owl` binary under test.
pub(crate) fn owl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_owl"))
}

/// One HTTP/1.0 exchange over a plain socket: the whole answer as text.
pub(crate) fn http(addr: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(LIMIT)).unwrap();
    socket.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    answer
}

/// A running `owl serve` on a free loopback port with its own data
/// directory; killed and cleaned up on drop. Its log goes to a file.
pub(crate) struct Served {
    pub child: Child,
    /// What it printed up to and including its URL line.
    pub banner: Vec<String>,
    pub url: String,
    pub data_dir: PathBuf,
    log: PathBuf,
    /// Everything it printed after its URL line, as it comes.
    later: std::sync::Arc<parking_lot::Mutex<Vec<String>>>,
    /// Remove the data directory on drop (not for a node that is restarted).
    wipe: bool,
}

impl Served {
    pub(crate) fn start(name: &str) -> Served {
        Served::start_with(name, &[])
    }

    /// Starts `owl serve` with extra arguments.
    pub(crate) fn start_with(name: &str, args: &[&str]) -> Served {
        Served::start_command(name, args, |_| {})
    }

    /// Starts `owl serve`, letting `adjust` change the command (environment,
    /// a wrapper) first.
    pub(crate) fn start_command(
        name: &str,
        args: &[&str],
        adjust: impl FnOnce(&mut Command),
    ) -> Served {
        let data_dir = std::env::temp_dir().join(format!("owl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        Served::launch(name, data_dir, args, adjust)
    }

    /// Starts `owl serve` again on this node's data directory (after it
    /// stopped or was killed); the old handle keeps the directory.
    pub(crate) fn restart(&mut self, args: &[&str]) -> Served {
        self.restart_command(args, |_| {})
    }

    /// Like [`restart`](Self::restart), letting `adjust` change the command.
    pub(crate) fn restart_command(
        &mut self,
        args: &[&str],
        adjust: impl FnOnce(&mut Command),
    ) -> Served {
        self.wipe = false;
        let name = format!(
            "{}-again",
            self.data_dir.file_name().unwrap().to_string_lossy()
        );
        Served::launch(&name, self.data_dir.clone(), args, adjust)
    }

    fn launch(
        name: &str,
        data_dir: PathBuf,
        args: &[&str],
        adjust: impl FnOnce(&mut Command),
    ) -> Served {
        let log = std::env::temp_dir().join(format!("owl-{name}-{}.log", std::process::id()));
        let mut command = owl();
        command.arg("serve");
        if !args.contains(&"--bind") {
            command.args(["--bind", "127.0.0.1:0"]);
        }
        command
            .arg("--data-dir")
            .arg(&data_dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        adjust(&mut command);
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        let url = loop {
            let line = lines.next().expect("owl serve prints its URL").unwrap();
            let url = line
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .map(String::from);
            banner.push(line);
            if let Some(url) = url {
                break url;
            }
        };
        // Keep reading, so the node never writes into a closed pipe.
        let later = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let kept = later.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().push(line);
            }
        });
        Served {
            child,
            banner,
            url,
            data_dir,
            log,
            later,
            wipe: true,
        }
    }

    /// What the node has logged so far.
    /// Waits until the node prints a line containing `marker` (after its
    /// URL line), and returns what follows the marker on it.
    pub(crate) fn printed_after(&self, marker: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let found = self
                .later
                .lock()
                .iter()
                .find_map(|l| l.split(marker).nth(1).map(str::to_string));
            if let Some(rest) = found {
                return rest;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "owl serve never printed {marker:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `owl console --json …` against this node: (success, JSON, stderr).
    pub(crate) fn console(&self, args: &[&str]) -> (bool, serde_json::Value, String) {
        let std::process::Output {
            status,
            stdout,
            stderr,
        } = owl()
            .arg("console")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--json")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let json = serde_json::from_slice(&stdout).unwrap_or_else(|e| {
            let log = self.log();
            let tail = &log[log.len().saturating_sub(4000)..];
            panic!(
                "`console {args:?}` printed no JSON ({e}): {}\nstderr: {}\nthe node's log ends:\n{tail}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            )
        });
        (
            status.success(),
            json,
            String::from_utf8_lossy(&stderr).into_owned(),
        )
    }

    /// Like [`console`](Self::console); the command must succeed.
    pub(crate) fn ok(&self, args: &[&str]) -> serde_json::Value {
        let (ok, json, stderr) = self.console(args);
        assert!(ok, "`console {args:?}` failed: {json} {stderr}");
        json
    }

    /// Like [`console`](Self::console); the command must fail: its error.
    pub(crate) fn fails(&self, args: &[&str]) -> String {
        let (ok, json, _) = self.console(args);
        assert!(!ok, "`console {args:?}` succeeded: {json}");
        json["error"].as_str().unwrap_or_default().to_string()
    }

    /// `host:port` of the web interface.
    pub(crate) fn addr(&self) -> &str {
        self.url.trim_start_matches("http://").trim_end_matches('/')
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.wipe {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
