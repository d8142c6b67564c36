//! The driver against the in-process controller model: bring-up, every command, PRP edge cases.

use nvme::model::{DmaLayout, Model, ModelConfig, NamespaceConfig};
use nvme::{Controller, DmaMemory, Error, Options, Platform, Request};

fn setup(config: ModelConfig, options: Options) -> (Model, Controller<Model>) {
    let model = Model::new(config);
    let ctrl = Controller::new(model.clone(), options).expect("bring-up");
    (model, ctrl)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn brings_up_and_identifies() {
    let config = ModelConfig {
        namespaces: vec![
            NamespaceConfig {
                blocks: 1000,
                lba_shift: 9,
            },
            NamespaceConfig {
                blocks: 64,
                lba_shift: 12,
            },
        ],
        max_io_queues: 3,
        ..ModelConfig::default()
    };
    let (model, ctrl) = setup(config, Options::default());
    assert_eq!(ctrl.info().model, "Kangrejos NVMe Model");
    assert_eq!(ctrl.info().serial, "MODEL0001");
    assert_eq!(ctrl.info().mdts, 7);
    assert_eq!(ctrl.max_transfer(), 512 * 1024);
    let ns = ctrl.namespaces();
    assert_eq!(ns.len(), 2);
    assert_eq!((ns[0].id, ns[0].blocks, ns[0].block_size()), (1, 1000, 512));
    assert_eq!((ns[1].id, ns[1].blocks, ns[1].block_size()), (2, 64, 4096));
    assert_eq!(ctrl.queues_granted(), 3);
    assert_eq!(model.stats().resets, 0);
}

#[test]
fn every_command_path_reaches_the_media() {
    let (model, ctrl) = setup(ModelConfig::default(), Options::default());
    let mut qp = ctrl.queue_pair().unwrap();
    let data = pattern(8 * 512, 7);
    qp.write(1, 100, &data, false).unwrap();
    qp.write(1, 200, &data, true).unwrap();
    assert_eq!(model.media(1, 100 * 512, data.len()).unwrap(), data);
    let mut back = vec![0; data.len()];
    qp.read(1, 100, &mut back).unwrap();
    assert_eq!(back, data);
    qp.flush_cache(1).unwrap();
    qp.write_zeroes(1, 100, 4).unwrap();
    qp.read(1, 100, &mut back).unwrap();
    assert!(back[..4 * 512].iter().all(|&b| b == 0));
    assert_eq!(back[4 * 512..], data[4 * 512..]);
    qp.deallocate(1, 200, 8).unwrap();
    assert!(
        model
            .media(1, 200 * 512, 8 * 512)
            .unwrap()
            .iter()
            .all(|&b| b == 0)
    );
    let stats = model.stats();
    assert_eq!(stats.writes, 2);
    assert_eq!(stats.fua_writes, 1);
    assert_eq!(stats.reads, 2);
    assert_eq!(stats.flushes, 1);
    assert_eq!(stats.write_zeroes, 1);
    assert_eq!(stats.deallocates, 1);
}

/// Writes `len` bytes at `offset` into a buffer and reads them back through another one
/// at the same offset, checking the media in between.
fn round_trip(config: ModelConfig, options: Options, offset: usize, len: usize) -> Model {
    let (model, ctrl) = setup(config, options);
    let mut qp = ctrl.queue_pair().unwrap();
    let blocks = (len / 512) as u64;
    let data = pattern(len, 3);
    let buf = qp.alloc_buffer(offset + len).unwrap();
    buf.write(offset, &data);
    let done = qp
        .execute(Request::write(1, 10, blocks, buf, false).at_offset(offset))
        .unwrap();
    done.result.unwrap();
    assert_eq!(model.media(1, 10 * 512, len).unwrap(), data);
    let buf = qp.alloc_buffer(offset + len).unwrap();
    let done = qp
        .execute(Request::read(1, 10, blocks, buf).at_offset(offset))
        .unwrap();
    done.result.unwrap();
    let mut back = vec![0; len];
    done.buffer.unwrap().read(offset, &mut back);
    assert_eq!(back, data);
    model
}

#[test]
fn prp_single_page_with_offset() {
    let model = round_trip(ModelConfig::default(), Options::default(), 1024, 2048);
    assert_eq!(model.stats().most_prp_list_pages, 0);
}

#[test]
fn prp_offset_crossing_into_a_second_page_uses_prp2_not_a_list() {
    let model = round_trip(ModelConfig::default(), Options::default(), 3584, 1024);
    assert_eq!(model.stats().most_prp_list_pages, 0);
}

#[test]
fn prp_exactly_two_pages() {
    let model = round_trip(ModelConfig::default(), Options::default(), 0, 8192);
    assert_eq!(model.stats().most_prp_list_pages, 0);
    assert_eq!(model.stats().largest_transfer, 8192);
}

#[test]
fn prp_three_pages_use_a_list() {
    let model = round_trip(ModelConfig::default(), Options::default(), 512, 8192);
    assert_eq!(model.stats().most_prp_list_pages, 1);
}

#[test]
fn prp_list_spanning_several_list_pages() {
    let config = ModelConfig {
        mdts: 0,
        ..ModelConfig::default()
    };
    let options = Options {
        max_transfer: 4 << 20,
        ..Options::default()
    };
    // 4 MiB at offset 512 touches 1025 pages: 1024 list entries over three chained list pages.
    let model = round_trip(config, options, 512, 4 << 20);
    assert_eq!(model.stats().most_prp_list_pages, 3);
    assert_eq!(model.stats().largest_transfer, 4 << 20);
}

#[test]
fn requests_larger_than_mdts_are_split() {
    let config = ModelConfig {
        mdts: 2,
        ..ModelConfig::default()
    };
    let model = round_trip(config, Options::default(), 0, 100 * 1024);
    let stats = model.stats();
    assert_eq!(stats.largest_transfer, 16 * 1024);
    // 100 KiB in 16 KiB pieces: 7 writes and 7 reads.
    assert_eq!(stats.writes, 7);
    assert_eq!(stats.reads, 7);
}

#[test]
fn contiguous_dma_allows_deep_queues_and_scattered_dma_is_clamped() {
    let contiguous = ModelConfig {
        dma_layout: DmaLayout::Contiguous,
        ..ModelConfig::default()
    };
    let (_m, ctrl) = setup(contiguous, Options::default());
    assert_eq!(ctrl.queue_pair().unwrap().depth(), 1024);
    let (_m, ctrl) = setup(ModelConfig::default(), Options::default());
    // One 4 KiB page holds 64 submission entries.
    assert_eq!(ctrl.queue_pair().unwrap().depth(), 63);
}

#[test]
fn queue_depth_is_bounded_by_mqes() {
    let config = ModelConfig {
        mqes: 15,
        dma_layout: DmaLayout::Contiguous,
        ..ModelConfig::default()
    };
    let (_m, ctrl) = setup(config, Options::default());
    assert_eq!(ctrl.queue_pair().unwrap().depth(), 15);
}

#[test]
fn queues_wrap_around_many_times() {
    let config = ModelConfig {
        mqes: 7,
        ..ModelConfig::default()
    };
    let (model, ctrl) = setup(config, Options::default());
    let mut qp = ctrl.queue_pair().unwrap();
    assert_eq!(qp.depth(), 7);
    let mut completed = Vec::new();
    let mut next = 0u64;
    while completed.len() < 200 {
        while next < 200 && qp.free_slots() > 0 {
            let buf = qp.alloc_buffer(512).unwrap();
            buf.write(0, &next.to_le_bytes());
            qp.submit(Request::write(1, next, 1, buf, false).with_tag(next))
                .unwrap();
            next += 1;
        }
        qp.poll(|c| {
            c.result.unwrap();
            completed.push(c.tag);
        });
    }
    completed.sort_unstable();
    assert_eq!(completed, (0..200).collect::<Vec<_>>());
    // The CQ head doorbell is written lazily but in time: the controller never found the
    // completion queue full, and needed far fewer doorbells than completions.
    let stats = model.stats();
    assert_eq!(stats.cq_full_waits, 0);
    assert!(
        stats.cq_doorbells < 120,
        "{} CQ doorbells",
        stats.cq_doorbells
    );
    for lba in [0u64, 77, 199] {
        let media = model.media(1, lba * 512, 8).unwrap();
        assert_eq!(u64::from_le_bytes(media.try_into().unwrap()), lba);
    }
}

#[test]
fn a_full_queue_rejects_and_returns_the_request() {
    let config = ModelConfig {
        mqes: 3,
        ..ModelConfig::default()
    };
    let (_m, ctrl) = setup(config, Options::default());
    let mut qp = ctrl.queue_pair().unwrap();
    for i in 0..3 {
        qp.submit(Request::flush(1).with_tag(i)).unwrap();
    }
    let rejected = qp.submit(Request::flush(1).with_tag(99)).unwrap_err();
    assert!(matches!(rejected.error, Error::QueueFull));
    assert_eq!(rejected.request.tag, 99);
    let mut n = 0;
    qp.poll(|c| {
        c.result.unwrap();
        n += 1;
    });
    assert_eq!(n, 3);
    qp.submit(Request::flush(1)).unwrap();
}

#[test]
fn bad_requests_get_clear_errors() {
    let (model, ctrl) = setup(ModelConfig::default(), Options::default());
    let mut qp = ctrl.queue_pair().unwrap();
    let blocks = ctrl.namespaces()[0].blocks;
    let mut buf = vec![0; 1024];
    let err = qp.read(1, blocks - 1, &mut buf).unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err}");
    let err = qp.read(1, u64::MAX, &mut buf).unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err}");
    let err = qp.read(9, 0, &mut buf).unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err}");
    let err = qp.read(1, 0, &mut buf[..100]).unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err}");
    let small = qp.alloc_buffer(4096).unwrap();
    let rejected = qp.submit(Request::read(1, 0, 9, small)).unwrap_err();
    assert!(matches!(rejected.error, Error::InvalidRequest(_)));
    assert!(rejected.request.buffer.is_some());
    let odd = qp.alloc_buffer(8192).unwrap();
    let rejected = qp
        .submit(Request::read(1, 0, 1, odd).at_offset(2))
        .unwrap_err();
    assert!(matches!(rejected.error, Error::InvalidRequest(_)));
    let err = qp.write_zeroes(1, blocks, 1).unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err}");
    assert_eq!(model.stats().reads, 0);
    // The queue pair still works afterwards.
    qp.read(1, 0, &mut buf).unwrap();
}

