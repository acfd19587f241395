fn main() -> std::process::ExitCode {
    kubeconfig_gen::cli::main()
}
