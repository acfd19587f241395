fn main() -> std::process::ExitCode {
    sync_daemon::main()
}
