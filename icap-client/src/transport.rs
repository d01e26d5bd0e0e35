//! Opening connections: TCP with an optional local bind address, then TLS for `icaps://`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::Keepalive;
use crate::config::Timeouts;
use crate::error::{Error, ErrorKind, Phase, escaped, tls_error};

/// A connected byte stream to an ICAP server: plain TCP or TLS over TCP.
#[derive(Debug)]
pub(crate) enum Transport {
    /// `icap://`.
    Tcp(TcpStream),
    /// `icaps://`.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    /// The negotiated TLS version and cipher suite, for diagnosis.
    pub(crate) fn tls_info(&self) -> Option<(String, String)> {
        match self {
            Transport::Tcp(_) => None,
            Transport::Tls(s) => {
                let (_, c) = s.get_ref();
                Some((
                    c.protocol_version()
                        .map(|v| format!("{v:?}"))
                        .unwrap_or_default(),
                    c.negotiated_cipher_suite()
                        .map(|s| format!("{:?}", s.suite()))
                        .unwrap_or_default(),
                ))
            }
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Tcp(s) => s.is_write_vectored(),
            Transport::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
    pub(crate) bind: Option<IpAddr>,
}

/// Connects with the connect and TLS handshake timeouts.
pub(crate) async fn connect(ep: &Endpoint, t: &Timeouts) -> Result<Transport, Error> {
    let tcp = tokio::time::timeout(t.connect, connect_tcp(ep))
        .await
        .map_err(|_| Error::timeout(Phase::Connect))??;
    tcp.set_nodelay(true)
        .map_err(|e| Error::new(ErrorKind::Connect, "set TCP_NODELAY").with_source(e))?;
    if let Some(k) = t.keepalive {
        set_keepalive(&tcp, k)
            .map_err(|e| Error::new(ErrorKind::Connect, "set TCP keepalive").with_source(e))?;
    }
    let Some((config, sni)) = &ep.tls else {
        return Ok(Transport::Tcp(tcp));
    };
    let name = sni.as_deref().unwrap_or(&ep.host);
    let server_name = ServerName::try_from(name.to_owned())
        .map_err(|e| Error::config(format!("invalid TLS server name {}: {e}", escaped(name))))?;
    let client_cert = config.client_auth_cert_resolver.has_certs();
    let tls = tokio::time::timeout(
        t.tls_handshake,
        TlsConnector::from(config.clone()).connect(server_name, tcp),
    )
    .await
    .map_err(|_| Error::timeout(Phase::TlsHandshake))?
    .map_err(|e| tls_error(e, Some(client_cert)))?;
    Ok(Transport::Tls(Box::new(tls)))
}

async fn connect_tcp(ep: &Endpoint) -> Result<TcpStream, Error> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((ep.host.as_str(), ep.port))
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Connect,
                format!("cannot resolve {}", escaped(&ep.host)),
            )
            .with_source(e)
        })?
        .collect();
    let mut last = None;
    for addr in addrs {
        // A bind address of the wrong family cannot reach this address; try the next.
        if let Some(b) = ep.bind
            && b.is_ipv4() != addr.is_ipv4()
        {
            continue;
        }
        match connect_addr(addr, ep.bind).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        Error::new(
            ErrorKind::Connect,
            format!("no usable address for {}:{}", escaped(&ep.host), ep.port),
        )
    }))
}

/// Turns TCP keepalive on, so that a half-open connection is noticed by the kernel's
/// probes rather than only by the idle timeout.
fn set_keepalive(tcp: &TcpStream, k: Keepalive) -> io::Result<()> {
    let params = socket2::TcpKeepalive::new()
        .with_time(k.idle)
        .with_interval(k.interval);
    socket2::SockRef::from(tcp).set_tcp_keepalive(&params)
}

async fn connect_addr(addr: SocketAddr, bind: Option<IpAddr>) -> Result<TcpStream, Error> {
    let map = |what: &str, e: io::Error| {
        Error::new(ErrorKind::Connect, format!("{what} {addr}")).with_source(e)
    };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| map("socket for", e))?;
    if let Some(ip) = bind {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| map(&format!("bind {ip} to reach"), e))?;
    }
    socket.connect(addr).await.map_err(|e| map("connect", e))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn connected(t: &Timeouts) -> TcpStream {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ep = Endpoint {
            host: "127.0.0.1".into(),
            port: l.local_addr().unwrap().port(),
            tls: None,
            bind: None,
        };
        let (conn, accepted) = tokio::join!(connect(&ep, t), l.accept());
        accepted.unwrap();
        match conn.unwrap() {
            Transport::Tcp(s) => s,
            Transport::Tls(_) => unreachable!("plain endpoint"),
        }
    }

    #[tokio::test]
    async fn keepalive_is_on_by_default_with_its_times() {
        let s = connected(&Timeouts::default()).await;
        let r = socket2::SockRef::from(&s);
        assert!(r.keepalive().unwrap());
        assert_eq!(r.tcp_keepalive_time().unwrap(), Duration::from_secs(30));
        assert_eq!(r.tcp_keepalive_interval().unwrap(), Duration::from_secs(10));
        assert!(s.nodelay().unwrap());
    }

    #[tokio::test]
    async fn keepalive_times_and_off() {
        let t = Timeouts::default().with_keepalive(Some(Keepalive::new(
            Duration::from_secs(7),
            Duration::from_secs(3),
        )));
        let s = connected(&t).await;
        let r = socket2::SockRef::from(&s);
        assert!(r.keepalive().unwrap());
        assert_eq!(r.tcp_keepalive_time().unwrap(), Duration::from_secs(7));
        assert_eq!(r.tcp_keepalive_interval().unwrap(), Duration::from_secs(3));
        let s = connected(&Timeouts::default().with_keepalive(None)).await;
        assert!(!socket2::SockRef::from(&s).keepalive().unwrap());
    }
}
