//! Facts about the machine that several tasks need.

use std::env;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Directories searched after PATH, because Debian puts `ip` and other
/// administration tools in sbin directories that a normal user's PATH lacks.
const SBIN_DIRS: [&str; 3] = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// Returns whether this process runs with effective UID 0.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Finds an executable file named `name` in PATH or in the sbin directories.
pub fn find_command(name: &str) -> Option<PathBuf> {
    find_command_in(name, &env::var_os("PATH").unwrap_or_default())
}

/// Finds an executable file named `name` in the directories of `path` (in PATH
/// syntax) or in the sbin directories.
pub fn find_command_in(name: &str, path: &OsStr) -> Option<PathBuf> {
    env::split_paths(path)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
