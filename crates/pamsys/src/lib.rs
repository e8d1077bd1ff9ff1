//! Linux-PAM's ABI as both sides of it are used here: the return codes,
//! items, flags and message styles of `<security/_pam_types.h>`, the
//! conversation structs (`struct pam_message`, `struct pam_response`,
//! `struct pam_conv`) and the opaque `pam_handle_t`.
//!
//! Declarations only, no code and no `unsafe`: the PAM module (`pam`, the
//! service-module side) and the daemon (`daemon`, the application side)
//! each keep the functions they link and their own `unsafe` in one module.
//! `tests/header.rs` compiles a small C program against the installed
//! header and compares every value, size and field offset here with it.

use std::ffi::{c_char, c_int, c_void};
use std::marker::{PhantomData, PhantomPinned};

// Return codes.
/// The call succeeded.
pub const PAM_SUCCESS: c_int = 0;
/// Memory buffer error.
pub const PAM_BUF_ERR: c_int = 5;
/// Authentication failure.
pub const PAM_AUTH_ERR: c_int = 7;
/// The conversation failed.
pub const PAM_CONV_ERR: c_int = 19;
/// The module has no say; the stack ignores it.
pub const PAM_IGNORE: c_int = 25;

// Items (`pam_get_item`, `pam_set_item`).
/// The service name the application started PAM with.
pub const PAM_SERVICE: c_int = 1;
/// The remote host.
pub const PAM_RHOST: c_int = 4;
/// The application's `struct pam_conv`.
pub const PAM_CONV: c_int = 5;
/// A function that replaces the failure delay.
pub const PAM_FAIL_DELAY: c_int = 10;

// Flags.
/// Show no messages.
pub const PAM_SILENT: c_int = 0x8000;
/// Refuse an empty authentication token.
pub const PAM_DISALLOW_NULL_AUTHTOK: c_int = 0x0001;

// Message styles.
/// A prompt whose answer is not echoed (a password, a code).
pub const PAM_PROMPT_ECHO_OFF: c_int = 1;
/// A prompt whose answer is echoed (a user name).
pub const PAM_PROMPT_ECHO_ON: c_int = 2;
/// An error message, no answer.
pub const PAM_ERROR_MSG: c_int = 3;
/// An informational message, no answer.
pub const PAM_TEXT_INFO: c_int = 4;
/// Linux-PAM's bound on messages in one conversation call.
pub const PAM_MAX_NUM_MSG: c_int = 32;

/// `pam_handle_t`: opaque, only ever behind a pointer.
#[repr(C)]
#[derive(Debug)]
pub struct PamHandle {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `struct pam_message`.
#[repr(C)]
#[derive(Debug)]
pub struct PamMessage {
    pub msg_style: c_int,
    pub msg: *const c_char,
}

/// `struct pam_response`: `resp` is allocated with `malloc` by whoever
/// answers and freed with `free` by whoever asked.
#[repr(C)]
#[derive(Debug)]
pub struct PamResponse {
    pub resp: *mut c_char,
    pub resp_retcode: c_int,
}

/// The conversation function of `struct pam_conv`.
pub type ConvFn = unsafe extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int;

/// `struct pam_conv`.
#[repr(C)]
#[derive(Debug)]
pub struct PamConv {
    pub conv: Option<ConvFn>,
    pub appdata_ptr: *mut c_void,
}
