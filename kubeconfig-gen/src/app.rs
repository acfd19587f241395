//! The process: parse the command line, start logging and the runtime, run one command, and turn
//! its error into the message on stderr and the documented exit code.
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::prelude::*;

use crate::cli::{Cli, Command, EksCommand, FileArgs, GenerateArgs, TokenArgs, UpdateArgs};
use crate::error::{Result, exit};
use crate::{aws, credential, env, explain, generate, output, update};

/// Logs on stderr: `KUBECONFIG_GEN_LOG`, else `RUST_LOG`, else `warn` (aws-config's profile
/// provider: `error`; the wire never at trace, see `WIRE_TARGETS`). Colour only when stderr
/// is a terminal and `NO_COLOR` is unset (escape codes filled the init container's log). A
/// closed stderr is ignored: the subscriber would otherwise report it with `eprintln!`, a panic.
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBECONFIG_GEN_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_env("RUST_LOG"))
        // aws-config's profile provider warns of every failed chain with a Debug dump of the
        // error (`ProviderError(ServiceError { raw: Response { ... } })`) just before returning
        // it; the error is ours to report, once and by its Display chain.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("warn,aws_config::profile::credentials=error")
        });
    let colour = std::io::stderr().is_terminal() && env::var("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .log_internal_errors(false)
        .with_target(false)
        .finish()
        .with(tracing_subscriber::filter::filter_fn(|m| {
            allowed(m.target(), m.level())
        }))
        .try_init();
}

/// Targets whose trace events are dropped whatever the filter says: the SDK's orchestrator
/// traces each request and response whole (an SSO request carries the access token in a header
/// the SDK does not mark sensitive, `x-amz-sso_bearer_token`), and the HTTP/TLS crates dump
/// headers and frames.
const WIRE_TARGETS: &[&str] = &[
    "aws_smithy_runtime::client::orchestrator",
    "aws_smithy_http_client",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tokio_rustls",
];

fn allowed(target: &str, level: &tracing::Level) -> bool {
    *level != tracing::Level::TRACE
        || !WIRE_TARGETS.iter().any(|t| {
            target == *t
                || target
                    .strip_prefix(t)
                    .is_some_and(|rest| rest.starts_with("::"))
        })
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::say(&format!("error: cannot start the async runtime: {e}"));
            return ExitCode::from(exit::RUNTIME);
        }
    };
    let result = runtime.block_on(run(cli));
    // Not `drop`: that waits for every blocking task (a DNS lookup of an AWS call that --watch
    // dropped on SIGTERM) however long it takes.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            output::say(&err.render());
            ExitCode::from(err.exit_code())
        }
    }
}

/// The flags become each command's own options here, so no command depends on clap's types.
async fn run(cli: Cli) -> Result<()> {
    let files = |f: FileArgs| aws::Files::resolve(f.config_file, f.credentials_file);
    match cli.command {
        Command::Generate(args) => {
            let GenerateArgs {
                clusters,
                profiles,
                regions,
                current_context,
                exec_command,
                exec_style,
                kubeconfig,
                replace,
                keep_going,
                watch,
                interval,
                files: file_args,
            } = args;
            let opts = generate::Options {
                clusters,
                profiles,
                region: cli.region,
                regions,
                current_context,
                exec_command,
                exec_style,
                kubeconfig,
                replace,
                keep_going,
                files: files(file_args),
                timeout: cli.timeout,
            };
            if watch {
                let every = interval.unwrap_or(crate::watch::DEFAULT_INTERVAL);
                crate::watch::watch(opts, every).await
            } else {
                generate::generate(opts).await
            }
        }
        Command::Explain(args) => explain::explain(&files(args.files), &args.profiles),
        Command::UpdateKubeconfig(args) => {
            let UpdateArgs {
                name,
                alias,
                user_alias,
                profile,
                role_arn,
                kubeconfig,
                dry_run,
                exec_command,
                files: file_args,
            } = args;
            update::run(update::Request {
                cluster: name,
                alias,
                user_alias,
                region: cli.region,
                profile,
                role_arn,
                kubeconfig,
                dry_run,
                exec_command,
                files: files(file_args),
                timeout: cli.timeout,
            })
            .await
        }
        Command::Token(args)
        | Command::Eks {
            command: EksCommand::GetToken(args),
        } => {
            // `--output` is accepted for awscli's argument shape only: json is the one value.
            let TokenArgs {
                cluster_name,
                profile,
                role_arn,
                output: _,
                files: file_args,
            } = args;
            credential::run(credential::Request {
                cluster: cluster_name,
                region: cli.region,
                profile,
                role_arn,
                files: files(file_args),
                timeout: cli.timeout,
            })
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn the_wire_never_logs_at_trace() {
        let cases = [
            (
                "aws_smithy_runtime::client::orchestrator",
                Level::TRACE,
                false,
            ),
            (
                "aws_smithy_runtime::client::orchestrator",
                Level::DEBUG,
                true,
            ),
            ("aws_smithy_runtime::client::retries", Level::TRACE, true),
            ("hyper_util::client::legacy", Level::TRACE, false),
            ("hyperx", Level::TRACE, true),
            ("kubeconfig_gen::generate", Level::TRACE, true),
        ];
        for (target, level, want) in cases {
            assert_eq!(allowed(target, &level), want, "{target} {level}");
        }
    }
}
