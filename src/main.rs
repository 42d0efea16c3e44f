//! Thin binary: parse the CLI, set up tracing, run the command, map the result to an exit code.
fn main() -> std::process::ExitCode {
    kubesync::cli::main()
}
