//! The `mysql` datasource for MySQL 8 and MariaDB 10.11+, on mysql_async.
//!
//! Statements are prepared and run with bound values over the binary
//! protocol; rows are decoded into Arrow builders ([`types`]). Limits are
//! enforced in the server (`max_execution_time` or `max_statement_time`, a
//! READ ONLY transaction) and by the client (a deadline, `KILL QUERY` on a
//! separate connection when the stream is dropped). LOCAL INFILE is never
//! served: no handler is installed, so a server's request for a client
//! file is refused.
//!
//! A restricted statement (row-level security) is refused before it
//! reaches the server: the connector enforces no restriction.
//!
//! Every new connection first reads what its user may do ([`privileges`]):
//! a user that may do more than read is refused unless the datasource says
//! `allow_privileged_role`.

mod config;
mod error;
mod execute;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing;
mod introspect;
mod privileges;
mod types;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use loupe_core::{
    CatalogInfo, Datasource, DatasourceFactory, DatasourceOptions, Dialect, Error, Limits,
    OptionSpec, PoolStatus, Result, SendableBatchStream, Statement, codes,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, SslOpts};
use secrecy::ExposeSecret;
use tokio::sync::OnceCell;

use crate::remote::certificate_files::CertificateDirs;
use crate::remote::server_errors;
use config::{KIND, MysqlConfig, SslMode};
use error::Context;
use execute::{Flavor, Session};

pub use types::MYSQL_TYPE_KEY;

/// Builds [`MysqlDatasource`]s. [`MysqlFactory::default`] reads an
/// `ssl_ca` anywhere, as befits a local tool (still only a regular file of
/// at most 1 MiB); a host that lets others define datasources confines it
/// with [`MysqlFactory::certificates_within`].
#[derive(Debug, Default, Clone)]
pub struct MysqlFactory {
    certificates: CertificateDirs,
}

impl MysqlFactory {
    /// A factory whose datasources may only name an `ssl_ca` inside one of
    /// `dirs` (symbolic links resolved first). With no directories, no
    /// `ssl_ca` can be given; the built-in roots still serve `verify-ca`
    /// and `verify-identity`.
    pub fn certificates_within(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        Self {
            certificates: CertificateDirs::within(dirs),
        }
    }
}

impl DatasourceFactory for MysqlFactory {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn description(&self) -> &'static str {
        "MySQL 8 and MariaDB 10.11+, over the binary protocol into Arrow"
    }

    fn dialect(&self) -> Dialect {
        Dialect::MySql
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
        Ok(Arc::new(MysqlDatasource::new(
            MysqlConfig::from_options(options)?,
            &self.certificates,
        )?))
    }
}

/// A MySQL or MariaDB server, reached through a bounded pool.
pub struct MysqlDatasource {
    config: MysqlConfig,
    /// With TLS as configured; for `preferred`, the TLS attempt.
    pool: Pool,
    /// For `preferred` against a server without TLS: plain connections.
    plain: Option<Pool>,
    /// Set once the first connection showed whether TLS is offered.
    use_plain: OnceCell<bool>,
    kill_opts: Opts,
    plain_kill_opts: Opts,
    flavor: OnceCell<Flavor>,
    in_use: Arc<AtomicUsize>,
    address: Arc<str>,
    /// Ids of the connections whose user was found fit, so that each
    /// connection is asked once. Server ids are not reused while a
    /// connection lives; the set is emptied when it outgrows the pools.
    checked: Mutex<HashSet<u32>>,
}

impl std::fmt::Debug for MysqlDatasource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlDatasource")
            .field("address", &self.address)
            .field("database", &self.config.mysql.database)
            .field("user", &self.config.server.user)
            .field("read_only", &self.config.server.read_only)
            .finish_non_exhaustive()
    }
}

