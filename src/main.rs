use clap::Parser;
use std::process::ExitCode;

/// mimalloc gives freed memory back to the system soon after a burst (a
/// reconcile of thousands of definitions, a large trigger run), so an idle
/// daemon stays small; glibc's malloc keeps such bursts resident. It is also
/// faster on validation's many small allocations.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = segd::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return segd::cli::exit::usage();
        }
    };
    match runtime.block_on(segd::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            segd::cli::exit::usage()
        }
    }
}
