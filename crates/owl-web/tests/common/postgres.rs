//! A throwaway PostgreSQL server for a test: `initdb` into a temporary
//! directory, `pg_ctl start` on a free loopback port, stopped and removed on
//! drop. As root (CI), the server runs as the unprivileged `postgres` user
//! that Debian's package creates. Missing PostgreSQL skips the test loudly
//! outside CI and fails it under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    as_user: Option<&'static str>,
    /// `postgres://owl@127.0.0.1:PORT/postgres`
    pub url: String,
}

/// The newest installed server's `bin` directory.
fn server_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Postgres {
    /// Starts a server for `test`, or returns `None` (skip) when PostgreSQL
    /// is not installed outside CI.
    pub(crate) fn start(test: &str) -> Option<Postgres> {
        let Some(bin) = server_bin() else {
            let msg = "PostgreSQL is needed for this test (apt-get install -y postgresql)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test}: {msg}");
            }
            eprintln!("\n!!! SKIPPING PostgreSQL test {test}: {msg} !!!\n");
            return None;
        };
        // PostgreSQL refuses to run as root: as root, run it as `postgres`.
        let as_user = is_root().then_some("postgres");
        let dir = std::env::temp_dir().join(format!("owl-pg-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(user) = as_user {
            let ok = Command::new("chown")
                .args([user, dir.to_str().unwrap()])
                .status()
                .unwrap()
                .success();
            assert!(ok, "cannot give {} to {user}", dir.display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Postgres {
            url: format!("postgres://owl@127.0.0.1:{port}/postgres"),
            dir,
            bin,
            as_user,
        };
        let data = pg.dir.join("data");
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "owl",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=on",
            pg.dir.display()
        );
        pg.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                pg.dir.join("server.log").to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        Some(pg)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "{program} failed: {}{}\nserver log:\n{log}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self
            .command("pg_ctl")
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
