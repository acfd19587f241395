fn main() -> std::process::ExitCode {
    sync_daemon::cli::main()
}
