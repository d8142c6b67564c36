//! Log pages and features of the model: SMART / Health, Error Information and Firmware Slot
//! logs, and the features a management tool reads and changes (none of them saveable).

use std::collections::{HashMap, VecDeque};

use super::{Engine, Outcome, generic, ok, specific};
use crate::command::{FEATURE_NUMBER_OF_QUEUES, Sqe};
use crate::log::{ERROR_ENTRY_SIZE, SMART_LOG_SIZE, lid};
use crate::model::NamespaceConfig;
use crate::status::{Status, csc, sc};

/// Error log entries the model keeps (newest first).
const ERROR_ENTRIES: usize = 64;
/// Composite temperature the model reports, in kelvin (50 °C).
const TEMPERATURE_K: u16 = 323;
/// Default over-temperature threshold, in kelvin (70 °C).
const OVER_TEMPERATURE_K: u32 = 343;

/// The LBA formats a namespace offers, as block size shifts: 512 bytes and 4 KiB, or only its
/// own size if it was configured with another.
pub(super) fn lba_formats(lba_shift: u8) -> Vec<u8> {
    match lba_shift {
        9 | 12 => vec![9, 12],
        other => vec![other],
    }
}

/// Feature identifiers the model supports besides Number of Queues.
mod fid {
    pub const ARBITRATION: u8 = 0x01;
    pub const POWER_MANAGEMENT: u8 = 0x02;
    pub const TEMPERATURE_THRESHOLD: u8 = 0x04;
    pub const ERROR_RECOVERY: u8 = 0x05;
    pub const VOLATILE_WRITE_CACHE: u8 = 0x06;
    pub const INTERRUPT_COALESCING: u8 = 0x08;
    pub const WRITE_ATOMICITY: u8 = 0x0a;
    pub const ASYNC_EVENT_CONFIG: u8 = 0x0b;
}

#[derive(Debug, Clone, Copy)]
struct ErrorRecord {
    count: u64,
    sqid: u16,
    cid: u16,
    status: u16,
}

/// What the management commands change.
#[derive(Debug, Default)]
pub(super) struct State {
    errors: VecDeque<ErrorRecord>,
    error_count: u64,
    /// Current values that differ from the default, by feature and (for the temperature
    /// threshold) sensor/threshold selector.
    features: HashMap<(u8, u32), u32>,
}

impl State {
    /// Remembers a failed command for the Error Information log.
    pub(super) fn record_error(&mut self, sqid: u16, cid: u16, status: Status) {
        self.error_count += 1;
        self.errors.push_front(ErrorRecord {
            count: self.error_count,
            sqid,
            cid,
            status: status.to_field(),
        });
        self.errors.truncate(ERROR_ENTRIES);
    }
}

/// The part of dword 11 that selects which instance of a feature is meant.
fn instance(fid: u8, cdw11: u32) -> u32 {
    match fid {
        fid::TEMPERATURE_THRESHOLD => (cdw11 >> 16) & 0x3f,
        _ => 0,
    }
}

impl Engine {
    fn feature_default(&self, fid: u8, instance: u32) -> Option<u32> {
        Some(match fid {
            fid::TEMPERATURE_THRESHOLD if instance == 0 => OVER_TEMPERATURE_K,
            fid::TEMPERATURE_THRESHOLD if instance & 0x30 == 0x10 => 0,
            fid::TEMPERATURE_THRESHOLD => return None,
            fid::VOLATILE_WRITE_CACHE => 1,
            fid::ARBITRATION
            | fid::POWER_MANAGEMENT
            | fid::ERROR_RECOVERY
            | fid::INTERRUPT_COALESCING
            | fid::WRITE_ATOMICITY
            | fid::ASYNC_EVENT_CONFIG => 0,
            _ => return None,
        })
    }

    /// Get Features of everything but Number of Queues.
    pub(super) fn get_other_features(&mut self, sqe: &Sqe) -> Outcome {
        let fid = (sqe.cdw(10) & 0xff) as u8;
        let select = (sqe.cdw(10) >> 8) & 0x7;
        let instance = instance(fid, sqe.cdw(11));
        let Some(default) = self.feature_default(fid, instance) else {
            return generic(sc::INVALID_FIELD);
        };
        let current = self
            .management
            .features
            .get(&(fid, instance))
            .copied()
            .unwrap_or(default);
        match select {
            0 => ok(current | instance << 16),
            // Nothing is saveable: the saved value is the default.
            1 | 2 => ok(default | instance << 16),
            // Capabilities: changeable, not saveable, not namespace specific.
            3 => ok(0b100),
            _ => generic(sc::INVALID_FIELD),
        }
    }

    /// Set Features of everything but Number of Queues.
    pub(super) fn set_other_features(&mut self, sqe: &Sqe) -> Outcome {
        let fid = (sqe.cdw(10) & 0xff) as u8;
        let instance = instance(fid, sqe.cdw(11));
        if self.feature_default(fid, instance).is_none() {
            return generic(sc::INVALID_FIELD);
        }
        if sqe.cdw(10) >> 31 != 0 {
            return specific(csc::FEATURE_NOT_SAVEABLE);
        }
        let value = match fid {
            fid::TEMPERATURE_THRESHOLD => sqe.cdw(11) & 0xffff,
            fid::VOLATILE_WRITE_CACHE => sqe.cdw(11) & 1,
            _ => sqe.cdw(11),
        };
        self.management.features.insert((fid, instance), value);
        ok(0)
    }

