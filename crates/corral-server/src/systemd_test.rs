//! The notify protocol, against sockets of the test's own.

use super::*;

#[test]
fn a_state_reaches_the_socket() {
    let dir = crate::test_support::TempDir::new("notify");
    let path = dir.0.join("notify.sock");
    let listener = UnixDatagram::bind(&path).expect("bind");
    notify_to(&path, "READY=1").expect("sent");
    let mut buffer = [0u8; 64];
    let n = listener.recv(&mut buffer).expect("received");
    assert_eq!(&buffer[..n], b"READY=1");
}

#[test]
fn an_abstract_socket_is_reached_too() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("corral-notify-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .expect("an abstract name");
    let listener = UnixDatagram::bind_addr(&addr).expect("bind");
    notify_to(Path::new(&format!("@{name}")), "STOPPING=1").expect("sent");
    let mut buffer = [0u8; 64];
    let n = listener.recv(&mut buffer).expect("received");
    assert_eq!(&buffer[..n], b"STOPPING=1");
}
