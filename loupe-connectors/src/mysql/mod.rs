//! The `mysql` datasource for MySQL 8 and MariaDB 10.11+, on mysql_async.
//!
//! Statements are prepared and run with bound values over the binary
//! protocol; rows are decoded into Arrow builders ([`types`]). Limits are
//! enforced in the server (`max_execution_time` or `max_statement_time`, a
//! READ ONLY transaction) and by the client (a deadline, `KILL QUERY` on a
//! separate connection when the stream is dropped). LOCAL INFILE is never
//! served: no handler is installed, so a server's request for a client
//! file is refused.

mod config;
mod error;
mod execute;
mod introspect;
mod types;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use async_trait::async_trait;
use loupe_core::{
    CatalogInfo, Datasource, DatasourceFactory, DatasourceOptions, Dialect, Error, Limits,
    OptionSpec, Result, SendableBatchStream, Statement, codes,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, SslOpts};
use secrecy::ExposeSecret;
use tokio::sync::OnceCell;

use config::{KIND, MysqlConfig, SslMode};
use error::Context;
use execute::{Flavor, Session};

pub use types::MYSQL_TYPE_KEY;

/// Builds [`MysqlDatasource`]s.
#[derive(Debug, Default, Clone, Copy)]
pub struct MysqlFactory;

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
        Ok(Arc::new(MysqlDatasource::new(MysqlConfig::from_options(
            options,
        )?)?))
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
    fn new(config: MysqlConfig) -> Result<Self> {
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
            SslMode::VerifyCa => Some(roots(&config).with_danger_skip_domain_validation(true)),
            SslMode::VerifyIdentity => Some(roots(&config)),
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

    /// Learns the server's flavor on the first connection.
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
        Ok(session)
    }
}

fn roots(config: &MysqlConfig) -> SslOpts {
    match &config.mysql.ssl_ca {
        Some(path) => SslOpts::default()
            .with_root_certs(vec![path.clone().into()])
            .with_disable_built_in_roots(true),
        None => SslOpts::default(),
    }
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
}
