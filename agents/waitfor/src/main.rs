//! `waitfor`: parse the configuration, build the agent, run it until shutdown.

fn main() -> std::process::ExitCode {
    common::main::<waitfor::WaitFor>()
}
