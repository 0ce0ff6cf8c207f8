//! Binding, serving, and the shutdown that lets requests in flight finish.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, Engines};

// ANCHOR: shutdown
/// A handle on the one shutdown request of the process; cheap to clone, so
/// the server, a relay and a worker can each wait for it.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A handle that is requested when `signal` completes (a task waits for it).
    pub fn on(signal: impl Future<Output = ()> + Send + 'static) -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            signal.await;
            tracing::info!("shutting down: no new connections; finishing requests in flight");
            // No receiver left means nobody is waiting: nothing to tell.
            let _ = tx.send(true);
        });
        Self(rx)
    }

    /// Completes once shutdown is requested.
    pub fn requested(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            // An error means the signal task is gone (the runtime is
            // stopping): that is a shutdown too.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    /// True once shutdown is requested.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// The flag as a watch channel, for code that takes one (a relay's stop).
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.0.clone()
    }
}
// ANCHOR_END: shutdown

// ANCHOR: signal
/// Completes on Ctrl-C (SIGINT) or SIGTERM, what container orchestrators
/// send before they kill a process. The handlers are installed before this
/// returns, so a signal that arrives before the first poll is not lost.
pub fn os_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => tracing::info!("SIGINT received"),
                        _ = term.recv() => tracing::info!("SIGTERM received"),
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    // Without a handler the default action (exit at once)
                    // stays in place; a graceful shutdown cannot happen.
                    tracing::error!(error = %e, "cannot listen for SIGINT/SIGTERM; serving until killed");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C; serving until killed");
            std::future::pending::<()>().await;
        }
    }
}
// ANCHOR_END: signal

/// Why a service could not start listening.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// What the operating system said (in use, not permitted, not local).
    #[source]
    pub source: io::Error,
}

// ANCHOR: service
/// What a chapter's start-up receives: the configuration and the shutdown
/// handle. Nothing is bound yet, so a role that serves no HTTP (a worker)
/// binds nothing; [`Service::serve`] binds and serves.
#[derive(Debug)]
pub struct Service {
    config: Config,
    shutdown: Shutdown,
}

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// Accepting connections failed.
    #[error("serving: {0}")]
    Io(#[from] io::Error),
}

impl Service {
    /// A service whose shutdown is requested when `signal` completes. Call
    /// inside the runtime: a task waits for the signal.
    pub fn new(config: Config, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        Self {
            config,
            shutdown: Shutdown::on(signal),
        }
    }

    /// The engines' URLs.
    pub fn engines(&self) -> &Engines {
        &self.config.engines
    }

    /// The shutdown handle, for work that must stop with the server.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Binds `ADDR`:`PORT`, for a chapter that needs the address before it serves.
    pub async fn bind(self) -> Result<Listening, BindError> {
        let addr = self.config.addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| BindError { addr, source })?;
        Ok(Listening {
            listener,
            shutdown: self.shutdown,
        })
    }

    /// Binds, then serves `router` as [`Listening::serve`] does.
    pub async fn serve(self, router: Router) -> Result<(), ServeError> {
        Ok(self.bind().await?.serve(router).await?)
    }
}

/// A bound listener and the shutdown handle.
#[derive(Debug)]
pub struct Listening {
    listener: TcpListener,
    shutdown: Shutdown,
}

impl Listening {
    /// The address actually bound (the port is known here when `PORT=0`).
    pub fn local_addr(&self) -> SocketAddr {
        // A bound TCP listener always has a local address; fall back to the
        // unspecified one rather than panic on a platform that disagrees.
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves `router` until shutdown is requested, then stops accepting,
    /// lets every request in flight finish, and returns. The chapter's own
    /// drain (flush, stop a relay) goes after this returns: no handler is
    /// left running then.
    pub async fn serve(self, router: Router) -> io::Result<()> {
        let (listener, shutdown) = self.into_parts();
        tracing::info!(addr = %listener.local_addr()?, "serving");
        axum::serve(
            listener,
            // Handlers that want the client's address (a rate limiter) get it.
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.requested())
        .await?;
        tracing::info!("stopped: every request in flight has finished");
        Ok(())
    }

    /// The listener and the shutdown handle, for a chapter whose own `serve`
    /// takes them (the URL shortener's flushes its clicks after the server).
    pub fn into_parts(self) -> (TcpListener, Shutdown) {
        (self.listener, self.shutdown)
    }
}
// ANCHOR_END: service
