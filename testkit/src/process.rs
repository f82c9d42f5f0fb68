//! Running helper commands.

use std::process::Command;

use crate::TestkitError;

/// Runs `cmd` to completion; a non-zero exit is an error carrying its output.
pub(crate) fn run(cmd: &mut Command) -> Result<String, TestkitError> {
    let line = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| TestkitError::CommandFailed { command: line.clone(), detail: e.to_string() })?;
    if !out.status.success() {
        return Err(TestkitError::CommandFailed {
            command: line,
            detail: format!(
                "{}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
