//! The only `unsafe` of the daemon: a minimal binding of libpam's
//! application side (`pam_start`, `pam_authenticate`, `pam_acct_mgmt`,
//! `pam_end`) and a conversation function that answers the password.
//!
//! The constants and structs are the `pamsys` crate's, shared with the PAM
//! module and checked against Linux-PAM's header there.
//!
//! Written by hand rather than through `pam-client`/`pam-sys` 1.0, whose
//! build needs bindgen and libclang, or `pam` 0.7, which starts PAM without
//! the user name and offers no way to replace PAM's own failure delay.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use pamsys::{
    PAM_BUF_ERR, PAM_CONV_ERR, PAM_DISALLOW_NULL_AUTHTOK, PAM_ERROR_MSG, PAM_FAIL_DELAY,
    PAM_MAX_NUM_MSG, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_RHOST, PAM_SILENT, PAM_SUCCESS,
    PAM_TEXT_INFO, PamConv, PamHandle, PamMessage, PamResponse,
};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

type DelayFn = extern "C" fn(c_int, c_uint, *mut c_void);

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_start(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const PamConv,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_end(pamh: *mut PamHandle, pam_status: c_int) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_strerror(pamh: *mut PamHandle, errnum: c_int) -> *const c_char;
}

/// What the conversation answers with.
struct Answers {
    user: CString,
    /// NUL-terminated; wiped on drop.
    password: Zeroizing<Vec<u8>>,
}

/// A PAM failure: the step and PAM's own text for the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PamFailure {
    pub step: &'static str,
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for PamFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} (PAM code {})",
            self.step, self.message, self.code
        )
    }
}

/// Runs `pam_authenticate` and then `pam_acct_mgmt` for `user` through
/// `service`, answering password prompts with `password`; `rhost` becomes
/// `PAM_RHOST` (pam_access, pam_faillock and the logs use it).
pub(crate) fn authenticate(
    service: &str,
    user: &str,
    password: &SecretString,
    rhost: Option<&str>,
) -> Result<(), PamFailure> {
    let fail = |step, message: &str| PamFailure {
        step,
        code: PAM_CONV_ERR,
        message: message.to_owned(),
    };
    let service =
        CString::new(service).map_err(|_| fail("pam_start", "NUL in the service name"))?;
    let user_c = CString::new(user).map_err(|_| fail("pam_start", "NUL in the user name"))?;
    let rhost = rhost
        .map(CString::new)
        .transpose()
        .map_err(|_| fail("pam_set_item", "NUL in the remote host"))?;
    // The only copy made here: NUL-terminated for C, sized up front (no
    // reallocation leaves a stray copy), wiped when `answers` drops.
    let password = password.expose_secret().as_bytes();
    if password.contains(&0) {
        return Err(fail("pam_authenticate", "NUL in the password"));
    }
    let mut secret = Zeroizing::new(Vec::with_capacity(password.len() + 1));
    secret.extend_from_slice(password);
    secret.push(0);
    let answers = Answers {
        user: user_c.clone(),
        password: secret,
    };
    let conv = PamConv {
        conv: Some(converse),
        appdata_ptr: ptr::from_ref(&answers).cast_mut().cast(),
    };

    let mut handle: *mut PamHandle = ptr::null_mut();
    // SAFETY: every pointer is valid for the call; Linux-PAM copies `conv`,
    // and `answers` outlives the handle (pam_end below, before it drops).
    let started = unsafe { pam_start(service.as_ptr(), user_c.as_ptr(), &conv, &mut handle) };
    if started != PAM_SUCCESS || handle.is_null() {
        return Err(PamFailure {
            step: "pam_start",
            code: started,
            message: describe(ptr::null_mut(), started),
        });
    }
    // The API waits after a wrong password itself: PAM's own delay (two
    // seconds in pam_unix) would only add to it.
    let delay: DelayFn = no_delay;
    // SAFETY: `handle` is live; PAM_FAIL_DELAY takes a function pointer.
    unsafe { pam_set_item(handle, PAM_FAIL_DELAY, delay as *const c_void) };
    if let Some(rhost) = &rhost {
        // SAFETY: `handle` is live; PAM copies the string.
        unsafe { pam_set_item(handle, PAM_RHOST, rhost.as_ptr().cast()) };
    }

    let flags = PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK;
    // SAFETY: `handle` is live until pam_end.
    let mut status = unsafe { pam_authenticate(handle, flags) };
    let mut step = "pam_authenticate";
    if status == PAM_SUCCESS {
        // Expired, locked or otherwise refused accounts fail here.
        // SAFETY: as above.
        status = unsafe { pam_acct_mgmt(handle, flags) };
        step = "pam_acct_mgmt";
    }
    let result = if status == PAM_SUCCESS {
        Ok(())
    } else {
        Err(PamFailure {
            step,
            code: status,
            message: describe(handle, status),
        })
    };
    // SAFETY: ends the live handle exactly once.
    unsafe { pam_end(handle, status) };
    drop(answers);
    result
}

