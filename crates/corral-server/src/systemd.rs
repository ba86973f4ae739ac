//! systemd's readiness protocol (`Type=notify`): a datagram to the socket
//! in `$NOTIFY_SOCKET`, when systemd started the node with one. Without
//! it, nothing is sent.

use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// Tells systemd `state` (`READY=1`, `STOPPING=1`, `STATUS=...`), if it
/// asked to be told; a failure is logged, never fatal.
pub(crate) fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = notify_to(Path::new(&socket), state) {
        tracing::warn!(error = %e, state, "telling systemd failed");
    }
}

/// Sends `state` to the notify socket at `socket`; a leading `@` names a
/// socket in the abstract namespace.
pub(crate) fn notify_to(socket: &Path, state: &str) -> std::io::Result<()> {
    let datagram = UnixDatagram::unbound()?;
    let bytes = socket.as_os_str().as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        datagram.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        datagram.send_to(state.as_bytes(), socket)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "systemd_test.rs"]
mod tests;
