//! The password file of PostgreSQL's own clients (`~/.pgpass`, or the file
//! `PGPASSFILE` names), read as libpq reads it, for a database URL that
//! carries no password and a configuration without `password_file`.
//!
//! Each line is `host:port:database:user:password`; any of the first four
//! may be `*`, `\:` and `\\` stand for a colon and a backslash, lines
//! starting with `#` are comments, and the first line that matches wins.
//! The host of a Unix socket in the default directory is matched as
//! `localhost`, any other socket by its directory. Unlike libpq, which
//! skips a file that group or others may read with a warning, such a file
//! is refused with an error naming it: a daemon that silently connects
//! without its password would only fail later, less clearly.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use postgres::config::Host;

use crate::{Result, StoreError};

/// libpq's default socket directory on Debian (where a Unix socket host
/// is matched as `localhost`).
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// The password file this process would use: `PGPASSFILE`, else
/// `.pgpass` in the home directory (`HOME`, else the account's).
pub fn default_file() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os("PGPASSFILE").filter(|f| !f.is_empty()) {
        return Some(PathBuf::from(file));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map(|u| u.dir)
        })?;
    Some(home.join(".pgpass"))
}

/// The password `file` gives for the connection `url` describes (its
/// hosts in order, the port of each, the database and user), or `None`
/// when the URL has a password of its own, the file does not exist or no
/// line matches. A file that group or others may access, or one that is
/// not a regular file, is refused; so are hosts of one URL that the file
/// gives different passwords (one connection string has one password).
pub fn password_for(url: &str, file: &Path) -> Result<Option<String>> {
    let config = super::url::parse(url)?.config;
    if config.get_password().is_some() {
        return Ok(None);
    }
    let shown = file.display();
    let meta = match std::fs::metadata(file) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Io {
                path: shown.to_string(),
                source,
            });
        }
    };
    if !meta.is_file() {
        return Err(StoreError::Config(format!(
            "the password file {shown} is not a regular file"
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(StoreError::Config(format!(
            "the password file {shown} may be read by group or others (mode {:04o}); \
             make it u=rw (chmod 0600 {shown}) as PostgreSQL's clients require",
            meta.mode() & 0o7777
        )));
    }
    let text = std::fs::read_to_string(file).map_err(|source| StoreError::Io {
        path: shown.to_string(),
        source,
    })?;
    let user = match config.get_user() {
        Some(u) => u.to_owned(),
        None => os_user().unwrap_or_default(),
    };
    let dbname = config.get_dbname().unwrap_or(&user).to_owned();
    let ports = config.get_ports();
    let mut found: Option<String> = None;
    let hosts = config.get_hosts();
    let names: Vec<String> = if hosts.is_empty() {
        vec!["localhost".to_owned()]
    } else {
        hosts.iter().map(host_name).collect()
    };
    for (i, host) in names.iter().enumerate() {
        // One port for every host, or one each, or libpq's default.
        let port = match ports.len() {
            0 => 5432,
            1 => ports[0],
            _ => ports.get(i).copied().unwrap_or(5432),
        };
        let Some(password) = lookup(&text, host, &port.to_string(), &dbname, &user) else {
            continue;
        };
        match &found {
            None => found = Some(password),
            Some(first) if *first == password => {}
            Some(_) => {
                return Err(StoreError::Config(format!(
                    "the password file {shown} gives the hosts of the database URL different \
                     passwords; give one in password_file instead"
                )));
            }
        }
    }
    Ok(found)
}

/// How libpq names a host when matching the file.
fn host_name(host: &Host) -> String {
    match host {
        Host::Tcp(name) => name.clone(),
        Host::Unix(dir) if dir == Path::new(DEFAULT_SOCKET_DIR) => "localhost".to_owned(),
        Host::Unix(dir) => dir.display().to_string(),
    }
}

fn os_user() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// The password of the first line of `text` matching the four keys.
fn lookup(text: &str, host: &str, port: &str, dbname: &str, user: &str) -> Option<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(split)
        .find(|f| {
            [host, port, dbname, user]
                .iter()
                .zip(f.iter())
                .all(|(want, field)| field == "*" || field == want)
        })
        .map(|mut f| f.swap_remove(4))
}

/// The five fields of a line, escapes resolved; the password is the rest
/// of the line after the fourth unescaped colon. `None` for a line with
/// fewer fields (libpq skips it).
fn split(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::with_capacity(5);
    let mut current = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.push(chars.next().unwrap_or('\\')),
            ':' if fields.len() < 4 => fields.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    fields.push(current);
    (fields.len() == 5).then_some(fields)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn file(text: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pgpass");
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        (dir, path)
    }

    #[test]
    fn the_first_matching_line_gives_the_password() {
        let (_d, path) = file(
            "# comment\n\
             db1:5432:other:tf:not-this\n\
             db1:5433:tf:tf:wrong-port\n\
             db1:*:tf:tf:s3cr\\:et\\\\x\n\
             *:*:*:*:fallback\n",
            0o600,
        );
        let got = |url: &str| password_for(url, &path).expect("read");
        assert_eq!(got("postgresql://tf@db1/tf").as_deref(), Some("s3cr:et\\x"));
        assert_eq!(
            got("postgresql://tf@db2:6000/tf").as_deref(),
            Some("fallback")
        );
        // A URL with its own password takes nothing from the file.
        assert_eq!(got("postgresql://tf:own@db1/tf"), None);
        // The database defaults to the user's name.
        assert_eq!(
            got("postgresql://other@db1:5432").as_deref(),
            Some("fallback")
        );
    }

    #[test]
    fn hosts_are_matched_each_with_its_port() {
        let (_d, path) = file("db2:5433:tf:tf:pw2\nlocalhost:5432:tf:tf:local\n", 0o600);
        let got = |url: &str| password_for(url, &path).expect("read");
        assert_eq!(
            got("postgresql://tf@db1:5432,db2:5433/tf").as_deref(),
            Some("pw2")
        );
        assert_eq!(got("postgresql://tf@db1/tf"), None, "no line matches");
        assert_eq!(
            got("postgresql://tf@%2Fvar%2Frun%2Fpostgresql/tf").as_deref(),
            Some("local"),
            "the default socket directory is localhost"
        );
        let (_d, path) = file("db1:*:tf:tf:pw-first\ndb2:*:tf:tf:pw-second\n", 0o600);
        let e = password_for("postgresql://tf@db1,db2/tf", &path).expect_err("two passwords");
        let text = e.to_string();
        assert!(text.contains("different passwords"), "{text}");
        assert!(!text.contains("pw-"), "{text}");
    }

    #[test]
    fn a_file_others_may_read_is_refused_naming_it() {
        let (_d, path) = file("*:*:*:*:pw\n", 0o640);
        let e = password_for("postgresql://tf@db1/tf", &path).expect_err("refused");
        let text = e.to_string();
        assert!(
            text.contains(&path.display().to_string()) && text.contains("group or others"),
            "{text}"
        );
        assert!(!text.contains("pw\n"), "{text}");
        // A missing file is no password, as for libpq.
        let gone = path.with_file_name("none");
        assert_eq!(
            password_for("postgresql://tf@db1/tf", &gone).expect("ok"),
            None
        );
    }
}
