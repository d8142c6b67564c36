//! Admin commands of the model: identify, features, queue management, abort.

use std::collections::VecDeque;

use super::{Cq, Engine, Held, Outcome, Sq, generic, ok, specific};
use crate::command::{Sqe, admin, cns};
use crate::platform::DMA_PAGE_SIZE;
use crate::status::{Status, csc, sc};

const PAGE: u64 = DMA_PAGE_SIZE as u64;

impl Engine {
    pub(super) fn execute_admin(&mut self, sqe: &Sqe) -> Outcome {
        match sqe.opcode() {
            admin::IDENTIFY => self.identify(sqe),
            admin::GET_LOG_PAGE => self.get_log_page(sqe),
            admin::FORMAT_NVM => self.format_nvm(sqe),
            admin::SET_FEATURES if !Engine::is_queue_feature(sqe) => self.set_other_features(sqe),
            admin::GET_FEATURES if !Engine::is_queue_feature(sqe) => self.get_other_features(sqe),
            admin::SET_FEATURES => self.set_features(sqe),
            admin::GET_FEATURES => match (sqe.cdw(10) & 0xff, self.queues_granted) {
                (0x07, Some(n)) => ok(((n as u32 - 1) << 16) | (n as u32 - 1)),
                (0x07, None) => {
                    let n = self.config.max_io_queues as u32 - 1;
                    ok((n << 16) | n)
                }
                _ => generic(sc::INVALID_FIELD),
            },
            admin::CREATE_CQ => self.create_cq(sqe),
            admin::CREATE_SQ => self.create_sq(sqe),
            admin::DELETE_SQ => self.delete_sq(sqe),
            admin::DELETE_CQ => self.delete_cq(sqe),
            admin::ABORT => self.abort(sqe),
            admin::DOORBELL_BUFFER_CONFIG if self.config.shadow_doorbells => {
                let (doorbells, event_indexes) = (sqe.prp1(), sqe.prp2());
                let page = |a: u64| a != 0 && a.is_multiple_of(DMA_PAGE_SIZE as u64);
                if !page(doorbells) || !page(event_indexes) {
                    return generic(sc::INVALID_FIELD);
                }
                self.shadow = Some((doorbells, event_indexes));
                self.stats.shadow_doorbell_configs += 1;
                ok(0)
            }
            _ => generic(sc::INVALID_OPCODE),
        }
    }

    fn identify(&mut self, sqe: &Sqe) -> Outcome {
        let mut data = vec![0u8; DMA_PAGE_SIZE];
        match sqe.cdw(10) & 0xff {
            cns::CONTROLLER => {
                data[0..2].copy_from_slice(&0x1b36u16.to_le_bytes());
                data[4..24].copy_from_slice(b"MODEL0001           ");
                data[24..64].copy_from_slice(&{
                    let mut mn = [b' '; 40];
                    mn[..20].copy_from_slice(b"Kangrejos NVMe Model");
                    mn
                });
                data[64..72].copy_from_slice(b"1.0     ");
                data[77] = self.config.mdts;
                data[80..84].copy_from_slice(&0x0001_0400u32.to_le_bytes());
                if self.config.shadow_doorbells {
                    data[256..258].copy_from_slice(&(1u16 << 8).to_le_bytes());
                }
                data[258] = 3;
                data[259] = 3;
                data[512] = 0x66;
                data[513] = 0x44;
                data[516..520].copy_from_slice(&(self.media.len() as u32).to_le_bytes());
                data[520..522].copy_from_slice(&(0b1100u16).to_le_bytes());
                data[525] = 1;
            }
            cns::ACTIVE_NAMESPACES => {
                let after = sqe.nsid();
                let ids = (1..=self.media.len() as u32).filter(|&id| id > after);
                for (slot, id) in data.chunks_exact_mut(4).zip(ids) {
                    slot.copy_from_slice(&id.to_le_bytes());
                }
            }
            cns::NAMESPACE => {
                let Some(ns) = self.namespace(sqe.nsid()) else {
                    return generic(sc::INVALID_NAMESPACE);
                };
                for field in 0..3 {
                    data[field * 8..field * 8 + 8].copy_from_slice(&ns.blocks.to_le_bytes());
                }
                let formats = super::management::lba_formats(ns.lba_shift);
                data[25] = formats.len() as u8 - 1;
                data[26] = formats.iter().position(|&f| f == ns.lba_shift).unwrap_or(0) as u8;
                for (i, shift) in formats.iter().enumerate() {
                    data[130 + 4 * i] = *shift;
                }
            }
            _ => return generic(sc::INVALID_FIELD),
        }
        match self.transfer(sqe, data.len()) {
            Ok(segments) => {
                if self.scatter(&segments, &data) {
                    ok(0)
                } else {
                    generic(sc::DATA_TRANSFER_ERROR)
                }
            }
            Err(outcome) => outcome,
        }
    }

