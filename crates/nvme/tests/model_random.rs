//! Random mixed I/O against the model, checked against a shadow copy of the namespace.

use nvme::model::{DmaLayout, Model, ModelConfig, NamespaceConfig};
use nvme::{Controller, DmaMemory, Options, Request};
use proptest::prelude::*;

const BLOCKS: u64 = 512;
const BS: usize = 512;

#[derive(Debug, Clone)]
enum Op {
    Write {
        lba: u64,
        blocks: u64,
        offset: usize,
        seed: u8,
        fua: bool,
    },
    Read {
        lba: u64,
        blocks: u64,
        offset: usize,
    },
    Zeroes {
        lba: u64,
        blocks: u64,
    },
    Deallocate {
        lba: u64,
        blocks: u64,
    },
}

impl Op {
    fn range(&self) -> (u64, u64) {
        match *self {
            Op::Write { lba, blocks, .. }
            | Op::Read { lba, blocks, .. }
            | Op::Zeroes { lba, blocks }
            | Op::Deallocate { lba, blocks } => (lba, lba + blocks),
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    let range = (0..BLOCKS - 1).prop_flat_map(|lba| (Just(lba), 1..=(BLOCKS - lba).min(200)));
    let offset = (0usize..2048).prop_map(|o| o * 4);
    prop_oneof![
        4 => (range.clone(), offset.clone(), any::<u8>(), any::<bool>())
            .prop_map(|((lba, blocks), offset, seed, fua)| Op::Write { lba, blocks, offset, seed, fua }),
        4 => (range.clone(), offset).prop_map(|((lba, blocks), offset)| Op::Read { lba, blocks, offset }),
        1 => range.clone().prop_map(|(lba, blocks)| Op::Zeroes { lba, blocks }),
        1 => range.prop_map(|(lba, blocks)| Op::Deallocate { lba, blocks }),
    ]
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

fn run(ops: Vec<Op>, batch: usize, layout: DmaLayout, mdts: u8) {
    let model = Model::new(ModelConfig {
        mdts,
        dma_layout: layout,
        namespaces: vec![NamespaceConfig {
            blocks: BLOCKS,
            lba_shift: 9,
        }],
        ..ModelConfig::default()
    });
    let ctrl = Controller::new(model.clone(), Options::default()).unwrap();
    let mut qp = ctrl.queue_pair().unwrap();
    let mut shadow = vec![0u8; BLOCKS as usize * BS];
    let mut ops = ops.into_iter().peekable();
    while ops.peek().is_some() {
        // A batch of ops whose block ranges do not overlap, all in flight together.
        let mut group: Vec<Op> = Vec::new();
        while let Some(next) = ops.peek() {
            let (a, b) = next.range();
            let clash = group.iter().any(|o| {
                let (c, d) = o.range();
                a < d && c < b
            });
            if group.len() == batch || clash {
                break;
            }
            group.push(ops.next().unwrap());
        }
        for (tag, op) in group.iter().enumerate() {
            let req = match *op {
                Op::Write {
                    lba,
                    blocks,
                    offset,
                    seed,
                    fua,
                } => {
                    let len = blocks as usize * BS;
                    let buf = qp.alloc_buffer(offset + len).unwrap();
                    let bytes = data(len, seed);
                    buf.write(offset, &bytes);
                    let at = lba as usize * BS;
                    shadow[at..at + len].copy_from_slice(&bytes);
                    Request::write(1, lba, blocks, buf, fua).at_offset(offset)
                }
                Op::Read {
                    lba,
                    blocks,
                    offset,
                } => {
                    let buf = qp.alloc_buffer(offset + blocks as usize * BS).unwrap();
                    Request::read(1, lba, blocks, buf).at_offset(offset)
                }
                Op::Zeroes { lba, blocks } | Op::Deallocate { lba, blocks } => {
                    let at = lba as usize * BS;
                    shadow[at..at + blocks as usize * BS].fill(0);
                    if matches!(op, Op::Zeroes { .. }) {
                        Request::write_zeroes(1, lba, blocks)
                    } else {
                        Request::deallocate(1, lba, blocks)
                    }
                }
            };
            qp.submit(req.with_tag(tag as u64)).unwrap();
        }
        let mut done = vec![false; group.len()];
        let mut finished = 0;
        while finished < group.len() {
            finished += qp.poll(|c| {
                c.result.unwrap();
                assert!(!done[c.tag as usize]);
                done[c.tag as usize] = true;
                if let Op::Read {
                    lba,
                    blocks,
                    offset,
                } = group[c.tag as usize]
                {
                    let len = blocks as usize * BS;
                    let mut got = vec![0; len];
                    c.buffer.unwrap().read(offset, &mut got);
                    let at = lba as usize * BS;
                    assert!(got == shadow[at..at + len], "read at {lba} differs");
                }
            });
        }
    }
    assert_eq!(model.media(1, 0, shadow.len()).unwrap(), shadow);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_mixed_io_matches_a_shadow_copy(
        ops in proptest::collection::vec(op(), 1..40),
        batch in 1usize..12,
        scattered in any::<bool>(),
        mdts in prop_oneof![Just(0u8), Just(1), Just(3), Just(7)],
    ) {
        let layout = if scattered { DmaLayout::Scattered } else { DmaLayout::Contiguous };
        run(ops, batch, layout, mdts);
    }
}
