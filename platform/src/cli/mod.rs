//! The `skiff` command line, modelled on Knative's `kn` and on `kubectl`: `skiff up` runs the
//! platform; every other command is a client of the management API.

mod apply;
mod client;
mod connection;
mod eventing;
mod get;
mod kinds;
mod logs;
mod object;
mod pod;
mod revision;
mod service;
mod table;
mod up;
mod wait;
mod wasm;

use std::io::Write as _;
use std::process::ExitCode;

use client::ApiClient;

/// Skiff: serverless functions and containers, the Knative way.
#[derive(Debug, clap::Parser)]
#[command(
    name = "skiff",
    version,
    about = "Skiff: a Knative-style serverless platform (run it with `skiff up`, drive it like kn)"
)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Flags every command takes.
#[derive(Debug, clap::Args)]
struct GlobalArgs {
    /// The management API (`https://127.0.0.1:8081`); without it, the kubeconfig's server.
    #[arg(long, global = true, env = "SKIFF_SERVER")]
    server: Option<String>,
    /// The kubeconfig to read, as kubectl's flag (else KUBECONFIG, else the one `skiff up`
    /// wrote: $SKIFF_DATA_DIR/kubeconfig or ./.skiff/kubeconfig).
    #[arg(long, global = true, value_name = "FILE")]
    kubeconfig: Option<std::path::PathBuf>,
    /// The kubeconfig context to use (default: its current-context).
    #[arg(long, global = true, value_name = "NAME")]
    context: Option<String>,
    /// A PEM file of the CA that signs the API's certificate (instead of the kubeconfig's).
    #[arg(long, global = true, value_name = "FILE")]
    certificate_authority: Option<std::path::PathBuf>,
    /// Do not check the API's certificate (its traffic can then be read and changed).
    #[arg(long, global = true)]
    insecure_skip_tls_verify: bool,
    /// The namespace to work in.
    #[arg(short, long, global = true, default_value = "default")]
    namespace: String,
    /// The bearer token to send (for `skiff up`: the token to require).
    #[arg(long, global = true, env = "SKIFF_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run the platform: API, controllers and data plane in one process.
    #[command(args_override_self = true)]
    Up(up::UpArgs),
    /// Create or update objects from YAML or JSON files.
    Apply(apply::ApplyArgs),
    /// Show objects of a kind, or one of them.
    Get(get::GetArgs),
    /// Delete objects by kind and name.
    Delete(DeleteArgs),
    /// Manage Knative services.
    #[command(subcommand, visible_alias = "ksvc", alias = "services")]
    Service(service::ServiceCommand),
    /// Look at revisions.
    #[command(subcommand, visible_alias = "rev", alias = "revisions")]
    Revision(revision::RevisionCommand),
    /// Look at the pods the autoscaler runs.
    #[command(subcommand, visible_alias = "po", alias = "pods")]
    Pod(pod::PodCommand),
    /// Show what a service's running revisions wrote (stdout, stderr, host messages).
    Logs(logs::LogsArgs),
    /// Push a .wasm component to an OCI registry as a Wasm artifact; prints the pinned reference.
    Push(wasm::PushArgs),
    /// Manage brokers: where events are sent and kept.
    #[command(subcommand, alias = "brokers")]
    Broker(eventing::BrokerCommand),
    /// Manage triggers: which of a broker's events go to which sink.
    #[command(subcommand, alias = "triggers")]
    Trigger(eventing::TriggerCommand),
    /// Manage event sources.
    #[command(subcommand, alias = "sources")]
    Source(eventing::SourceCommand),
    /// Send CloudEvents.
    #[command(subcommand)]
    Event(eventing::EventCommand),
}

#[derive(Debug, clap::Args)]
struct DeleteArgs {
    /// services (ksvc), revisions (rev), routes (rt), configurations (cfg), namespaces (ns), pods (po),
    /// brokers, triggers, pingsources.
    kind: String,
    #[arg(required = true)]
    names: Vec<String>,
}