    fn set_features(&mut self, sqe: &Sqe) -> Outcome {
        if sqe.cdw(10) & 0xff != 0x07 {
            return generic(sc::INVALID_FIELD);
        }
        if self.queues_granted.is_some() {
            return generic(sc::COMMAND_SEQUENCE_ERROR);
        }
        let nsqr = sqe.cdw(11) & 0xffff;
        let ncqr = sqe.cdw(11) >> 16;
        if nsqr == 0xffff || ncqr == 0xffff {
            return generic(sc::INVALID_FIELD);
        }
        let granted = (nsqr.min(ncqr) + 1).min(self.config.max_io_queues as u32) as u16;
        self.queues_granted = Some(granted);
        let n = granted as u32 - 1;
        ok((n << 16) | n)
    }

    fn check_new_queue(&self, sqe: &Sqe, existing: bool) -> Result<(u16, u16), Outcome> {
        let qid = sqe.cdw(10) as u16;
        let entries = (sqe.cdw(10) >> 16) + 1;
        let granted = self.queues_granted.unwrap_or(0);
        if qid == 0 || qid > granted || existing {
            return Err(specific(csc::INVALID_QUEUE_ID));
        }
        if entries < 2 || entries > self.config.mqes as u32 + 1 {
            return Err(specific(csc::INVALID_QUEUE_SIZE));
        }
        if sqe.cdw(11) & 1 == 0 || !sqe.prp1().is_multiple_of(PAGE) || sqe.prp1() == 0 {
            return Err(generic(sc::INVALID_FIELD));
        }
        Ok((qid, entries as u16))
    }

    fn create_cq(&mut self, sqe: &Sqe) -> Outcome {
        let qid = sqe.cdw(10) as u16 as usize;
        let exists = matches!(self.cqs.get(qid), Some(Some(_)));
        let (qid, entries) = match self.check_new_queue(sqe, exists) {
            Ok(v) => v,
            Err(outcome) => return outcome,
        };
        self.cqs[qid as usize] = Some(Cq {
            base: sqe.prp1(),
            entries,
            head: 0,
            tail: 0,
            phase: true,
            vector: (sqe.cdw(11) & 1 << 1 != 0).then_some((sqe.cdw(11) >> 16) as u16),
            waiting: VecDeque::new(),
        });
        self.stats.live_io_cqs += 1;
        ok(0)
    }

    fn create_sq(&mut self, sqe: &Sqe) -> Outcome {
        let qid = sqe.cdw(10) as u16 as usize;
        let exists = matches!(self.sqs.get(qid), Some(Some(_)));
        let (qid, entries) = match self.check_new_queue(sqe, exists) {
            Ok(v) => v,
            Err(outcome) => return outcome,
        };
        let cqid = (sqe.cdw(11) >> 16) as u16;
        if cqid == 0 || !matches!(self.cqs.get(cqid as usize), Some(Some(_))) {
            return specific(csc::INVALID_CQ);
        }
        self.sqs[qid as usize] = Some(Sq {
            base: sqe.prp1(),
            entries,
            cqid,
            head: 0,
        });
        self.stats.live_io_sqs += 1;
        ok(0)
    }

    fn delete_sq(&mut self, sqe: &Sqe) -> Outcome {
        let qid = sqe.cdw(10) as u16;
        let Some(Some(sq)) = self.sqs.get(qid as usize).filter(|_| qid != 0) else {
            return specific(csc::INVALID_QUEUE_ID);
        };
        let cqid = sq.cqid;
        let (aborted, kept): (Vec<Held>, Vec<Held>) =
            self.held.drain(..).partition(|h| h.sqid == qid);
        self.held = kept;
        for h in aborted {
            let status = Status::generic(sc::ABORTED_SQ_DELETION, false);
            self.complete(qid, cqid, h.cid, 0, Some(status));
        }
        self.sqs[qid as usize] = None;
        self.stats.live_io_sqs -= 1;
        ok(0)
    }

    fn delete_cq(&mut self, sqe: &Sqe) -> Outcome {
        let qid = sqe.cdw(10) as u16;
        if qid == 0 || !matches!(self.cqs.get(qid as usize), Some(Some(_))) {
            return specific(csc::INVALID_QUEUE_ID);
        }
        if self.sqs.iter().flatten().any(|sq| sq.cqid == qid) {
            return specific(csc::INVALID_QUEUE_DELETION);
        }
        self.cqs[qid as usize] = None;
        self.stats.live_io_cqs -= 1;
        ok(0)
    }

    fn abort(&mut self, sqe: &Sqe) -> Outcome {
        self.stats.aborts += 1;
        let sqid = sqe.cdw(10) as u16;
        let cid = (sqe.cdw(10) >> 16) as u16;
        let Some(index) = self
            .held
            .iter()
            .position(|h| h.sqid == sqid && h.cid == cid)
        else {
            return ok(1);
        };
        self.held.remove(index);
        if let Some(Some(sq)) = self.sqs.get(sqid as usize) {
            let cqid = sq.cqid;
            let status = Status::generic(sc::ABORT_REQUESTED, false);
            self.complete(sqid, cqid, cid, 0, Some(status));
        }
        ok(0)
    }
}