    /// Whether `fid` is the Number of Queues feature the admin command handler keeps.
    pub(super) fn is_queue_feature(sqe: &Sqe) -> bool {
        sqe.cdw(10) & 0xff == FEATURE_NUMBER_OF_QUEUES
    }

    /// Get Log Page.
    pub(super) fn get_log_page(&mut self, sqe: &Sqe) -> Outcome {
        let lid = (sqe.cdw(10) & 0xff) as u8;
        let dwords = ((sqe.cdw(10) >> 16) | (sqe.cdw(11) & 0xffff) << 16) as usize + 1;
        let offset = u64::from(sqe.cdw(12)) | u64::from(sqe.cdw(13)) << 32;
        let page = match lid {
            lid::ERROR => self.error_page(),
            lid::SMART => {
                let nsid = sqe.nsid();
                if nsid != 0 && nsid != u32::MAX && self.namespace(nsid).is_none() {
                    return generic(sc::INVALID_NAMESPACE);
                }
                self.smart_page()
            }
            lid::FIRMWARE_SLOT => self.firmware_page(),
            _ => return specific(csc::INVALID_LOG_PAGE),
        };
        let len = dwords * 4;
        if offset > page.len() as u64 || len > 1 << 20 {
            return generic(sc::INVALID_FIELD);
        }
        // Bytes past the end of the page read as zero.
        let mut data = vec![0; len];
        let available = &page[offset as usize..];
        let n = available.len().min(len);
        data[..n].copy_from_slice(&available[..n]);
        match self.transfer(sqe, len) {
            Ok(segments) if self.scatter(&segments, &data) => ok(0),
            Ok(_) => generic(sc::DATA_TRANSFER_ERROR),
            Err(outcome) => outcome,
        }
    }

    fn error_page(&self) -> Vec<u8> {
        let mut page = vec![0; ERROR_ENTRIES * ERROR_ENTRY_SIZE];
        for (entry, e) in page
            .chunks_exact_mut(ERROR_ENTRY_SIZE)
            .zip(&self.management.errors)
        {
            entry[0..8].copy_from_slice(&e.count.to_le_bytes());
            entry[8..10].copy_from_slice(&e.sqid.to_le_bytes());
            entry[10..12].copy_from_slice(&e.cid.to_le_bytes());
            entry[12..14].copy_from_slice(&(e.status << 1).to_le_bytes());
            // Parameter error location unknown.
            entry[14..16].copy_from_slice(&0xffffu16.to_le_bytes());
        }
        page
    }

    fn smart_page(&self) -> Vec<u8> {
        let mut page = vec![0; SMART_LOG_SIZE];
        page[1..3].copy_from_slice(&TEMPERATURE_K.to_le_bytes());
        page[3] = 100;
        page[4] = 10;
        let counters: [(usize, u128); 4] = [
            (64, self.stats.reads.into()),
            (80, self.stats.writes.into()),
            (112, 1),
            (176, self.management.error_count.into()),
        ];
        for (at, value) in counters {
            page[at..at + 16].copy_from_slice(&value.to_le_bytes());
        }
        page
    }

    fn firmware_page(&self) -> Vec<u8> {
        let mut page = vec![0; SMART_LOG_SIZE];
        page[0] = 1;
        page[8..16].copy_from_slice(b"1.0     ");
        page
    }

    /// Format NVM: a new block size over the same bytes, all zero.
    pub(super) fn format_nvm(&mut self, sqe: &Sqe) -> Outcome {
        let cdw10 = sqe.cdw(10);
        let lbaf = (cdw10 & 0xf | (cdw10 >> 12 & 0x3) << 4) as usize;
        let ses = cdw10 >> 9 & 0x7;
        if ses > 1 {
            return generic(sc::INVALID_FIELD);
        }
        let nsid = sqe.nsid();
        let targets: Vec<usize> = if nsid == u32::MAX {
            (0..self.config.namespaces.len()).collect()
        } else if self.namespace(nsid).is_some() {
            vec![nsid as usize - 1]
        } else {
            return generic(sc::INVALID_NAMESPACE);
        };
        for &i in &targets {
            let ns = self.config.namespaces[i];
            let Some(&shift) = lba_formats(ns.lba_shift).get(lbaf) else {
                return specific(csc::INVALID_FORMAT);
            };
            let bytes = ns.blocks << ns.lba_shift;
            if !bytes.is_multiple_of(1 << shift) {
                return specific(csc::INVALID_FORMAT);
            }
            self.config.namespaces[i] = NamespaceConfig {
                blocks: bytes >> shift,
                lba_shift: shift,
            };
            self.media[i].fill(0);
        }
        ok(0)
    }
}