#[test]
fn several_queue_pairs_run_on_their_own_threads() {
    let config = ModelConfig {
        max_io_queues: 4,
        ..ModelConfig::default()
    };
    let (model, ctrl) = setup(config, Options::default());
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let mut qp = ctrl.queue_pair().unwrap();
            scope.spawn(move || {
                for i in 0..50u64 {
                    let lba = t * 1000 + i * 8;
                    let data = pattern(4096, (t * 50 + i) as u8);
                    qp.write(1, lba, &data, false).unwrap();
                    let mut back = vec![0; 4096];
                    qp.read(1, lba, &mut back).unwrap();
                    assert_eq!(back, data);
                }
            });
        }
    });
    assert_eq!(model.stats().writes, 200);
    assert!(ctrl.queue_pair().is_ok());
}

#[test]
fn queue_ids_run_out_with_a_clear_error_and_come_back() {
    let config = ModelConfig {
        max_io_queues: 2,
        ..ModelConfig::default()
    };
    let (model, ctrl) = setup(config, Options::default());
    let a = ctrl.queue_pair().unwrap();
    let b = ctrl.queue_pair().unwrap();
    assert!(matches!(ctrl.queue_pair(), Err(Error::NoQueuesLeft(2))));
    assert_eq!(model.stats().live_io_sqs, 2);
    drop(a);
    assert_eq!(model.stats().live_io_sqs, 1);
    assert_eq!(model.stats().live_io_cqs, 1);
    let _c = ctrl.queue_pair().unwrap();
    drop(b);
}

