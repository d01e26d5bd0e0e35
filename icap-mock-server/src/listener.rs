//! The listening socket, its outage switch and the accept loop.
//!
//! An outage either closes the socket (`Refuse`: connections are refused) or keeps it and
//! closes each accepted connection at once; ending it listens again on the same address.
//! The accept loop wakes when the socket changes, so a switch takes effect before
//! [`Listener::set_outage`] returns.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Notify;

use crate::connection::Connection;
use crate::shutdown::Shutdown;
use crate::state::{State, lock};

/// Whether and how the server is reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outage {
    /// Normal service.
    #[default]
    None,
    /// Stop listening: connections are refused until the outage ends.
    Refuse,
    /// Accept connections and close them at once, before reading anything.
    AcceptAndClose,
}

impl Outage {
    /// The name the admin API and the CLI use (`none`, `refuse`, `accept_and_close`).
    pub fn name(self) -> &'static str {
        match self {
            Outage::None => "none",
            Outage::Refuse => "refuse",
            Outage::AcceptAndClose => "accept_and_close",
        }
    }
}

/// The listening socket (absent during a `Refuse` outage and after shutdown) and the
/// outage switch.
#[derive(Debug)]
pub(crate) struct Listener {
    socket: Mutex<Option<TcpListener>>,
    changed: Notify,
    addr: SocketAddr,
    outage: AtomicU8,
    shutdown: Arc<Shutdown>,
}

/// Listens on `addr` with `SO_REUSEADDR`, so an outage can end on the same port.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl Listener {
    /// Listens on `addr`; the listener stops for good once `shutdown` begins and
    /// [`close`](Self::close) is called.
    pub(crate) fn bind(addr: SocketAddr, shutdown: Arc<Shutdown>) -> std::io::Result<Self> {
        let socket = bind(addr)?;
        let addr = socket.local_addr()?;
        Ok(Listener {
            socket: Mutex::new(Some(socket)),
            changed: Notify::new(),
            addr,
            outage: AtomicU8::new(0),
            shutdown,
        })
    }

    /// The address listened on (the real port when bound to port 0).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The current outage mode.
    pub(crate) fn outage(&self) -> Outage {
        match self.outage.load(Ordering::Acquire) {
            1 => Outage::Refuse,
            2 => Outage::AcceptAndClose,
            _ => Outage::None,
        }
    }

    /// Switches the outage mode; `Refuse` closes the listening socket before returning,
    /// and ending it listens again on the same address before returning.
    pub(crate) fn set_outage(&self, outage: Outage) -> std::io::Result<()> {
        let mut l = lock(&self.socket);
        self.outage.store(
            match outage {
                Outage::None => 0,
                Outage::Refuse => 1,
                Outage::AcceptAndClose => 2,
            },
            Ordering::Release,
        );
        match outage {
            Outage::Refuse => *l = None,
            Outage::None | Outage::AcceptAndClose => {
                if l.is_none() && !self.shutdown.is_begun() {
                    *l = Some(bind(self.addr)?);
                }
            }
        }
        drop(l);
        self.changed.notify_waiters();
        Ok(())
    }

    /// Closes the socket for good (shutdown) and wakes the accept loop.
    pub(crate) fn close(&self) {
        *lock(&self.socket) = None;
        self.changed.notify_waiters();
    }
}

/// Accepts connections until shutdown, each served on its own task (through TLS when
/// `tls` is set); then gives the open ones up to 5 s to finish their transaction.
pub(crate) async fn accept_loop(
    listener: Arc<Listener>,
    state: Arc<State>,
    shutdown: Arc<Shutdown>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let changed = listener.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if shutdown.is_begun() {
            break;
        }
        let accepted = std::future::poll_fn(|cx| {
            if changed.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            let l = lock(&listener.socket);
            match l.as_ref() {
                Some(l) => l.poll_accept(cx).map(Some),
                None => Poll::Pending,
            }
        })
        .await;
        // Reap finished connections so the set does not grow.
        while conns.try_join_next().is_some() {}
        let Some(res) = accepted else { continue };
        let (stream, peer) = match res {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if listener.outage() == Outage::AcceptAndClose {
            tracing::debug!(%peer, "outage: accepted and closed");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        conns.spawn(async move {
            match tls {
                None => {
                    Connection::new(stream, Some(peer), state, shutdown)
                        .run()
                        .await;
                }
                Some(acceptor) => {
                    let hs = tokio::time::timeout(
                        state.settings.header_read_timeout,
                        acceptor.accept(stream),
                    )
                    .await;
                    match hs {
                        Ok(Ok(tls)) => {
                            Connection::new(tls, Some(peer), state, shutdown)
                                .run()
                                .await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    // Graceful: let connections finish their current transaction.
    let grace = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(grace);
    loop {
        tokio::select! {
            r = conns.join_next() => if r.is_none() { break },
            () = &mut grace => { conns.abort_all(); break }
        }
    }
}
