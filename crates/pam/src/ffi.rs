//! Every line of `unsafe` in the module: the C entry points libpam calls,
//! the libpam functions it calls back, and the conversation's memory rules.
//! Everything else works on safe types (see [`crate::auth`]).
//!
//! The constants and structs of `<security/_pam_types.h>` are the `pamsys`
//! crate's (checked against the header there); the functions follow
//! `<security/pam_modules.h>` and `<security/pam_ext.h>`.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ptr;

pub use pamsys::PamHandle;
use pamsys::{
    PAM_AUTH_ERR, PAM_CONV, PAM_CONV_ERR, PAM_ERROR_MSG, PAM_IGNORE, PAM_PROMPT_ECHO_OFF,
    PAM_RHOST, PAM_SERVICE, PAM_SILENT, PAM_SUCCESS, PamConv, PamMessage, PamResponse,
};
use zeroize::{Zeroize, Zeroizing};

use crate::auth::{ConvError, Conversation, Log, Login, Verdict};

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_get_item(pamh: *const PamHandle, item_type: c_int, item: *mut *const c_void) -> c_int;
    fn pam_get_user(pamh: *mut PamHandle, user: *mut *const c_char, prompt: *const c_char)
    -> c_int;
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
}

/// Runs `body` on a checked handle; a panic or a null handle is
/// `PAM_AUTH_ERR`, so nothing unwinds into the application.
fn entry(
    pamh: *mut PamHandle,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
    body: fn(&mut Handle, Vec<String>) -> Verdict,
) -> c_int {
    let verdict = crate::guarded(|| {
        if pamh.is_null() {
            return Verdict::AuthErr;
        }
        let args = args(argc, argv);
        let mut h = Handle { pamh, flags };
        body(&mut h, args)
    });
    match verdict {
        Verdict::Success => PAM_SUCCESS,
        Verdict::AuthErr => PAM_AUTH_ERR,
        Verdict::ConvErr => PAM_CONV_ERR,
        Verdict::Ignore => PAM_IGNORE,
    }
}

/// # Safety
/// Called by libpam with a live handle and `argc` valid C strings in `argv`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_authenticate(
    pamh: *mut PamHandle,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    entry(pamh, flags, argc, argv, crate::authenticate)
}

/// Sets no credentials: the code is a check, not a credential.
///
/// # Safety
/// Called by libpam; the arguments are not used.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_setcred(
    _pamh: *mut PamHandle,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    PAM_SUCCESS
}

/// Has no say in account management (listed in an `account` line, the
/// module is skipped).
///
/// # Safety
/// Called by libpam; the arguments are not used.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_acct_mgmt(
    _pamh: *mut PamHandle,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    PAM_IGNORE
}