#[test]
fn drop_shuts_down_and_frees_every_dma_page() {
    let (model, ctrl) = setup(ModelConfig::default(), Options::default());
    let mut qp = ctrl.queue_pair().unwrap();
    qp.write(1, 0, &[1; 512], false).unwrap();
    drop(qp);
    drop(ctrl);
    let stats = model.stats();
    assert_eq!(stats.shutdowns, 1);
    assert_eq!(stats.live_io_sqs, 0);
    assert_eq!(model.mapped_dma_pages(), 0);
}

#[test]
fn a_megabyte_read_goes_out_as_two_mdts_sized_commands() {
    let (model, ctrl) = setup(ModelConfig::default(), Options::default());
    let mut qp = ctrl.queue_pair().unwrap();
    let buf = qp.alloc_buffer(1 << 20).unwrap();
    qp.execute(Request::read(1, 0, 2048, buf))
        .unwrap()
        .result
        .unwrap();
    assert_eq!(model.stats().reads, 2);
    assert_eq!(model.stats().largest_transfer, 512 * 1024);
}

#[test]
fn zero_length_dma_is_refused() {
    let model = Model::new(ModelConfig::default());
    assert!(model.alloc_dma(0).is_err());
}

#[test]
fn a_wide_doorbell_stride_is_honoured() {
    let config = ModelConfig {
        dstrd: 2,
        max_io_queues: 3,
        ..ModelConfig::default()
    };
    let (model, ctrl) = setup(config, Options::default());
    assert_eq!(ctrl.cap().doorbell_stride(), 16);
    let mut a = ctrl.queue_pair().unwrap();
    let mut b = ctrl.queue_pair().unwrap();
    a.write(1, 0, &[1; 512], false).unwrap();
    b.write(1, 1, &[2; 512], false).unwrap();
    assert_eq!(model.media(1, 0, 1024).unwrap()[511..513], [1, 2]);
}

