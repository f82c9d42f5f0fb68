//! Testkit errors.

/// Why a test peer could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// A required program is not installed.
    #[error("`{binary}` not found: install the Debian package `{package}` (scripts/test does)")]
    MissingBinary {
        /// What was looked for.
        binary: String,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// A command ran but failed.
    #[error("`{command}` failed: {detail}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// Exit status and output.
        detail: String,
    },
    /// The server did not become ready.
    #[error("{server} not ready after {seconds} s: {detail}")]
    NotReady {
        /// Which server.
        server: &'static str,
        /// How long we waited.
        seconds: u64,
        /// The server's log tail.
        detail: String,
    },
    /// Local I/O failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}