/// Copies the module arguments; a non-UTF-8 one is kept lossily (and will
/// be reported as unknown).
fn args(argc: c_int, argv: *const *const c_char) -> Vec<String> {
    let n = usize::try_from(argc).unwrap_or(0);
    if argv.is_null() {
        return Vec::new();
    }
    (0..n)
        .filter_map(|i| {
            // SAFETY: libpam passes `argc` entries in `argv`.
            let p = unsafe { *argv.add(i) };
            // SAFETY: each non-null entry is a NUL-terminated string owned by libpam.
            (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        })
        .collect()
}

/// The PAM handle of one call into the module.
#[derive(Debug)]
pub(crate) struct Handle {
    pamh: *mut PamHandle,
    flags: c_int,
}

impl Handle {
    fn string_item(&self, item: c_int) -> Option<String> {
        let mut p: *const c_void = ptr::null();
        // SAFETY: `pamh` is the live handle libpam passed in; `p` is a valid out-pointer.
        let rc = unsafe { pam_get_item(self.pamh, item, &mut p) };
        if rc != PAM_SUCCESS || p.is_null() {
            return None;
        }
        // SAFETY: string items are NUL-terminated and owned by libpam for the call.
        Some(
            unsafe { CStr::from_ptr(p.cast::<c_char>()) }
                .to_string_lossy()
                .into_owned(),
        )
    }

    /// `PAM_USER` (asking for it when the application has not set it),
    /// `PAM_SERVICE` and `PAM_RHOST`.
    pub(crate) fn login(&mut self) -> Result<Login, String> {
        let mut user: *const c_char = ptr::null();
        // SAFETY: live handle, valid out-pointer, null prompt means libpam's default.
        let rc = unsafe { pam_get_user(self.pamh, &mut user, ptr::null()) };
        if rc != PAM_SUCCESS || user.is_null() {
            return Err(format!("pam_get_user failed ({rc})"));
        }
        // SAFETY: libpam returns a NUL-terminated string it owns.
        let user = unsafe { CStr::from_ptr(user) }
            .to_string_lossy()
            .into_owned();
        let service = self
            .string_item(PAM_SERVICE)
            .ok_or("PAM_SERVICE is not set")?;
        let rhost = self.string_item(PAM_RHOST).filter(|h| !h.is_empty());
        Ok(Login {
            user,
            service,
            rhost,
        })
    }

    /// Sends one message and returns the answer, if the application gave
    /// one. What the application allocated is wiped and freed here.
    fn converse(
        &mut self,
        style: c_int,
        text: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConvError> {
        let mut item: *const c_void = ptr::null();
        // SAFETY: live handle, valid out-pointer.
        let rc = unsafe { pam_get_item(self.pamh, PAM_CONV, &mut item) };
        if rc != PAM_SUCCESS || item.is_null() {
            return Err(ConvError(format!("no conversation function ({rc})")));
        }
        // SAFETY: the PAM_CONV item is a `struct pam_conv` owned by libpam.
        let conv = unsafe { &*item.cast::<PamConv>() };
        let Some(f) = conv.conv else {
            return Err(ConvError("no conversation function".into()));
        };
        let text = CString::new(text.replace('\0', " ")).map_err(|e| ConvError(e.to_string()))?;
        let message = PamMessage {
            msg_style: style,
            msg: text.as_ptr(),
        };
        let mut messages: [*const PamMessage; 1] = [&message];
        let mut resp: *mut PamResponse = ptr::null_mut();
        // SAFETY: one valid message; the application allocates `resp` with malloc.
        let rc = unsafe { f(1, messages.as_mut_ptr(), &mut resp, conv.appdata_ptr) };
        let mut answer = None;
        if !resp.is_null() {
            // SAFETY: `resp` points to one `pam_response` (one message was sent).
            let reply = unsafe { ptr::read(resp) }.resp;
            // SAFETY: the array was allocated by the application with malloc; it is ours now.
            unsafe { libc::free(resp.cast::<c_void>()) };
            if !reply.is_null() {
                // SAFETY: `reply` is a NUL-terminated, malloc'ed string that is ours now.
                let bytes = unsafe {
                    std::slice::from_raw_parts_mut(reply.cast::<u8>(), libc::strlen(reply))
                };
                answer = Some(Zeroizing::new(bytes.to_vec()));
                bytes.zeroize();
                // SAFETY: as above; `bytes` is not used after this.
                unsafe { libc::free(reply.cast::<c_void>()) };
            }
        }
        if rc != PAM_SUCCESS {
            return Err(ConvError(format!("the conversation failed ({rc})")));
        }
        Ok(answer)
    }
}

impl Conversation for Handle {
    fn prompt_hidden(&mut self, prompt: &str) -> Result<Zeroizing<String>, ConvError> {
        let mut bytes = self
            .converse(PAM_PROMPT_ECHO_OFF, prompt)?
            .ok_or_else(|| ConvError("no answer".into()))?;
        Ok(match String::from_utf8(std::mem::take(&mut *bytes)) {
            Ok(s) => Zeroizing::new(s),
            Err(e) => {
                let mut raw = e.into_bytes();
                let lossy = Zeroizing::new(String::from_utf8_lossy(&raw).into_owned());
                raw.zeroize();
                lossy
            }
        })
    }

    fn error_message(&mut self, text: &str) {
        if self.flags & PAM_SILENT == 0 {
            // A message that cannot be shown changes nothing: the verdict stands.
            let _ = self.converse(PAM_ERROR_MSG, text);
        }
    }
}

/// The module's log: `pam_syslog` on the handle of the call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Syslog(*const PamHandle);

impl Handle {
    pub(crate) fn syslog(&self) -> Syslog {
        Syslog(self.pamh)
    }
}

impl Log for Syslog {
    fn error(&self, msg: &str) {
        syslog(self.0, libc::LOG_ERR, msg);
    }

    fn debug(&self, msg: &str) {
        syslog(self.0, libc::LOG_DEBUG, msg);
    }
}

/// `pam_syslog`: the authpriv facility, tagged with the service and module.
fn syslog(pamh: *const PamHandle, priority: c_int, msg: &str) {
    let Ok(msg) = CString::new(msg.replace('\0', " ")) else {
        return;
    };
    // SAFETY: live handle; a "%s" format with one C string argument.
    unsafe { pam_syslog(pamh, priority, c"%s".as_ptr(), msg.as_ptr()) };
}
