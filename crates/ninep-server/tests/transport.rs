//! Socket settings of the transports.

/// A unix connection's send buffer holds two replies of msize, within the kernel's cap.
#[tokio::test]
async fn unix_connections_queue_two_whole_replies() {
    let (ours, _theirs) = tokio::net::UnixStream::pair().unwrap();
    let before = rustix::net::sockopt::socket_send_buffer_size(&ours).unwrap();
    let msize = 1 << 20;
    ninep_server::listen::widen_send_buffer(&ours, msize);
    let after = rustix::net::sockopt::socket_send_buffer_size(&ours).unwrap();
    let cap: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Linux doubles the requested size for its bookkeeping.
    assert_eq!(after, 2 * (2 * msize as usize).min(cap));
    assert!(after >= before);
}

/// `--listen vsock:PORT` listens on every CID of the machine, `vsock:CID:PORT` on one; other
/// shapes are refused with the reason.
#[test]
fn vsock_listen_addresses() {
    use ninep_server::listen::{Listen, VSOCK_CID_ANY};
    assert_eq!(
        "vsock:564".parse::<Listen>(),
        Ok(Listen::Vsock {
            cid: VSOCK_CID_ANY,
            port: 564
        })
    );
    assert_eq!(
        "vsock:2:5640".parse::<Listen>(),
        Ok(Listen::Vsock { cid: 2, port: 5640 })
    );
    for bad in [
        "vsock:",
        "vsock:x",
        "vsock:2:",
        "vsock:1:2:3",
        "vsock:-1",
        "vsock:4294967296",
        "vsock:4294967295",
    ] {
        let err = bad.parse::<Listen>().expect_err(bad);
        assert!(err.contains("vsock:"), "{bad}: {err}");
    }
}
