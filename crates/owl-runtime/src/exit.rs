//! Exit reasons: why a process ended, carried by exit signals and `Down` messages.

use std::fmt;
use std::sync::Arc;

/// Why a process ended.
///
/// The reasons follow Erlang's: `Normal` and `Shutdown` are orderly ends that do
/// not take linked processes down; everything else is abnormal and propagates
/// along links to processes that do not trap exits.
///
/// A reason prints as text and parses back from it (a console, a log line):
///
/// ```
/// use owl_runtime::ExitReason;
///
/// assert!(!ExitReason::Normal.is_abnormal());
/// assert!(!ExitReason::Shutdown.is_abnormal());
/// assert!(!ExitReason::shutdown_with("node leaving").is_abnormal());
/// assert!(ExitReason::error("disk full").is_abnormal());
/// assert_eq!(ExitReason::error("disk full").to_string(), "disk full");
/// for reason in [ExitReason::Killed, ExitReason::shutdown_with("bye"), ExitReason::error("disk full")] {
///     assert_eq!(reason.to_string().parse::<ExitReason>(), Ok(reason));
/// }
/// // It is an error type too, so `?` carries it into `Box<dyn Error>` or anyhow.
/// let failed: Result<(), Box<dyn std::error::Error>> = Err(ExitReason::CpuLimit.into());
/// assert_eq!(failed.unwrap_err().to_string(), "cpu_limit");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// The process returned normally.
    Normal,
    /// The process was asked to stop (by its supervisor, for instance).
    Shutdown,
    /// An orderly stop with a reason attached, like OTP's `{shutdown, Term}`:
    /// treated as `Shutdown` for restarts and logging, while saying why.
    ShutdownWith(Arc<str>),
    /// The process was killed with the untrappable [`ExitReason::Kill`] signal.
    Killed,
    /// Only as a *signal*: [`Node::exit`](crate::Node::exit) with `Kill` ends the
    /// target even if it traps exits, and the target's exit reason is `Killed`.
    Kill,
    /// The process panicked; the panic message (and location, where known).
    Panic(Arc<str>),
    /// The process failed with an error value.
    Error(Arc<str>),
    /// The target did not exist (a link or monitor to a dead pid).
    NoProc,
    /// The process used up its CPU-time budget.
    CpuLimit,
    /// The node the process lived on can no longer be reached (it died, hung
    /// or was cut off): what a remote link or monitor reports for it, like
    /// Erlang's `noconnection`.
    NoConnection,
}

impl ExitReason {
    /// An error reason from anything printable.
    pub fn error(reason: impl fmt::Display) -> ExitReason {
        ExitReason::Error(reason.to_string().into())
    }

    /// An orderly stop that says why (see [`ExitReason::ShutdownWith`]).
    pub fn shutdown_with(why: impl fmt::Display) -> ExitReason {
        ExitReason::ShutdownWith(why.to_string().into())
    }

    /// Whether this reason is a crash (anything but `Normal` and the
    /// shutdown reasons).
    pub fn is_abnormal(&self) -> bool {
        !matches!(
            self,
            ExitReason::Normal | ExitReason::Shutdown | ExitReason::ShutdownWith(_)
        )
    }

    /// Whether this is `Shutdown` or `ShutdownWith`.
    pub fn is_shutdown(&self) -> bool {
        matches!(self, ExitReason::Shutdown | ExitReason::ShutdownWith(_))
    }

    /// A short machine-friendly tag: `normal`, `shutdown`, `killed`, `panic`, …
    pub fn kind(&self) -> &'static str {
        match self {
            ExitReason::Normal => "normal",
            ExitReason::Shutdown | ExitReason::ShutdownWith(_) => "shutdown",
            ExitReason::Killed => "killed",
            ExitReason::Kill => "kill",
            ExitReason::Panic(_) => "panic",
            ExitReason::Error(_) => "error",
            ExitReason::NoProc => "noproc",
            ExitReason::CpuLimit => "cpu_limit",
            ExitReason::NoConnection => "noconnection",
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Panic(msg) => write!(f, "panic: {msg}"),
            ExitReason::ShutdownWith(why) => write!(f, "shutdown: {why}"),
            ExitReason::Error(msg) => f.write_str(msg),
            other => f.write_str(other.kind()),
        }
    }
}

impl std::error::Error for ExitReason {}

impl std::str::FromStr for ExitReason {
    type Err = std::convert::Infallible;

    /// Reads what [`Display`](fmt::Display) writes: `normal`, `shutdown`,
    /// `shutdown: why`, `killed`, `kill`, `panic: message`, `noproc`,
    /// `cpu_limit`, `noconnection`; any other text is an [`ExitReason::Error`] carrying it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Ok(match s {
            "normal" => ExitReason::Normal,
            "shutdown" => ExitReason::Shutdown,
            "killed" => ExitReason::Killed,
            "kill" => ExitReason::Kill,
            "noproc" => ExitReason::NoProc,
            "cpu_limit" => ExitReason::CpuLimit,
            "noconnection" => ExitReason::NoConnection,
            _ => match (s.strip_prefix("shutdown: "), s.strip_prefix("panic: ")) {
                (Some(why), _) => ExitReason::shutdown_with(why),
                (_, Some(msg)) => ExitReason::Panic(msg.into()),
                _ => ExitReason::error(s),
            },
        })
    }
}

/// What a process body may return; converted into its exit reason.
///
/// `()` is a normal exit, `Ok(_)` too; `Err(reason)` exits with that
/// [`ExitReason`], and an `Err` holding a message (`String`, `&str`, an I/O
/// error, a boxed error) exits with [`ExitReason::Error`] carrying it.
pub trait IntoExitReason {
    /// The exit reason this return value stands for.
    fn into_exit_reason(self) -> ExitReason;
}

impl IntoExitReason for () {
    fn into_exit_reason(self) -> ExitReason {
        ExitReason::Normal
    }
}

impl IntoExitReason for ExitReason {
    fn into_exit_reason(self) -> ExitReason {
        self
    }
}

impl<T> IntoExitReason for Result<T, ExitReason> {
    fn into_exit_reason(self) -> ExitReason {
        self.err().unwrap_or(ExitReason::Normal)
    }
}

/// `Result`s whose error is a message: `Err(e)` becomes [`ExitReason::Error`].
macro_rules! error_results {
    ($($err:ty),*) => {$(
        impl<T> IntoExitReason for Result<T, $err> {
            fn into_exit_reason(self) -> ExitReason {
                match self {
                    Ok(_) => ExitReason::Normal,
                    Err(e) => ExitReason::error(e),
                }
            }
        }
    )*};
}
error_results!(
    String,
    &'static str,
    std::io::Error,
    Box<dyn std::error::Error + Send + Sync>
);

/// Names the never type `!` on stable Rust, so that process bodies that loop
/// forever (their `async` block's output is `!`) are accepted.
#[doc(hidden)]
pub mod never {
    pub trait FnOutput {
        type Output;
    }
    impl<T> FnOutput for fn() -> T {
        type Output = T;
    }
    pub type Never = <fn() -> ! as FnOutput>::Output;
}

impl IntoExitReason for never::Never {
    fn into_exit_reason(self) -> ExitReason {
        self
    }
}