impl MysqlDatasource {
    fn new(config: MysqlConfig, certificates: &CertificateDirs) -> Result<Self> {
        // mysql_async builds its TLS settings with rustls's process-wide
        // provider, which rustls cannot choose when the program holds two
        // (an embedder's aws-lc-rs beside our ring): make ring the default
        // unless the program already chose one.
        let server = &config.server;
        if config.mysql.ssl_mode != SslMode::Disabled {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let ssl = match config.mysql.ssl_mode {
            SslMode::Disabled => None,
            SslMode::Preferred | SslMode::Required => Some(
                SslOpts::default()
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true),
            ),
            SslMode::VerifyCa => {
                Some(roots(&config, certificates)?.with_danger_skip_domain_validation(true))
            }
            SslMode::VerifyIdentity => Some(roots(&config, certificates)?),
        };
        let pool_opts =
            PoolOpts::default()
                .with_constraints(PoolConstraints::new(0, server.pool_size).ok_or_else(|| {
                    Error::config("mysql datasource: pool_size must be at least 1")
                })?)
                .with_inactive_connection_ttl(server.idle_timeout)
                .with_ttl_check_interval(
                    server
                        .idle_timeout
                        .clamp(Duration::from_secs(1), Duration::from_secs(30)),
                )
                .with_reset_connection(true);
        let mut setup = vec![
            // TIMESTAMP values come back in UTC.
            "SET time_zone = '+00:00'".to_owned(),
            // Literals end where the template scanner thinks they end.
            "SET SESSION sql_mode = REPLACE(REPLACE(@@SESSION.sql_mode, 'ANSI_QUOTES', ''), 'NO_BACKSLASH_ESCAPES', '')".to_owned(),
        ];
        if server.read_only {
            setup.push("SET SESSION TRANSACTION READ ONLY".to_owned());
        }
        let base = OptsBuilder::default()
            .ip_or_hostname(server.host.clone())
            .tcp_port(server.port)
            .user(Some(server.user.clone()))
            .pass(
                server
                    .password
                    .as_ref()
                    .map(|p| p.expose_secret().to_owned()),
            )
            .db_name(config.mysql.database.clone())
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .setup(setup);
        let kill_opts: Opts = base.clone().ssl_opts(ssl.clone()).into();
        let plain_kill_opts: Opts = base.clone().ssl_opts(None::<SslOpts>).into();
        let pool = Pool::new(base.clone().ssl_opts(ssl).pool_opts(pool_opts.clone()));
        let plain = (config.mysql.ssl_mode == SslMode::Preferred)
            .then(|| Pool::new(base.ssl_opts(None::<SslOpts>).pool_opts(pool_opts)));
        Ok(Self {
            address: server.address().into(),
            config,
            pool,
            plain,
            use_plain: OnceCell::new(),
            kill_opts,
            plain_kill_opts,
            flavor: OnceCell::new(),
            in_use: Arc::new(AtomicUsize::new(0)),
            checked: Mutex::new(HashSet::new()),
        })
    }

    fn context(&self, timeout: Option<Duration>) -> Context {
        Context {
            server: "MySQL",
            address: self.address.clone(),
            database: self
                .config
                .mysql
                .database
                .clone()
                .unwrap_or_default()
                .into(),
            user: self.config.server.user.as_str().into(),
            timeout,
        }
    }

