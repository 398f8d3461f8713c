//! `loupe admin`: the instance operator's commands, above every
//! organization. They read the same configuration as `loupe-server` and act
//! on its metadata store directly; the HTTP API offers none of them, since
//! no organization's admin may act on another organization.

use std::io::Read;
use std::path::Path;

use loupe_services::config::{self, ConfigError, field_names};
use loupe_services::meta::MetadataStore;
use loupe_services::{DeploymentConfig, Organization, Services, ServicesConfig, Setup};
use secrecy::SecretString;

use crate::args::{AdminArgs, AdminCommand, OrgCommand, OrgCreateArgs};
use crate::failure::Failure;
use crate::output;

pub(crate) async fn run(args: AdminArgs) -> Result<(), Failure> {
    let config = configuration(&args).map_err(|e| Failure::Usage(e.to_string()))?;
    let store = MetadataStore::open_with(&config.metadata_url(), config.migrate).await?;
    let services = Services::new(
        store.clone(),
        loupe_connectors::registry(),
        ServicesConfig {
            login_backoff_threshold: config.login_backoff_threshold,
            login_backoff_max: config.login_backoff_max,
            ..ServicesConfig::default()
        },
        None,
    )?;
    let AdminCommand::Org(command) = args.command;
    let outcome = org(&services, command).await;
    store.close().await;
    outcome
}

async fn org(services: &Services, command: OrgCommand) -> Result<(), Failure> {
    let orgs = &services.organizations;
    match command {
        OrgCommand::Create(args) => {
            let setup = setup(&args)?;
            let (org, admin) = orgs.create_with_admin(setup).await?;
            eprintln!(
                "loupe: created organization {:?} with its admin {}; they sign in with the organization {:?}",
                org.name, admin.email, org.slug
            );
            output::print(&row(&org))
        }
        OrgCommand::List => {
            let mut text = String::from("ID\tSLUG\tSTATUS\tNAME\n");
            for org in orgs.list_all().await? {
                text.push_str(&row(&org));
            }
            output::print(&text)
        }
        OrgCommand::Disable { org } => {
            let org = orgs.set_disabled(&org, true).await?;
            output::print(&row(&org))
        }
        OrgCommand::Enable { org } => {
            let org = orgs.set_disabled(&org, false).await?;
            output::print(&row(&org))
        }
    }
}

/// One organization as a tab-separated line, for `cut` and `awk`.
fn row(org: &Organization) -> String {
    let status = if org.disabled { "disabled" } else { "active" };
    format!("{}\t{}\t{status}\t{}\n", org.id, org.slug, org.name)
}

fn setup(args: &OrgCreateArgs) -> Result<Setup, Failure> {
    let password = read_password(&args.admin_password_file)?;
    let admin_name = args.admin_name.clone().unwrap_or_else(|| {
        args.admin_email
            .split('@')
            .next()
            .unwrap_or("admin")
            .to_owned()
    });
    Ok(Setup {
        org_name: args.name.clone(),
        admin_email: args.admin_email.clone(),
        admin_name,
        admin_password: password,
    })
}

/// The password in `path` (`-`: standard input), without the line end an
/// editor or `echo` adds; other spaces belong to the password.
fn read_password(path: &Path) -> Result<SecretString, Failure> {
    let mut text = String::new();
    let read = if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text))
    };
    read.map_err(|e| {
        Failure::Usage(format!(
            "cannot read the admin password from {}: {e}",
            path.display()
        ))
    })?;
    let password = text.strip_suffix('\n').unwrap_or(&text);
    let password = password.strip_suffix('\r').unwrap_or(password);
    Ok(SecretString::from(password.to_owned()))
}

/// Defaults < `--config` file < `LOUPE_*` variables < options. The file may
/// be the server's, with its own keys (`listen`, `cors`, …) beside the
/// deployment's: those are the server's business and are not read here.
fn configuration(args: &AdminArgs) -> Result<DeploymentConfig, ConfigError> {
    let keys = field_names::<DeploymentConfig>();
    let sources = config::sources(DeploymentConfig::default(), args.config.as_deref(), keys);
    let mut config: DeploymentConfig = sources
        .extract()
        .map_err(|e| ConfigError(format!("invalid configuration: {e}")))?;
    if let Some(url) = &args.metadata_url {
        config.metadata_url = Some(url.clone());
    }
    config.check()?;
    Ok(config)
}
