//! Fills a state directory with many accounts holding secrets, through the
//! store itself (for `scripts/peruser-bench`, not a criterion bench):
//!
//! ```text
//! gen-users STATE_DIR COUNT PASSWD_FILE
//! ```
//!
//! Turns 2FA on with a secret for root, then gives `user00000` ...
//! (uid 100000 + n) a random secret each, 5,000 per transaction, and
//! writes an nss_wrapper passwd file naming root and every one of them.

use std::io::Write;
use std::path::Path;

use otp::{Digits, Interval, Secret, Window};
use store::{NewUserSecret, Settings, SqliteStore, Store, transact};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const BATCH: usize = 5_000;

fn random_secret() -> Result<Secret> {
    let mut bytes = vec![0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| format!("randomness: {e}"))?;
    Ok(Secret::from_bytes(bytes)?)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [dir, count, passwd] = args.as_slice() else {
        return Err("usage: gen-users STATE_DIR COUNT PASSWD_FILE".into());
    };
    let count: usize = count.parse()?;
    let store = SqliteStore::open(Path::new(dir))?;
    transact(&store, |tx| {
        tx.put_settings(&Settings {
            otp_digits: Digits::DEFAULT,
            window: Window::DEFAULT,
            interval: Interval::DEFAULT,
            ssh: true,
            enabled: true,
            legacy_shared_code: false,
        })?;
        if tx.user_secret("root")?.is_none() {
            let secret = random_secret().map_err(|e| store::StoreError::database(e.to_string()))?;
            tx.put_user_secret(&NewUserSecret::root(&secret, 0))?;
        }
        Ok(())
    })?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(passwd)?);
    writeln!(file, "root:x:0:0:root:/root:/bin/sh")?;
    let mut n = 0;
    while n < count {
        let end = (n + BATCH).min(count);
        let secrets = (n..end)
            .map(|_| random_secret())
            .collect::<Result<Vec<_>>>()?;
        transact(&store, |tx| {
            for (i, secret) in (n..end).zip(&secrets) {
                let name = format!("user{i:05}");
                tx.put_user_secret(&NewUserSecret {
                    username: &name,
                    uid: 100_000 + u32::try_from(i).unwrap_or(u32::MAX),
                    secret,
                    digits: Digits::DEFAULT,
                    interval: Interval::DEFAULT,
                    created_at_ms: 0,
                })?;
            }
            Ok(())
        })?;
        for i in n..end {
            writeln!(
                file,
                "user{i:05}:x:{uid}:{uid}:bench user:/nonexistent:/bin/sh",
                uid = 100_000 + i
            )?;
        }
        n = end;
    }
    file.flush()?;
    let view = store.read_user(&format!("user{:05}", count.saturating_sub(1)), 0)?;
    println!(
        "{count} accounts with secrets in {dir} (last has a secret: {})",
        view.secret.is_some()
    );
    Ok(())
}
