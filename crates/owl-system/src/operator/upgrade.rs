//! Reading a module file for a live upgrade, safely: off the schedulers,
//! regular files only (a FIFO or `/dev/zero` would block or never end), and
//! never more than the sandbox takes, whatever size the file claims.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use owl_sandbox::MAX_SOURCE_BYTES;

use super::OperatorError;

/// How long reading a module file may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What an upgrade did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgraded {
    /// The module.
    pub module: String,
    /// Its new current version.
    pub version: u32,
    /// Processes still running older versions.
    pub still_old: usize,
    /// Processes of older versions killed by a purge.
    pub killed: usize,
}

/// Reads a module file on a blocking thread, within [`READ_TIMEOUT`].
pub(super) async fn read_module_file(path: &Path) -> Result<Vec<u8>, OperatorError> {
    let owned = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || read_bounded(&owned));
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(OperatorError::Upgrade(format!("reading failed: {e}"))),
        Err(_) => Err(OperatorError::Upgrade(format!(
            "{}: reading took longer than {} s",
            path.display(),
            READ_TIMEOUT.as_secs()
        ))),
    }
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, OperatorError> {
    let shown = path.display();
    let fail = |e: std::io::Error| OperatorError::Upgrade(format!("cannot read {shown}: {e}"));
    // Non-blocking open: opening a FIFO without a writer returns at once.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(fail)?;
    let kind = file.metadata().map_err(fail)?.file_type();
    if !kind.is_file() {
        return Err(OperatorError::Upgrade(format!(
            "{shown} is not a regular file (a module is read from a .wat or .wasm file)"
        )));
    }
    let mut source = Vec::new();
    file.take(MAX_SOURCE_BYTES as u64 + 1)
        .read_to_end(&mut source)
        .map_err(fail)?;
    if source.len() > MAX_SOURCE_BYTES {
        return Err(OperatorError::Upgrade(format!(
            "{shown} is larger than {} MiB; modules of at most that size are taken",
            MAX_SOURCE_BYTES >> 20
        )));
    }
    Ok(source)
}
