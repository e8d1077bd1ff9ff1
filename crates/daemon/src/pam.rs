//! Password checks through PAM (the service named by `pam_service` in the
//! configuration, `twofactord` by default): `auth` and then `account`, so
//! expired and locked accounts are refused too.

mod ffi;

use api::host::PasswordCheck;
use secrecy::SecretString;

/// [`PasswordCheck`] over PAM.
#[derive(Debug, Clone)]
pub struct PamPasswords {
    service: String,
}

impl PamPasswords {
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
        }
    }
}

impl PasswordCheck for PamPasswords {
    fn check(&self, user: &str, password: &SecretString, rhost: Option<&str>) -> bool {
        match ffi::authenticate(&self.service, user, password, rhost) {
            Ok(()) => true,
            Err(failure) => {
                // Never the password; the user name is audited anyway. A
                // flood of wrong passwords is not a flood of log lines.
                if let Some(suppressed) = crate::throttle::allow("pam_refused") {
                    tracing::info!(pam_service = %self.service, user, reason = %failure, suppressed, "PAM refused a login");
                }
                false
            }
        }
    }
}
