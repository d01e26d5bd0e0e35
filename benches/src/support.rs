//! What the scan and proxy benches share: their runtimes and their bodies.

use bytes::Bytes;
use tokio::runtime::Runtime;

/// A one-worker multi-thread runtime named `name`: the server side and the client side
/// each get one, so each has one of the machine's two cores.
///
/// # Panics
/// If the runtime cannot be built.
pub fn runtime(name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// `len` bytes of clean content (it never contains the EICAR string).
pub fn body(len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| b"abcdefghijklmnop"[i % 16])
            .collect::<Vec<u8>>(),
    )
}