#[test]
fn submissions_share_one_doorbell_write() {
    let (model, ctrl) = setup(ModelConfig::default(), Options::default());
    let mut qp = ctrl.queue_pair().unwrap();
    let before = model.stats().sq_doorbells;
    for tag in 0..10 {
        qp.submit(Request::flush(1).with_tag(tag)).unwrap();
    }
    assert_eq!(model.stats().sq_doorbells, before);
    let mut n = 0;
    qp.poll(|c| {
        c.result.unwrap();
        n += 1;
    });
    assert_eq!(n, 10);
    assert_eq!(model.stats().sq_doorbells, before + 1);
    assert_eq!(model.stats().flushes, 10);
}

#[test]
fn namespaces_with_different_block_sizes_are_addressed_in_their_own_blocks() {
    let config = ModelConfig {
        namespaces: vec![
            NamespaceConfig {
                blocks: 100,
                lba_shift: 9,
            },
            NamespaceConfig {
                blocks: 100,
                lba_shift: 12,
            },
        ],
        ..ModelConfig::default()
    };
    let (model, ctrl) = setup(config, Options::default());
    let mut qp = ctrl.queue_pair().unwrap();
    let data = pattern(8192, 9);
    qp.write(2, 3, &data, false).unwrap();
    assert_eq!(model.media(2, 3 * 4096, 8192).unwrap(), data);
    assert!(
        model
            .media(1, 0, 100 * 512)
            .unwrap()
            .iter()
            .all(|&b| b == 0)
    );
    // 512 bytes is not a whole block of namespace 2.
    assert!(matches!(
        qp.write(2, 0, &[0; 512], false),
        Err(Error::InvalidRequest(_))
    ));
    let mut back = vec![0; 8192];
    qp.read(2, 3, &mut back).unwrap();
    assert_eq!(back, data);
    qp.write_zeroes(2, 3, 1).unwrap();
    assert!(
        model
            .media(2, 3 * 4096, 4096)
            .unwrap()
            .iter()
            .all(|&b| b == 0)
    );
}

#[test]
fn a_batch_goes_out_with_one_doorbell_and_stops_at_the_first_refusal() {
    let config = ModelConfig {
        mqes: 7,
        ..ModelConfig::default()
    };
    let (model, ctrl) = setup(config, Options::default());
    let mut qp = ctrl.queue_pair().unwrap();
    let before = model.stats().sq_doorbells;
    let sent = qp
        .submit_batch((0..5).map(|t| Request::flush(1).with_tag(t)))
        .unwrap();
    assert_eq!(sent, 5);
    assert_eq!(model.stats().sq_doorbells, before + 1);
    assert_eq!(model.stats().flushes, 5);
    // Two slots left (depth 7): the third request of the next batch is refused and handed back.
    let mut rest = (10..14).map(|t| Request::flush(1).with_tag(t));
    let rejected = qp.submit_batch(&mut rest).unwrap_err();
    assert!(matches!(rejected.error, Error::QueueFull));
    assert_eq!(rejected.request.tag, 12);
    assert_eq!(rest.next().map(|r| r.tag), Some(13));
    let mut tags = Vec::new();
    qp.poll(|c| tags.push(c.tag));
    tags.sort_unstable();
    assert_eq!(tags, [0, 1, 2, 3, 4, 10, 11]);
}

#[test]
fn without_mdts_commands_still_stop_at_65536_blocks() {
    let config = ModelConfig {
        mdts: 0,
        dma_layout: DmaLayout::Contiguous,
        namespaces: vec![NamespaceConfig {
            blocks: 80_000,
            lba_shift: 9,
        }],
        ..ModelConfig::default()
    };
    let options = Options {
        max_transfer: 64 << 20,
        ..Options::default()
    };
    let (model, ctrl) = setup(config, options);
    let mut qp = ctrl.queue_pair().unwrap();
    let data = pattern(70_000 * 512, 5);
    qp.write(1, 1000, &data, false).unwrap();
    let stats = model.stats();
    assert_eq!(stats.writes, 2);
    assert_eq!(stats.largest_transfer, 65_536 * 512);
    assert!(model.media(1, 1000 * 512, data.len()).unwrap() == data);
}

#[test]
fn the_lazy_cq_doorbell_is_written_before_the_ring_could_fill() {
    let config = ModelConfig {
        mqes: 7,
        ..ModelConfig::default()
    };
    let (model, ctrl) = setup(config, Options::default());
    let mut qp = ctrl.queue_pair().unwrap();
    let mut done = 0;
    // Three completions consumed and not yet acknowledged...
    qp.submit_batch((0..3).map(|t| Request::flush(1).with_tag(t)))
        .unwrap();
    done += qp.poll(|c| c.result.unwrap());
    // ...then a full queue: the controller must learn about the three before it runs out.
    qp.submit_batch((3..10).map(|t| Request::flush(1).with_tag(t)))
        .unwrap();
    while done < 10 {
        done += qp.poll(|c| c.result.unwrap());
    }
    assert_eq!(model.stats().cq_full_waits, 0);
}
