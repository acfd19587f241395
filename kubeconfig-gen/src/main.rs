fn main() -> std::process::ExitCode {
    kubeconfig_gen::app::main()
}
