//! The command line, applied over the configuration file.

use std::path::PathBuf;

use anyhow::Context;
use api::host::{Config, Listen};
use clap::Parser;

/// twofactord: the two-factor authentication daemon (JSON-RPC 2.0 over
/// WebSocket on a Unix socket and on TCP).
#[derive(Debug, Clone, Parser)]
#[command(name = "twofactord", version)]
pub struct Args {
    /// Configuration file (TOML). Without it, /etc/twofactor/twofactord.toml
    /// is read when it exists.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// State directory (database and key file); overrides the file.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Unix socket path; overrides the file.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// TCP address to listen on (`127.0.0.1:6000`), or `none`; overrides
    /// the file. Port 0 picks a free port (logged at start-up).
    #[arg(long, value_name = "ADDR|none")]
    pub listen: Option<Listen>,
    /// Start a fresh state where the key file is present but the database
    /// is gone (deleted or emptied), which is otherwise refused as a lost
    /// state. Never deletes anything: an existing database is used as is.
    #[arg(long)]
    pub init: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do instead of serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Copy the state's database, consistent while the daemon runs, into a
    /// new or empty directory (made 0700; the copy 0600). Secrets stay
    /// sealed: the key file is not copied, keep it apart from the backup.
    /// To restore, stop the daemon and put the copied twofactor.db and the
    /// original secret.key in the state directory (see docs/backup.md).
    Backup {
        /// The directory to write; it must not exist or be empty.
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
    /// Copy a whole state between SQLite (a state directory) and PostgreSQL
    /// (a postgresql:// URL), in either direction: the entry, every user
    /// secret (still sealed), pending enrolments, recovery-code hashes,
    /// replay steps, counters and audit rows. The key file is proved
    /// against the source first; a target that holds a state is refused.
    /// Stop the daemons on both before.
    Migrate {
        /// The state to copy: a directory or a postgresql:// URL.
        #[arg(long, value_name = "DIR|URL")]
        from: String,
        /// The empty state to copy into: a directory or a postgresql:// URL.
        #[arg(long, value_name = "DIR|URL")]
        to: String,
        /// The key file (default: the directory side's secret.key, else the
        /// state directory's).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
}

impl Args {
    /// The configuration file's values with the flags applied over them.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path, true),
            None => Config::load(std::path::Path::new(api::host::DEFAULT_CONFIG_PATH), false),
        }
        .context("cannot read the configuration")?;
        if let Some(dir) = &self.state_dir {
            config.state_dir = dir.clone();
        }
        if let Some(socket) = &self.socket {
            config.socket = Some(socket.clone());
        }
        if let Some(listen) = &self.listen {
            config.listen = listen.clone();
        }
        config.init = self.init;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:7000\"\nadmin_group = \"wheel\"\n",
        )
        .unwrap();
        let args = Args::parse_from([
            "twofactord",
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "none",
            "--socket",
            "/tmp/x.sock",
        ]);
        let c = args.config().unwrap();
        assert_eq!(c.listen, Listen::None);
        assert_eq!(c.socket, Some(PathBuf::from("/tmp/x.sock")));
        assert_eq!(c.admin_group.as_deref(), Some("wheel"));
        let missing = Args::parse_from(["twofactord", "--config", "/nonexistent/tfa.toml"]);
        assert!(missing.config().is_err(), "a named file must exist");
    }

    /// packaging/twofactord.toml names every key with its default: with the
    /// settings uncommented it must parse to the defaults.
    #[test]
    fn the_example_configuration_is_complete_and_correct() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../packaging/twofactord.toml"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let uncommented: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                l.starts_with('[') || l.split_once(" = ").is_some_and(|(k, _)| !k.contains(' '))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed = Config::parse(&uncommented, path).unwrap();
        let mut expected = Config::defaults();
        expected.state_dir = "/var/lib/twofactor".into();
        expected.socket = Some(api::host::SYSTEM_SOCKET.into());
        expected.admin_group = Some("wheel".into());
        assert_eq!(parsed, expected, "{uncommented}");
        for key in [
            "state_dir",
            "socket",
            "listen",
            "issuer",
            "product",
            "pam_service",
            "admin_group",
        ] {
            assert!(
                uncommented.contains(&format!("{key} = ")),
                "{key} is not in the example"
            );
        }
    }

    #[test]
    fn backup_names_its_directory() {
        let args = Args::parse_from([
            "twofactord",
            "--state-dir",
            "/tmp/s",
            "backup",
            "--to",
            "/tmp/b",
        ]);
        assert!(
            matches!(args.command, Some(Command::Backup { ref to }) if to == Path::new("/tmp/b"))
        );
        assert_eq!(args.config().unwrap().state_dir, PathBuf::from("/tmp/s"));
        assert!(Args::try_parse_from(["twofactord", "backup"]).is_err());
    }

    #[test]
    fn init_is_off_unless_asked() {
        let plain = Args::parse_from(["twofactord", "--config", "/dev/null"]);
        assert!(!plain.config().unwrap().init);
        let init = Args::parse_from(["twofactord", "--config", "/dev/null", "--init"]);
        assert!(init.config().unwrap().init);
    }
}
