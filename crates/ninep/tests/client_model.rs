//! Model-based test of the client's tag bookkeeping: random interleavings of requests, replies,
//! flushes and abandoned calls against a scripted server that checks the protocol's rule that a
//! tag is never reused while the server may still answer it (or while a Tflush names it).

use std::collections::{BTreeMap, HashSet};

use ninep::{Client, ClientError, FrameReader, PendingReply, Request, Response};
use proptest::prelude::*;
use tokio::io::{AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};

#[derive(Debug, Clone)]
enum Op {
    /// The client sends a new request.
    Start,
    /// The server answers the n-th unanswered request.
    Reply(usize),
    /// The client sends Tflush for the n-th request it still waits on.
    Flush(usize),
    /// The server answers the n-th outstanding Tflush.
    Rflush(usize),
    /// The client stops waiting for the n-th request it waits on.
    Abandon(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Start),
        3 => any::<usize>().prop_map(Op::Reply),
        1 => any::<usize>().prop_map(Op::Flush),
        2 => any::<usize>().prop_map(Op::Rflush),
        1 => any::<usize>().prop_map(Op::Abandon),
    ]
}

/// What the scripted server knows.
struct Server {
    frames: FrameReader<ReadHalf<DuplexStream>>,
    out: WriteHalf<DuplexStream>,
    /// Tags of requests not yet answered (and not cancelled by an Rflush): tag -> request id.
    unanswered: BTreeMap<u16, u32>,
    /// Outstanding Tflush: its tag -> the tag it cancels.
    flushes: BTreeMap<u16, u16>,
    /// Old tags named by an outstanding Tflush that were still unanswered when it arrived.
    flushed_open: HashSet<u16>,
}

impl Server {
    /// Tags the client must not reuse yet.
    fn reserved(&self) -> HashSet<u16> {
        let mut tags: HashSet<u16> = self.unanswered.keys().copied().collect();
        tags.extend(self.flushes.keys());
        // A Tflush for an already answered tag does not hold it: the server answers such a
        // flush at once, and the tag's next use arrives after the Tflush.
        tags.extend(&self.flushed_open);
        tags
    }

    async fn recv(&mut self) -> (u16, Request) {
        let frame = self.frames.next_frame().await.unwrap().unwrap();
        let (tag, request) = Request::decode(&frame).unwrap();
        assert!(
            !self.reserved().contains(&tag),
            "tag {tag} reused while reserved"
        );
        (tag, request)
    }

    async fn send(&mut self, tag: u16, r: &Response) {
        let mut buf = Vec::new();
        r.encode(tag, &mut buf).unwrap();
        self.out.write_all(&buf).await.unwrap();
    }
}

/// How a call should end.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Pending,
    Replied,
    Flushed,
}

fn nth<K: Copy, V>(map: &BTreeMap<K, V>, n: usize) -> Option<K> {
    if map.is_empty() {
        return None;
    }
    map.keys().nth(n % map.len()).copied()
}

