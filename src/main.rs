//! The `ketang` binary; everything happens in [`ketang::cli::run`].

fn main() -> std::process::ExitCode {
    ketang::cli::run()
}