/// Runs the command. Errors are printed here as `Error: {message}` and end in exit code 1.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match dispatch(cli).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(err) => {
            eprintln!("Error: {err:#}");
            Ok(ExitCode::from(1))
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let GlobalArgs {
        server,
        namespace,
        token,
        kubeconfig,
        context,
        certificate_authority,
        insecure_skip_tls_verify,
    } = cli.global;
    if let Command::Up(args) = &cli.command {
        return crate::server::run(args.options(token.as_deref())?).await;
    }
    if let Command::Push(args) = &cli.command {
        return wasm::push(args).await;
    }
    let connection = connection::ConnectionArgs {
        kubeconfig,
        context,
        server,
        token,
        certificate_authority,
        insecure_skip_tls_verify,
    }
    .resolve()?;
    let client = ApiClient::new(&connection)?;
    match &cli.command {
        Command::Up(_) | Command::Push(_) => Ok(()),
        Command::Apply(args) => apply::run(&client, &namespace, args).await,
        Command::Get(args) => get::run(&client, &namespace, args).await,
        Command::Delete(args) => delete(&client, &namespace, args).await,
        Command::Service(command) => service::run(&client, &namespace, command).await,
        Command::Revision(command) => revision::run(&client, &namespace, command).await,
        Command::Pod(command) => pod::run(&client, &namespace, command).await,
        Command::Logs(args) => logs::run(&client, &namespace, args).await,
        Command::Broker(command) => eventing::broker::run(&client, &namespace, command).await,
        Command::Trigger(command) => eventing::trigger::run(&client, &namespace, command).await,
        Command::Source(command) => eventing::ping::run(&client, &namespace, command).await,
        Command::Event(command) => eventing::event::run(&client, &namespace, command).await,
    }
}

async fn delete(client: &ApiClient, namespace: &str, args: &DeleteArgs) -> anyhow::Result<()> {
    let kind = kinds::lookup(&args.kind)?;
    for name in &args.names {
        client.delete(kind, namespace, name).await?;
        emit(&format!("{} \"{name}\" deleted\n", kind.qualified()))?;
    }
    Ok(())
}

/// Writes to stdout; a reader that went away (`skiff get ksvc | head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(()),
    }
}

/// Parses a command line the way `skiff` would, `args` being what follows the program name.
#[cfg(test)]
pub(crate) fn try_parse_cli(args: &[&str]) -> Result<Cli, clap::Error> {
    use clap::Parser as _;
    Cli::try_parse_from(std::iter::once("skiff").chain(args.iter().copied()))
}

/// [`try_parse_cli`] for a command line that must parse.
#[cfg(test)]
pub(crate) fn parse_cli(args: &[&str]) -> Cli {
    try_parse_cli(args).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "skiff",
            "get",
            "ksvc",
            "-n",
            "team-a",
            "--server",
            "http://h:1",
            "-o",
            "yaml",
        ])
        .unwrap();
        assert_eq!(cli.global.namespace, "team-a");
        assert_eq!(cli.global.server.as_deref(), Some("http://h:1"));
        let Command::Get(args) = cli.command else { panic!("not get") };
        assert_eq!(args.output, Some(get::OutputFormat::Yaml));
    }

    #[test]
    fn up_has_the_documented_defaults() {
        let cli = Cli::try_parse_from(["skiff", "up"]).unwrap();
        let Command::Up(args) = cli.command else { panic!("not up") };
        assert_eq!(args.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(args.api_listen.to_string(), "127.0.0.1:8081");
        assert_eq!(args.domain, "localhost");
        // The data dir may come from SKIFF_DATA_DIR in the environment running the tests.
        if std::env::var_os("SKIFF_DATA_DIR").is_none() {
            assert_eq!(args.data_dir, std::path::PathBuf::from("./.skiff"));
        }
    }

    #[test]
    fn service_and_revision_answer_to_kns_aliases() {
        assert!(Cli::try_parse_from(["skiff", "ksvc", "ls"]).is_ok());
        assert!(Cli::try_parse_from(["skiff", "rev", "list", "-s", "hello"]).is_ok());
        assert!(Cli::try_parse_from(["skiff", "service", "create", "hello"]).is_ok());
        assert!(Cli::try_parse_from(["skiff", "delete", "ksvc"]).is_err());
    }

    #[test]
    fn logs_and_push_take_their_arguments() {
        let cli =
            Cli::try_parse_from(["skiff", "logs", "hello", "--revision", "hello-00002", "--tail", "20"])
                .unwrap();
        let Command::Logs(args) = cli.command else { panic!("not logs") };
        assert_eq!(
            (args.service.as_str(), args.revision.as_deref(), args.tail),
            ("hello", Some("hello-00002"), Some(20))
        );
        let cli =
            Cli::try_parse_from(["skiff", "push", "hello.wasm", "localhost:5000/fns/hello:v1"]).unwrap();
        let Command::Push(args) = cli.command else { panic!("not push") };
        assert_eq!(args.file, std::path::PathBuf::from("hello.wasm"));
        assert_eq!(args.reference, "localhost:5000/fns/hello:v1");
        assert!(Cli::try_parse_from(["skiff", "push", "hello.wasm"]).is_err());
    }
}
