//! Password checks through PAM (the service named by `pam_service` in the
//! configuration, `twofactord` by default): `auth` and then `account`, so
//! expired and locked accounts are refused too. The binding is
//! Linux-PAM's; on any other system every password is refused.

#[cfg(target_os = "linux")]
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
    #[cfg(not(target_os = "linux"))]
    fn check(&self, _user: &str, _password: &SecretString, _rhost: Option<&str>) -> bool {
        tracing::warn!(pam_service = %self.service, "PAM is Linux-PAM only here: password refused");
        false
    }

    #[cfg(target_os = "linux")]
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
