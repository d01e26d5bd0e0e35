//! [`MockServer`], the handle a test holds (its address, journal, verification, scoped
//! mounts and shutdown). It is built by [`MockServerBuilder`](crate::MockServerBuilder)
//! (`builder.rs`), which puts the state, the listener, the admin API and shutdown together.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;

#[cfg(feature = "admin")]
use crate::admin::AdminHandle;
use crate::journal::Transaction;
use crate::listener::{Listener, Outage};
use crate::mock::Mock;
use crate::shutdown::Shutdown;
use crate::state::State;

/// A running mock ICAP server. Dropping it shuts it down and checks the expectations of
/// its mocks (panicking if one is unmet, unless the thread is already panicking).
#[derive(Debug)]
pub struct MockServer {
    pub(crate) state: Arc<State>,
    pub(crate) listener: Arc<Listener>,
    pub(crate) shutdown: Arc<Shutdown>,
    pub(crate) is_tls: bool,
    pub(crate) addr: SocketAddr,
    pub(crate) ca_pem: Option<String>,
    pub(crate) task: Option<JoinHandle<()>>,
    #[cfg(feature = "admin")]
    pub(crate) admin: Option<AdminHandle>,
}

impl MockServer {
    /// `icap://127.0.0.1:PORT/<first service>` (`icaps://` with TLS).
    pub fn url(&self) -> String {
        self.url_for(&self.state.settings.services[0].name)
    }

    /// The URL of the service `service` (which need not exist: useful for 404 tests).
    pub fn url_for(&self, service: &str) -> String {
        let scheme = if self.is_tls { "icaps" } else { "icap" };
        format!(
            "{scheme}://{}/{}",
            self.addr,
            service.trim_start_matches('/')
        )
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) to trust for a server started with
    /// [`MockServerBuilder::tls_generated`](crate::MockServerBuilder::tls_generated).
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// The admin API address, if enabled. Feature `admin`.
    #[cfg(feature = "admin")]
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.addr)
    }

    /// The current `ISTag` (without quotes); it changes when mocks are mounted or removed.
    pub fn istag(&self) -> String {
        self.state.istag().to_string()
    }

    /// Starts or ends an outage. Takes effect before it returns.
    ///
    /// # Panics
    /// If listening again on the same address fails when an outage ends.
    pub fn set_outage(&self, outage: Outage) {
        self.listener
            .set_outage(outage)
            .expect("listening again after the outage");
    }

    /// The transactions received so far, oldest first. An entry is there from the moment
    /// its head arrived ([`Stage`](crate::Stage)), and shows what was written to the client.
    #[allow(clippy::unused_async)] // async API, as promised to users
    pub async fn journal(&self) -> Vec<Transaction> {
        self.state.journal()
    }

    /// The journal without the `OPTIONS` requests that clients send on their own: the
    /// scans (`RESPMOD`, `REQMOD`), oldest first.
    #[allow(clippy::unused_async)] // async API, as promised to users
    pub async fn journal_scans(&self) -> Vec<Transaction> {
        let mut j = self.state.journal();
        j.retain(|t| !t.is_options());
        j
    }

    /// The bytes the journal's entries hold now (at most the
    /// [`journal_bytes`](crate::MockServerBuilder::journal_bytes) budget, or one entry if that
    /// alone is larger).
    pub fn journal_bytes(&self) -> usize {
        self.state.journal_bytes()
    }

    /// Alias of [`MockServer::journal`] in wiremock's words.
    #[allow(clippy::unused_async)] // async API, as promised to users
    pub async fn received_requests(&self) -> Vec<Transaction> {
        self.state.journal()
    }

    /// Empties the journal.
    #[allow(clippy::unused_async)] // async API, as promised to users
    pub async fn clear_journal(&self) {
        self.state.clear_journal();
    }

    /// Removes every mock and empties the journal.
    #[allow(clippy::unused_async)] // async API, as promised to users
    pub async fn reset(&self) {
        self.state.remove_rules(|_| false);
        self.state.clear_journal();
    }

    /// Checks the expectations of the mounted mocks.
    ///
    /// # Panics
    /// With a message naming each unmet expectation, then listing the requests the
    /// journal holds, grouped by the mock that answered them or `unmatched`.
    #[allow(clippy::unused_async)] // async API, as promised to users
    pub async fn verify(&self) {
        if let Some(msg) = self.state.unmet_report(None) {
            panic!("{msg}");
        }
    }

    /// Stops accepting, lets connections finish their current transaction (up to 5 s),
    /// and waits for that. Expectations are still checked when the value drops.
    pub async fn shutdown(mut self) {
        self.begin_shutdown();
        #[cfg(feature = "admin")]
        if let Some(a) = self.admin.take() {
            a.stop();
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl MockServer {
    fn begin_shutdown(&self) {
        self.shutdown.begin();
        self.listener.close();
    }
}

impl Mock {
    /// Adds the mock to `server` for the server's lifetime. Among the mocks that match a
    /// request, the lowest [priority](Mock::with_priority) number applies, then the one
    /// mounted first (as in wiremock).
    #[allow(clippy::unused_async)] // async like wiremock's, so rules may later sync with I/O
    pub async fn mount(self, server: &MockServer) {
        server.state.add_rule(self);
    }

    /// Adds the mock to `server` until the returned guard is dropped (as wiremock's
    /// `mount_as_scoped`). Dropping the guard unmounts the mock and checks its
    /// expectation, panicking with the same message as [`MockServer::verify`] when it is
    /// unmet (unless the thread is already panicking).
    ///
    /// ```
    /// use icap_mock_server::{matchers::any, Mock, MockServer, Reply};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = MockServer::start().await;
    /// {
    ///     let _guard = Mock::given(any())
    ///         .respond_with(Reply::infected("Scoped.Test"))
    ///         .expect(0)
    ///         .mount_as_scoped(&server)
    ///         .await;
    ///     // Only here does the mock answer.
    /// }
    /// assert!(server.journal().await.is_empty());
    /// # }
    /// ```
    #[allow(clippy::unused_async)] // async like wiremock's
    pub async fn mount_as_scoped(self, server: &MockServer) -> MockGuard {
        let id = server.state.add_rule(self);
        MockGuard {
            state: server.state.clone(),
            id,
        }
    }
}

/// A mock mounted by [`Mock::mount_as_scoped`]: unmounted, and its expectation checked,
/// when dropped.
#[derive(Debug)]
#[must_use = "dropping the guard unmounts the mock at once"]
pub struct MockGuard {
    state: Arc<State>,
    id: u64,
}

impl MockGuard {
    /// The journal entries this mock answered, oldest first.
    #[allow(clippy::unused_async)] // async like MockServer::journal
    pub async fn received_requests(&self) -> Vec<Transaction> {
        let mut j = self.state.journal();
        j.retain(|t| t.rule == Some(self.id));
        j
    }
}

impl Drop for MockGuard {
    fn drop(&mut self) {
        let report = self.state.unmet_report(Some(self.id));
        self.state.remove_rule(self.id);
        if !std::thread::panicking()
            && let Some(msg) = report
        {
            panic!("{msg}");
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.begin_shutdown();
        #[cfg(feature = "admin")]
        if let Some(a) = self.admin.take() {
            a.stop();
        }
        if !std::thread::panicking()
            && let Some(msg) = self.state.unmet_report(None)
        {
            panic!("{msg}");
        }
    }
}