async fn run(tag_limit: u16, ops: Vec<Op>) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let client = Client::from_stream(a);
    client.set_tag_limit(tag_limit);
    let (r, w) = tokio::io::split(b);
    let mut server = Server {
        frames: FrameReader::new(r, 1 << 20),
        out: w,
        unanswered: BTreeMap::new(),
        flushes: BTreeMap::new(),
        flushed_open: HashSet::new(),
    };
    // Calls the client still waits on: id -> (tag, handle), and every call's expected outcome.
    let mut waiting: BTreeMap<u32, (u16, PendingReply)> = BTreeMap::new();
    let mut outcome: BTreeMap<u32, Outcome> = BTreeMap::new();
    let mut next_id = 0u32;

    for op in ops {
        match op {
            Op::Start => {
                let id = next_id;
                let pending = match client.start(&Request::Clunk { fid: id }) {
                    Ok(pending) => pending,
                    Err(ClientError::TagsExhausted) => {
                        assert_eq!(client.in_flight(), usize::from(tag_limit));
                        continue;
                    }
                    Err(e) => panic!("start failed: {e}"),
                };
                next_id += 1;
                let (tag, request) = server.recv().await;
                assert_eq!(request, Request::Clunk { fid: id });
                assert_eq!(tag, pending.tag());
                server.unanswered.insert(tag, id);
                waiting.insert(id, (tag, pending));
                outcome.insert(id, Outcome::Pending);
            }
            Op::Reply(n) => {
                let Some(tag) = nth(&server.unanswered, n) else {
                    continue;
                };
                let id = server.unanswered.remove(&tag).unwrap();
                // The reply names the request, so a misrouted reply is caught.
                server.send(tag, &Response::Lerror { ecode: id }).await;
                outcome.insert(id, Outcome::Replied);
            }
            Op::Flush(n) => {
                let Some(id) = nth(&waiting, n) else { continue };
                let oldtag = waiting[&id].0;
                // One Tflush per request at a time, and no Tflush of a Tflush (the tag of a
                // finished call may since have gone to one).
                if server.flushes.values().any(|old| *old == oldtag)
                    || server.flushes.contains_key(&oldtag)
                {
                    continue;
                }
                // Tflush is sent and not awaited: its Rflush comes with a later op.
                match client.start(&Request::Flush { oldtag }) {
                    Ok(flush) => drop(flush),
                    Err(ClientError::TagsExhausted) => continue,
                    Err(e) => panic!("flush failed: {e}"),
                }
                let (tag, request) = server.recv().await;
                assert_eq!(request, Request::Flush { oldtag });
                server.flushes.insert(tag, oldtag);
                if server.unanswered.contains_key(&oldtag) {
                    server.flushed_open.insert(oldtag);
                }
            }
            Op::Rflush(n) => {
                let Some(tag) = nth(&server.flushes, n) else {
                    continue;
                };
                let oldtag = server.flushes.remove(&tag).unwrap();
                // Only a request that was open when the Tflush arrived is cancelled by it; one
                // that reused the tag later is not.
                if server.flushed_open.remove(&oldtag)
                    && let Some(id) = server.unanswered.remove(&oldtag)
                {
                    outcome.insert(id, Outcome::Flushed);
                }
                server.send(tag, &Response::Flush).await;
            }
            Op::Abandon(n) => {
                if let Some(id) = nth(&waiting, n) {
                    waiting.remove(&id);
                }
            }
        }
    }

    // Finish: answer everything still open, then collect every call still waited on.
    let flushes: Vec<u16> = server.flushes.keys().copied().collect();
    let open: Vec<u16> = server.unanswered.keys().copied().collect();
    for tag in open {
        let id = server.unanswered.remove(&tag).unwrap();
        server.send(tag, &Response::Lerror { ecode: id }).await;
        outcome.insert(id, Outcome::Replied);
    }
    for tag in flushes {
        let oldtag = server.flushes.remove(&tag).unwrap();
        server.flushed_open.remove(&oldtag);
        server.send(tag, &Response::Flush).await;
    }
    for (id, (_, pending)) in waiting {
        let got = within_turns(pending.wait())
            .await
            .unwrap_or_else(|| panic!("call {id} never completed"));
        match outcome[&id] {
            Outcome::Replied => assert!(
                matches!(got, Ok(Response::Lerror { ecode }) if ecode == id),
                "call {id}: {got:?}"
            ),
            Outcome::Flushed => assert!(matches!(got, Err(ClientError::Flushed)), "{got:?}"),
            Outcome::Pending => unreachable!("every call was answered"),
        }
    }
    // Let the reader route the replies of abandoned calls (a bounded number of scheduler turns
    // on this single-threaded runtime, not a timeout), then no tag may remain.
    for _ in 0..1000 {
        if client.in_flight() == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(client.in_flight(), 0, "a tag leaked");
}

/// Runs `fut` for a bounded number of scheduler turns of this single-threaded runtime (not a
/// timeout): a call the client should have completed by then is reported instead of hanging.
async fn within_turns<T>(fut: impl std::future::Future<Output = T>) -> Option<T> {
    let give_up = async {
        for _ in 0..10_000 {
            tokio::task::yield_now().await;
        }
    };
    tokio::select! {
        biased;
        out = fut => Some(out),
        () = give_up => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn tags_are_never_reused_early_and_replies_reach_their_callers(
        tag_limit in 2u16..6,
        ops in proptest::collection::vec(op(), 1..80)
    ) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(run(tag_limit, ops));
    }
}
