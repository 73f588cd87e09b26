//! Files the server creates are its own: the database, recordings, the library and the secret
//! hold pupils' faces and voices and the admin keys' hashes. A umask of 077 makes every file
//! 600 and every directory 700, whatever the service manager's default (often 022).

/// Sets the process umask to 077 and restricts `dirs` that already exist (an installation
/// from before this rule) to 700. Errors are logged, not fatal: the server still works.
pub fn restrict(dirs: &[&std::path::Path]) {
    set_umask();
    #[cfg(unix)]
    for d in dirs {
        use std::os::unix::fs::PermissionsExt;
        if d.is_dir()
            && let Err(e) = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
        {
            tracing::warn!(dir = %d.display(), "cannot make the directory private: {e}");
        }
    }
    #[cfg(not(unix))]
    let _ = dirs;
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn set_umask() {
    // SAFETY: umask only swaps the process's file mode mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

#[cfg(not(unix))]
fn set_umask() {}
