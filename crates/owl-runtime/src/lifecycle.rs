//! How servers and supervisors start and stop, alike: a start refused
//! because the name is taken (no crash, OTP's `already_started`), and an
//! exit signal from the parent that means "stop now".

use crate::exit::ExitReason;
use crate::pid::Pid;
use crate::process::Process;

/// Why a server or supervisor did not start.
///
/// ```
/// use owl_runtime::server::StartError;
/// use owl_runtime::ExitReason;
/// let failed = StartError::Failed(ExitReason::error("no config"));
/// assert_eq!(failed.to_string(), "failed to start: no config");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartError {
    /// Its name is registered already, by this process (OTP's
    /// `{error, {already_started, Pid}}`). Nothing was started: the
    /// refused process ended `normal`, without a crash report, and left no
    /// exit signal behind.
    AlreadyStarted(Pid),
    /// It failed while starting (`init` returned an error, or crashed),
    /// with this reason. A `start_link` caller gets no exit signal from it.
    Failed(ExitReason),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::AlreadyStarted(pid) => write!(f, "already started as {pid}"),
            StartError::Failed(reason) => write!(f, "failed to start: {reason}"),
        }
    }
}
impl std::error::Error for StartError {}

impl From<StartError> for ExitReason {
    /// The reason a child start function reports for a refused start.
    fn from(e: StartError) -> ExitReason {
        match e {
            StartError::Failed(reason) => reason,
            already => ExitReason::error(already.to_string()),
        }
    }
}

/// Registers `name` for `p`, or says which process holds it.
pub(crate) fn register_or_holder(p: &Process, name: &str) -> Result<(), Pid> {
    loop {
        if p.register(name).is_ok() {
            return Ok(());
        }
        // Released between the two steps: try again.
        if let Some(holder) = p.node().whereis(name) {
            return Err(holder);
        }
    }
}

/// An exit signal from the parent (or from the node itself, `<0.0.0>`) means
/// "stop now" to a trapping server or supervisor.
pub(crate) fn is_from_parent(from: &Pid, parent: Option<&Pid>) -> bool {
    from.id().0 == 0 || parent == Some(from)
}