    async fn checkout(&self, cx: &Context) -> Result<Session> {
        let plain = match (&self.plain, self.use_plain.get()) {
            (None, _) => false,
            (Some(_), Some(decided)) => *decided,
            (Some(_), None) => {
                // First use of `preferred`: try TLS, and remember whether the
                // server offered it.
                let first = execute::checkout(
                    &self.pool,
                    &self.config,
                    self.kill_opts.clone(),
                    self.in_use.clone(),
                    cx,
                )
                .await;
                match first {
                    Ok(session) => {
                        let _ = self.use_plain.set(false);
                        return self.ready(session, cx).await;
                    }
                    Err(e)
                        if e.catalogue_code() == codes::DATASOURCE_TLS_FAILED
                            || e.to_string().contains("SSL") =>
                    {
                        let _ = self.use_plain.set(true);
                        true
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let (pool, opts) = match (&self.plain, plain) {
            (Some(p), true) => (p, self.plain_kill_opts.clone()),
            _ => (&self.pool, self.kill_opts.clone()),
        };
        let session = execute::checkout(pool, &self.config, opts, self.in_use.clone(), cx).await?;
        self.ready(session, cx).await
    }

    /// Learns the server's flavor on the first connection, and whether the
    /// user is fit for a datasource on each new one.
    async fn ready(&self, mut session: Session, cx: &Context) -> Result<Session> {
        if self.flavor.get().is_none() {
            let version: Option<String> = session
                .conn()?
                .query_first("SELECT VERSION()")
                .await
                .map_err(|e| error::statement(e, cx))?;
            let flavor = if version.is_some_and(|v| v.contains("MariaDB")) {
                Flavor::MariaDb
            } else {
                Flavor::MySql
            };
            let _ = self.flavor.set(flavor);
        }
        if self.config.server.allow_privileged_role || self.was_checked(session.id()) {
            return Ok(session);
        }
        let flavor = self.flavor.get().copied().unwrap_or(Flavor::MySql);
        let found = privileges::found(session.conn()?, flavor, self.config.server.read_only)
            .await
            .map_err(|e| error::statement(e, cx))?;
        if !found.is_empty() {
            // The connection is in a known state: back to the pool, to be
            // asked again by whoever gets it next.
            session.release();
            return Err(server_errors::privileged_role(cx, &found));
        }
        self.mark_checked(session.id());
        Ok(session)
    }

    fn was_checked(&self, id: u32) -> bool {
        self.checked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&id)
    }

    fn mark_checked(&self, id: u32) {
        let mut checked = self
            .checked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Two pools (TLS and plain) and closed connections' ids: clearing
        // only costs a query per live connection.
        if checked.len() >= 4 * self.config.server.pool_size {
            checked.clear();
        }
        checked.insert(id);
    }
}

/// Trusts the roots of `ssl_ca`, read now under the factory's rules for
/// certificate files and handed to the driver as bytes (the driver would
/// read a path again at every connection), or the built-in roots.
fn roots(config: &MysqlConfig, certificates: &CertificateDirs) -> Result<SslOpts> {
    Ok(match &config.mysql.ssl_ca {
        Some(path) => SslOpts::default()
            .with_root_certs(
                certificates
                    .trusted_roots(KIND, "ssl_ca", path)?
                    .into_iter()
                    .map(|der| der.to_vec().into())
                    .collect(),
            )
            .with_disable_built_in_roots(true),
        None => SslOpts::default(),
    })
}

#[async_trait]
impl Datasource for MysqlDatasource {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn dialect(&self) -> Dialect {
        Dialect::MySql
    }

    async fn execute(&self, statement: &Statement, limits: &Limits) -> Result<SendableBatchStream> {
        statement.expect_dialect(Dialect::MySql)?;
        // MySQL and MariaDB have no row-level security to feed settings
        // to, and row filters would need rewriting the SQL.
        statement
            .restrictions
            .require_supported(KIND, false, false)?;
        let deadline = limits.deadline();
        let timeout = limits.timeout.or(self.config.server.statement_timeout);
        let cx = self.context(timeout);
        let (session, plan) = limits
            .within(deadline, async {
                let mut session = self.checkout(&cx).await?;
                let flavor = self.flavor.get().copied().unwrap_or(Flavor::MySql);
                let plan =
                    execute::prepare(&mut session, statement, &self.config, flavor, timeout, &cx)
                        .await?;
                Ok((session, plan))
            })
            .await?;
        Ok(execute::stream(
            session,
            plan,
            statement,
            &self.config,
            limits,
            deadline,
            cx,
        ))
    }

    async fn introspect(&self) -> Result<CatalogInfo> {
        let cx = self.context(None);
        let mut session = self.checkout(&cx).await?;
        let catalog =
            introspect::catalog(&mut session, self.config.mysql.tinyint1_as_boolean, &cx).await?;
        session.release();
        Ok(catalog)
    }

    async fn ping(&self) -> Result<()> {
        let cx = self.context(None);
        let mut session = self.checkout(&cx).await?;
        session
            .conn()?
            .ping()
            .await
            .map_err(|e| error::statement(e, &cx))?;
        session.release();
        Ok(())
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut status = PoolStatus {
            max: self.config.server.pool_size,
            ..PoolStatus::default()
        };
        // A `preferred` datasource may hold plain connections beside the
        // TLS ones; both count.
        for pool in std::iter::once(&self.pool).chain(&self.plain) {
            let metrics = pool.metrics();
            status.open += metrics.connection_count.load(Relaxed);
            status.in_use += metrics.connections_in_use.load(Relaxed);
            status.waiting += metrics.active_wait_requests.load(Relaxed);
        }
        Some(status)
    }
}
