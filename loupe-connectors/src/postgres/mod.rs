//! The `postgres` datasource, on tokio-postgres with a deadpool pool.
//!
//! Rows arrive in PostgreSQL's binary format and are decoded straight into
//! Arrow builders ([`decode`]); [`types`] holds the type table. Limits are
//! enforced in the database (a `statement_timeout` per statement, a READ
//! ONLY transaction) and by the client (a deadline, a cancel request when
//! the stream is dropped). It must never splice a value into SQL, and never
//! leave a connection in the pool in an unknown state.
//!
//! Row-level security is the database's own: a statement's restriction
//! settings are set in its transaction for the policies to read
//! (`current_setting('loupe.user.region', true)`); row filters are
//! refused. The statement runs as the same role in the same transaction,
//! so SQL that calls `set_config` itself can change a setting: policies
//! that must hold against callers who write SQL read the signed form
//! through `loupe_rls.attribute(name)` (the services sign every value;
//! `docs/row-level-security.md`).
//!
//! Every new connection first asks what its role may do ([`privileges`]):
//! a role that may do more than read is refused unless the datasource says
//! `allow_privileged_role`, since a READ ONLY transaction does not hold a
//! superuser back.

mod config;
mod decode;
mod error;
mod execute;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing;
mod introspect;
mod privileges;
mod tls;
mod types;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use loupe_core::{
    CatalogInfo, Datasource, DatasourceFactory, DatasourceOptions, Dialect, Error, Limits,
    OptionSpec, PoolStatus, Result, SendableBatchStream, Statement,
};
use secrecy::ExposeSecret;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::remote::certificate_files::CertificateDirs;
use config::{KIND, PostgresConfig, SslMode};
use error::Context;
use execute::Session;

pub use types::PG_TYPE_KEY;

/// Builds [`PostgresDatasource`]s. [`PostgresFactory::default`] reads an
/// `sslrootcert` anywhere, as befits a local tool (still only a regular
/// file of at most 1 MiB); a host that lets others define datasources
/// confines it with [`PostgresFactory::certificates_within`].
#[derive(Debug, Default, Clone)]
pub struct PostgresFactory {
    certificates: CertificateDirs,
}

impl PostgresFactory {
    /// A factory whose datasources may only name an `sslrootcert` inside
    /// one of `dirs` (symbolic links resolved first). With no
    /// directories, no `sslrootcert` can be given; the system's roots
    /// still serve `verify-ca` and `verify-full`.
    pub fn certificates_within(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        Self {
            certificates: CertificateDirs::within(dirs),
        }
    }
}

impl DatasourceFactory for PostgresFactory {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn description(&self) -> &'static str {
        "PostgreSQL, read over the binary protocol straight into Arrow"
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        config::SCHEMES
    }

    fn options(&self) -> &'static [OptionSpec] {
        &config::OPTIONS
    }

    fn options_from_url(&self, url: &str) -> Result<DatasourceOptions> {
        config::options_from_url(url)
    }

    fn build(&self, options: &DatasourceOptions) -> Result<Arc<dyn Datasource>> {
        Ok(Arc::new(PostgresDatasource::new(
            PostgresConfig::from_options(options)?,
            &self.certificates,
        )?))
    }
}

/// A PostgreSQL database, reached through a bounded pool of connections.
pub struct PostgresDatasource {
    config: PostgresConfig,
    pool: Pool,
    tls: MakeRustlsConnect,
    address: Arc<str>,
}

impl std::fmt::Debug for PostgresDatasource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresDatasource")
            .field("address", &self.address)
            .field("database", &self.config.database())
            .field("user", &self.config.server.user)
            .field("read_only", &self.config.server.read_only)
            .finish_non_exhaustive()
    }
}

