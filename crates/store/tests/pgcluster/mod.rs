//! Throw-away PostgreSQL clusters for tests: `initdb` into a temporary
//! directory (as `nobody` when the tests run as root, which `initdb`
//! refuses), a server on a free port of 127.0.0.1 and a private socket
//! directory, removed when the test process ends. Shared by the store's
//! and the daemon's tests (`#[path]`-included).
//!
//! The server is started and stopped by a small shell guardian whose
//! standard input is a pipe held by the test process: when the process
//! ends however it ends, the pipe closes and the guardian stops the server
//! and removes the directory. A missing PostgreSQL fails the test, naming
//! the package to install; no test is skipped.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

/// Where the server binaries are (Debian's `postgresql-15`).
pub fn bin_dir() -> PathBuf {
    let dir = std::env::var_os("TWOFACTOR_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    assert!(
        dir.join("initdb").is_file() && dir.join("pg_ctl").is_file(),
        "PostgreSQL server binaries not found in {}: install the Debian package \
         postgresql-15 (apt-get install postgresql-15), or point TWOFACTOR_PG_BIN at \
         a directory holding initdb and pg_ctl",
        dir.display()
    );
    dir
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A free TCP port on 127.0.0.1 (released for the server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a server binary as the cluster's owner.
fn as_owner(bin: &str) -> Command {
    let path = bin_dir().join(bin);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

/// One cluster. Dropping it stops the server and removes its directory.
pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
    guardian: Mutex<Option<(Child, ChildStdin)>>,
    next_db: AtomicU32,
}

/// Settings appended to `postgresql.conf`.
#[derive(Default)]
pub struct Setup<'a> {
    /// Extra lines (`ssl = on`, ...).
    pub conf: &'a [&'a str],
    /// Files to put into the data directory (certificates), name and text.
    pub files: &'a [(&'a str, &'a str)],
    /// A base backup of another cluster instead of `initdb` (a standby).
    pub standby_of: Option<&'a Cluster>,
}

impl Cluster {
    /// The cluster shared by every test of this process (a database each).
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        SHARED.get_or_init(|| Cluster::start(&Setup::default()))
    }

    pub fn start(setup: &Setup<'_>) -> Cluster {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("tfa-pg-")
            .tempdir()
            .unwrap()
            .keep();
        let data = dir.join("data");
        let sock = dir.join("sock");
        std::fs::create_dir(&sock).unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "nobody:"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(ok.success(), "cannot give {} to nobody", dir.display());
        }
        let port = free_port();
        match setup.standby_of {
            None => {
                let out = as_owner("initdb")
                    .arg("-D")
                    .arg(&data)
                    .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "initdb failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Some(primary) => {
                let out = as_owner("pg_basebackup")
                    .arg("-D")
                    .arg(&data)
                    .args([
                        "-R",
                        "-c",
                        "fast",
                        "-X",
                        "stream",
                        "-h",
                        "127.0.0.1",
                        "-U",
                        "postgres",
                    ])
                    .arg("-p")
                    .arg(primary.port.to_string())
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "pg_basebackup failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let mut conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nfull_page_writes = off\nmax_connections = 300\nshared_buffers = 32MB\n\
             wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n",
            sock.display()
        );
        for line in setup.conf {
            conf.push_str(line);
            conf.push('\n');
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        f.write_all(conf.as_bytes()).unwrap();
        if setup.standby_of.is_none() {
            // A role that must give its password; everyone else is trusted.
            let hba = "host all tf_pw 127.0.0.1/32 scram-sha-256\n\
                       hostssl all tf_tls 127.0.0.1/32 trust\n\
                       host all all 127.0.0.1/32 trust\n\
                       host replication all 127.0.0.1/32 trust\n\
                       local all all trust\n";
            std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        }
        for (name, text) in setup.files {
            let p = data.join(name);
            std::fs::write(&p, text).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        if is_root() {
            Command::new("chown")
                .args(["-R", "nobody:"])
                .arg(&dir)
                .status()
                .unwrap();
        }
        let cluster = Cluster {
            dir,
            port,
            guardian: Mutex::new(None),
            next_db: AtomicU32::new(0),
        };
        cluster.start_server();
        let _ = bin;
        cluster
    }

    fn runuser_prefix() -> String {
        if is_root() {
            "runuser -u nobody -- ".into()
        } else {
            String::new()
        }
    }

    /// Starts the server under a guardian; returns once it accepts.
    pub fn start_server(&self) {
        let mut g = self.guardian.lock().unwrap();
        assert!(g.is_none(), "the server is already running");
        let bin = bin_dir();
        let ru = Self::runuser_prefix();
        let data = self.dir.join("data");
        let script = format!(
            "{ru}'{bin}/pg_ctl' -D '{data}' -l '{dir}/server.log' -w -t 120 start >/dev/null || \
               {{ cat '{dir}/server.log' >&2; exit 1; }}\n\
             echo ready\n\
             read _ignored || true\n\
             {ru}'{bin}/pg_ctl' -D '{data}' -m immediate -w stop >/dev/null 2>&1\n\
             if [ \"$1\" = remove ]; then rm -rf '{dir}'; fi\n",
            bin = bin.display(),
            data = data.display(),
            dir = self.dir.display(),
        );
        let mut child = Command::new("sh")
            .args(["-c", &script, "guardian", "remove"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the PostgreSQL server did not start");
        let stdin = child.stdin.take().unwrap();
        *g = Some((child, stdin));
    }

    /// Stops the server (fast shutdown: committed work is kept), keeping
    /// the directory for [`Cluster::start_server`].
    pub fn stop_server(&self) {
        let taken = self.guardian.lock().unwrap().take();
        let Some((mut child, stdin)) = taken else {
            return;
        };
        let out = as_owner("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl stop failed");
        // The guardian's stop finds nothing running; it must not remove
        // the directory: tell it by killing it before it reads EOF.
        let _ = child.kill();
        drop(stdin);
        let _ = child.wait();
    }

    /// `pg_ctl promote` (a standby becomes a primary).
    pub fn promote(&self) {
        let out = as_owner("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "promote"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl promote failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A superuser client on the `postgres` database.
    pub fn admin(&self) -> postgres::Client {
        postgres::Client::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres",
                self.port
            ),
            postgres::NoTls,
        )
        .unwrap()
    }

    /// The URL of database `db` as user `postgres`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// A new, empty database; returns its name.
    pub fn fresh_db(&self) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        self.admin()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        name
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("sock")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let taken = self
            .guardian
            .get_mut()
            .map(Option::take)
            .unwrap_or_default();
        if let Some((mut child, stdin)) = taken {
            drop(stdin);
            let _ = child.wait();
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A path inside the cluster directory (for test files).
pub fn path_in(c: &Cluster, name: &str) -> PathBuf {
    Path::new(&c.dir).join(name)
}
