//! The `icl-lab` binary: everything lives in the library, so changing the CLI does not
//! re-monomorphise burn here.

fn main() -> std::process::ExitCode {
    icl_lab::cli::main()
}
