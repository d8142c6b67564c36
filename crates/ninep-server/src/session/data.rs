//! Tread, Twrite, Treaddir and Tfsync: moving file contents, spliced or copied, inline or on
//! the blocking pool.

use ninep::{Response, put_rread_header};
use rustix::io::Errno;

use super::{Reply, Session, blocking};
use crate::attr;
use crate::fid::{DataFile, FidState, OpenFile};
use crate::fs::{FsResult, dir, ops};
use crate::pipe::WritePayload;
use crate::sink::Outgoing;

/// Payloads of at least this many bytes are spliced; below it a copy is cheaper than the
/// pipe's extra system calls.
pub(super) const MIN_SPLICE: usize = 32 * 1024;

impl Session {
    pub(super) async fn read(
        &self,
        tag: u16,
        fid: u32,
        offset: u64,
        count: u32,
    ) -> FsResult<Reply> {
        let fid = self.fid(fid)?;
        let count = count.min(self.msize() - ninep::RREAD_HEADER_LEN as u32) as usize;
        let fd = match &fid.lock().state {
            FidState::XattrRead(value) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(value.len());
                let end = start.saturating_add(count).min(value.len());
                return Ok(Reply::Frame(rread_frame(tag, &value[start..end])));
            }
            state => state.data_file()?.clone(),
        };
        let in_memory = fd.in_memory();
        let pipe = self.pipes.as_ref();
        let pipe = pipe.filter(|_| self.splice_reads && count >= MIN_SPLICE);
        let pipe = pipe.and_then(|pool| pool.take(count));
        let job = move || {
            if let Some(mut payload) = pipe {
                // Bytes up to the first page boundary that would not fit in the pipe travel
                // in the header's buffer, so that an unaligned read still gets every byte.
                let head = payload.head_to_copy(offset, count);
                let mut header = read_frame(&fd, tag, offset, head)?;
                if header.len() < ninep::RREAD_HEADER_LEN + head {
                    // End of file inside the head.
                    return Ok(Reply::Frame(header));
                }
                match payload.fill_from(&*fd, offset + head as u64, count - head) {
                    Ok(n) if n + head > 0 => {
                        patch_rread(&mut header, head + n);
                        return Ok(Reply::Spliced(Outgoing::Spliced { header, payload }));
                    }
                    // End of file: an empty Rread, as below.
                    Ok(_) => {}
                    // This file cannot be spliced: copy it.
                    Err(Errno::INVAL) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(Reply::Frame(read_frame(&fd, tag, offset, count)?))
        };
        if in_memory {
            job()
        } else {
            blocking(job).await
        }
    }

    pub(super) async fn write(&self, fid: u32, offset: u64, data: WritePayload) -> FsResult<Reply> {
        let fid = self.fid(fid)?;
        let fd = {
            let mut inner = fid.lock();
            match &mut inner.state {
                FidState::XattrWrite { size, value, .. } => {
                    let data = data.into_bytes()?;
                    let end = offset.checked_add(data.len() as u64).ok_or(Errno::INVAL)?;
                    if end > *size || offset != value.len() as u64 {
                        return Err(Errno::INVAL);
                    }
                    value.extend_from_slice(&data);
                    return Ok(Response::Write {
                        count: data.len() as u32,
                    }
                    .into());
                }
                state => state.data_file()?.clone(),
            }
        };
        let file = fd.clone();
        let _turn = file.write_turn().await;
        // A spliced payload over pages an in-memory file already has is written inline: like an
        // inline read, it allocates nothing and waits for no device, and it saves the hand-off
        // to the blocking pool (TCP overwrites measured 4.3-5.2 against 3.3-4.4 GB/s). Copied
        // payloads are not: their copy then competes with the connection's reader (unix
        // overwrites fell from 3.9-5.3 to 2.0-3.5 GB/s); nor are writes that extend the file,
        // since allocating pages can wait for reclaim. (A truncation racing the size check only
        // makes that one write allocate on a worker.)
        let inline = fd.in_memory() && data.is_piped() && ops::overwrites(&*fd, offset, data.len());
        let n = if inline {
            data.write_at(&*fd, offset)?
        } else {
            blocking(move || data.write_at(&*fd, offset)).await?
        };
        Ok(Response::Write { count: n as u32 }.into())
    }

    /// Tfsync. An opened directory or special file has nothing to sync.
    pub(super) async fn fsync(&self, fid: u32, datasync: bool) -> FsResult<Reply> {
        let fd = match self.fid(fid)?.lock().state.data_file() {
            Ok(fd) => fd.clone(),
            Err(Errno::ISDIR | Errno::INVAL) => return Ok(Response::Fsync.into()),
            Err(e) => return Err(e),
        };
        blocking(move || ops::fsync(std::os::fd::AsFd::as_fd(&*fd), datasync)).await?;
        Ok(Response::Fsync.into())
    }

    pub(super) async fn readdir(
        &self,
        tag: u16,
        fid: u32,
        offset: u64,
        count: u32,
    ) -> FsResult<Reply> {
        let fid = self.fid(fid)?;
        let count = count.min(self.msize() - ninep::RREAD_HEADER_LEN as u32);
        let (dir, dev) = match &fid.lock().state {
            FidState::Open {
                file: OpenFile::Dir(dir, dev),
                ..
            } => (dir.clone(), *dev),
            FidState::Open { .. } => return Err(Errno::NOTDIR),
            _ => return Err(Errno::BADF),
        };
        let share = fid.share.clone();
        blocking(move || {
            let fd = dir.lock().unwrap_or_else(|e| e.into_inner());
            let entries = dir::read(&share.fs, &*fd, dev, offset, count as usize)?;
            drop(fd);
            let mut frame = Vec::with_capacity(ninep::RREAD_HEADER_LEN + count as usize);
            let mut out = ninep::ReaddirFrame::begin(&mut frame, tag, count);
            for e in &entries {
                let q = attr::qid(e.qid);
                if !out
                    .entries()
                    .push(&q, e.offset, e.kind, &e.name)
                    .map_err(|_| Errno::IO)?
                {
                    break;
                }
            }
            out.finish();
            Ok(Reply::Frame(frame))
        })
        .await
    }
}

fn rread_frame(tag: u16, data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(ninep::RREAD_HEADER_LEN + data.len());
    let _ = put_rread_header(&mut frame, tag, data.len() as u32);
    frame.extend_from_slice(data);
    frame
}

/// An Rread frame holding up to `count` bytes of `file` at `offset` (fewer at end of file).
fn read_frame(file: &DataFile, tag: u16, offset: u64, count: usize) -> FsResult<Vec<u8>> {
    let mut frame = Vec::with_capacity(ninep::RREAD_HEADER_LEN + count);
    put_rread_header(&mut frame, tag, 0).map_err(|_| Errno::IO)?;
    let n = ops::read_into(file, offset, count, &mut frame)?;
    patch_rread(&mut frame, n);
    Ok(frame)
}

/// Fixes up the size and count of an Rread frame once the number of bytes read is known.
fn patch_rread(frame: &mut [u8], n: usize) {
    let count = n as u32;
    frame[0..4].copy_from_slice(&(ninep::RREAD_HEADER_LEN as u32 + count).to_le_bytes());
    frame[7..11].copy_from_slice(&count.to_le_bytes());
}
