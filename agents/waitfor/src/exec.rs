//! Running the user's command once everything is ready: `exec`, so the command replaces
//! waitfor (same PID, signals and exit code pass straight through).
use std::{io, os::unix::process::CommandExt, process::ExitCode};

use tracing::{error, info};

/// Replaces the process with `command`. Returns only when exec failed: 127 when the program
/// is not found, 126 when it cannot be run.
pub fn exec(command: &[String]) -> ExitCode {
    let Some((program, args)) = command.split_first() else {
        return ExitCode::SUCCESS;
    };
    info!(command = %common::secret::redact(&command.join(" ")), "running command");
    let err = std::process::Command::new(program).args(args).exec();
    let code = match err.kind() {
        io::ErrorKind::NotFound => 127,
        _ => 126,
    };
    error!(
        error = %err,
        program = %program,
        "cannot run the command ({}); exiting with {code}",
        if code == 127 { "not found: check the name and PATH" } else { "check that it is an executable file" }
    );
    ExitCode::from(code)
}
