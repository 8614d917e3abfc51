//! `logship`: parse the configuration, build the agent, run it until shutdown.

// musl's allocator is slow on hot paths; mimalloc is small and fast (see common::alloc).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: common::alloc::Global = common::alloc::Global;

fn main() -> std::process::ExitCode {
    common::main::<logship::Logship>()
}
