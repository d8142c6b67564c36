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
