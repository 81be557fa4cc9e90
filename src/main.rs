//! The `crowdpark` binary; everything lives in the library so tests and benches
//! drive the same code.

fn main() -> std::process::ExitCode {
    crowdpark::cli::main()
}
