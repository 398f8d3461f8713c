//! What every request shares: the core services, the result store, the
//! configuration and the rate limiters.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use loupe_services::Deployment;
use poem::Request;

use crate::config::Config;
use crate::problem::ApiError;

/// The server's shared state.
pub struct AppState {
    /// The application: services (every business rule), the result store
    /// and the deployment's configuration.
    pub deployment: Deployment,
    /// The configuration in effect.
    pub config: Arc<Config>,
    /// Rate limiters.
    pub limits: RateLimits,
    /// The first-start set-up token, while no organization exists.
    pub setup: crate::setup_token::SetupGate,
    /// Set when shutdown begins: readiness fails from then on.
    pub shutting_down: AtomicBool,
    /// Renders `/metrics`.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The services, which hold every rule.
    pub fn services(&self) -> &loupe_services::Services {
        &self.deployment.services
    }

    /// The client's address: the peer, or, when the server is configured
    /// to trust its proxy, the last `X-Forwarded-For` entry (the one that
    /// proxy added; earlier entries come from the client and can be made
    /// up to dodge rate limits).
    pub fn client_ip(&self, req: &Request) -> Option<String> {
        if self.config.server.trust_forwarded_for
            && let Some(last) = req
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse::<IpAddr>().ok())
        {
            return Some(last.to_string());
        }
        req.remote_addr()
            .as_socket_addr()
            .map(|a| a.ip().to_string())
    }

    /// Checks the sign-in rate limit of the request's client, and returns
    /// the client's address (see [`Self::client_ip`]).
    pub(crate) fn check_client(&self, req: &Request) -> Result<Option<String>, ApiError> {
        let ip = self.client_ip(req);
        self.limits.check_ip(ip.as_deref())?;
        Ok(ip)
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

/// Token buckets per client address (sign-in endpoints) and per user or
/// API key (everything else).
pub struct RateLimits {
    auth: DefaultKeyedRateLimiter<String>,
    api: DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimits(..)")
    }
}

impl RateLimits {
    /// Limiters for the configured rates.
    pub fn new(config: &crate::config::RateLimitConfig) -> Self {
        let nz = |n: u32| NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            auth: RateLimiter::keyed(Quota::per_minute(nz(config.auth_per_minute))),
            api: RateLimiter::keyed(
                Quota::per_second(nz(config.api_per_second))
                    .allow_burst(nz(config.api_burst.max(config.api_per_second))),
            ),
        }
    }

    /// Checks the sign-in limit of a client address.
    pub fn check_ip(&self, ip: Option<&str>) -> Result<(), ApiError> {
        check(&self.auth, ip.unwrap_or("unknown"))
    }

    /// Checks the limit of a user (`user:<id>`) or key (`key:<id>`).
    pub fn check_caller(&self, who: &str) -> Result<(), ApiError> {
        check(&self.api, who)
    }

    /// Forgets idle keys; called periodically so memory stays bounded.
    pub fn retain_recent(&self) {
        self.auth.retain_recent();
        self.api.retain_recent();
    }
}

fn check(limiter: &DefaultKeyedRateLimiter<String>, key: &str) -> Result<(), ApiError> {
    limiter.check_key(&key.to_owned()).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::too_many(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    })
}