impl PostgresDatasource {
    fn new(config: PostgresConfig, certificates: &CertificateDirs) -> Result<Self> {
        let server = &config.server;
        let root_certs = match &config.postgres.sslrootcert {
            Some(path) => Some(certificates.trusted_roots(KIND, "sslrootcert", path)?),
            None => None,
        };
        let tls = tls::connector(config.postgres.sslmode, root_certs)?;
        let mut pg = tokio_postgres::Config::new();
        pg.host(&server.host)
            .port(server.port)
            .user(&server.user)
            .dbname(config.database())
            .application_name("loupe")
            .connect_timeout(server.connect_timeout)
            .keepalives(true)
            .ssl_mode(match config.postgres.sslmode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                    tokio_postgres::config::SslMode::Require
                }
            });
        if let Some(password) = &server.password {
            pg.password(password.expose_secret());
        }
        let manager = Manager::from_config(
            pg,
            tls.clone(),
            ManagerConfig {
                // A connection the server dropped while idle is replaced
                // before anyone uses it.
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let idle = server.idle_timeout;
        let mut pool = Pool::builder(manager)
            .max_size(server.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(server.pool_wait_timeout))
            .create_timeout(Some(server.connect_timeout))
            .recycle_timeout(Some(server.connect_timeout))
            .pre_recycle(Hook::sync_fn(move |_, metrics| {
                if metrics.last_used() > idle {
                    Err(HookError::message("idle longer than idle_timeout"))
                } else {
                    Ok(())
                }
            }));
        if !server.allow_privileged_role {
            pool = pool.post_create(refuse_privileged_roles(server.connect_timeout));
        }
        let pool = pool
            .build()
            .map_err(|e| Error::config(format!("postgres pool: {e}")))?;
        Ok(Self {
            address: server.address().into(),
            config,
            pool,
            tls,
        })
    }

    fn context(&self, timeout: Option<std::time::Duration>) -> Context {
        Context {
            server: "PostgreSQL",
            address: self.address.clone(),
            database: self.config.database().into(),
            user: self.config.server.user.as_str().into(),
            timeout,
        }
    }

    async fn checkout(&self, cx: &Context) -> Result<Session> {
        Session::checkout(&self.pool, &self.config, Some(self.tls.clone()), cx).await
    }
}

/// Asks each new connection what its role may do, before anyone uses it:
/// creating, testing and running on a datasource all connect, so all are
/// refused alike. What was found travels as the hook's message, which
/// [`error::pool`] turns into the refusal.
fn refuse_privileged_roles(timeout: std::time::Duration) -> Hook {
    Hook::async_fn(move |client, _| {
        Box::pin(async move {
            let found = tokio::time::timeout(timeout, privileges::found(client))
                .await
                .map_err(|_| HookError::message(error::ROLE_CHECK_TIMED_OUT))?
                .map_err(HookError::Backend)?;
            if found.is_empty() {
                Ok(())
            } else {
                Err(HookError::message(found.join("; ")))
            }
        })
    })
}

#[async_trait]
impl Datasource for PostgresDatasource {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn execute(&self, statement: &Statement, limits: &Limits) -> Result<SendableBatchStream> {
        statement.expect_dialect(Dialect::Postgres)?;
        // Row filters would need rewriting the SQL; the database's own
        // policies read the settings instead.
        statement
            .restrictions
            .require_supported(KIND, true, false)?;
        let settings = execute::Settings::new(&statement.restrictions.settings)?;
        let deadline = limits.deadline();
        let timeout = limits.timeout.or(self.config.server.statement_timeout);
        let cx = self.context(timeout);
        let (session, plan) = limits
            .within(deadline, async {
                let session = self.checkout(&cx).await?;
                let plan = execute::prepare(&session, statement, &self.config, limits, &cx).await?;
                Ok((session, plan))
            })
            .await?;
        Ok(execute::stream(
            session,
            plan,
            statement,
            settings,
            &self.config,
            limits,
            timeout,
            deadline,
            cx,
        ))
    }

    async fn introspect(&self) -> Result<CatalogInfo> {
        let cx = self.context(None);
        let session = self.checkout(&cx).await?;
        let catalog = introspect::catalog(session.client()?, &cx).await?;
        session.release();
        Ok(catalog)
    }

    async fn ping(&self) -> Result<()> {
        let cx = self.context(None);
        let session = self.checkout(&cx).await?;
        session
            .client()?
            .simple_query("SELECT 1")
            .await
            .map_err(|e| error::statement(e, &cx))?;
        session.release();
        Ok(())
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        let status = self.pool.status();
        Some(PoolStatus {
            open: status.size,
            in_use: status.size.saturating_sub(status.available),
            max: status.max_size,
            waiting: status.waiting,
        })
    }
}