fn describe(handle: *mut PamHandle, code: c_int) -> String {
    // SAFETY: pam_strerror returns a static string (the handle is unused by
    // Linux-PAM and may be null).
    let text = unsafe { pam_strerror(handle, code) };
    if text.is_null() {
        return format!("PAM error {code}");
    }
    // SAFETY: non-null and NUL-terminated.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

extern "C" fn no_delay(_retval: c_int, _usec: c_uint, _appdata: *mut c_void) {}

/// The conversation libpam calls: [`answer`], with a panic turned into
/// `PAM_CONV_ERR` by [`guarded`] so that nothing unwinds into C.
extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    guarded(|| answer(num_msg, msg, resp, appdata))
}

/// Runs one conversation; a panic inside it is `PAM_CONV_ERR`. Unwinding
/// out of an `extern "C"` function would abort the whole daemon.
fn guarded(conversation: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(conversation)).unwrap_or(PAM_CONV_ERR)
}

/// The password for echo-off prompts, the user name for echo-on ones (a
/// "login:" prompt), nothing for messages.
fn answer(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    if num_msg <= 0
        || num_msg > PAM_MAX_NUM_MSG
        || msg.is_null()
        || resp.is_null()
        || appdata.is_null()
    {
        return PAM_CONV_ERR;
    }
    let n = usize::try_from(num_msg).unwrap_or(0);
    // SAFETY: `appdata` is the `Answers` that `authenticate` keeps alive.
    let answers = unsafe { &*appdata.cast::<Answers>() };
    // SAFETY: calloc of n zeroed responses; PAM frees them with free().
    let replies =
        unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..n {
        // SAFETY: Linux-PAM passes an array of `num_msg` message pointers.
        let m = unsafe { *msg.add(i) };
        if m.is_null() {
            free_replies(replies, n);
            return PAM_CONV_ERR;
        }
        // SAFETY: a valid message from PAM.
        let style = unsafe { (*m).msg_style };
        let answer: *const c_char = match style {
            PAM_PROMPT_ECHO_OFF => answers.password.as_ptr().cast(),
            PAM_PROMPT_ECHO_ON => answers.user.as_ptr(),
            PAM_ERROR_MSG | PAM_TEXT_INFO => continue,
            _ => {
                free_replies(replies, n);
                return PAM_CONV_ERR;
            }
        };
        // SAFETY: `answer` is NUL-terminated; the copy belongs to PAM.
        let copy = unsafe { libc::strdup(answer) };
        if copy.is_null() {
            free_replies(replies, n);
            return PAM_BUF_ERR;
        }
        // SAFETY: `i < n` within the calloc'ed array.
        unsafe { (*replies.add(i)).resp = copy };
    }
    // SAFETY: `resp` is PAM's out-pointer.
    unsafe { *resp = replies };
    PAM_SUCCESS
}

/// Wipes and frees replies on a failed conversation.
fn free_replies(replies: *mut PamResponse, n: usize) {
    for i in 0..n {
        // SAFETY: `i < n` within the calloc'ed array; each `resp` is null or
        // a strdup'ed string.
        unsafe {
            let r = (*replies.add(i)).resp;
            if !r.is_null() {
                let len = libc::strlen(r);
                ptr::write_bytes(r, 0, len);
                libc::free(r.cast());
            }
        }
    }
    // SAFETY: the calloc'ed array, freed once.
    unsafe { libc::free(replies.cast()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_conversation_answers_conv_err() {
        assert_eq!(
            guarded(|| panic!("a bug in the conversation")),
            PAM_CONV_ERR
        );
        assert_eq!(guarded(|| PAM_SUCCESS), PAM_SUCCESS);
    }

    #[test]
    fn a_conversation_without_messages_is_refused() {
        let answers = Answers {
            user: CString::from(c"root"),
            password: Zeroizing::new(b"pw\0".to_vec()),
        };
        let mut resp: *mut PamResponse = ptr::null_mut();
        let rc = converse(
            0,
            ptr::null_mut(),
            &mut resp,
            ptr::from_ref(&answers).cast_mut().cast(),
        );
        assert_eq!(rc, PAM_CONV_ERR);
        assert!(resp.is_null());
    }
}
