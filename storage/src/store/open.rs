//! Opening a store: listing its files, loading sealed segments from their footers, scanning the
//! active segment, repairing a torn tail, and checking that every group's live entries are all
//! there.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::apply::{apply_batch, Inapplicable};
use super::collector::CollectorState;
use super::format::{
    self, GroupState, StoreFooter, StoreHeader, StoreOp, StoreRecords, STORE_PREPARING_SUFFIX,
    STORE_SALVAGED_SUFFIX, STORE_SEGMENT_SUFFIX, STORE_SPARE_SUFFIX,
};
use super::index::RunBytes;
use super::segment::{map_segment, ActiveFrames, StoreSegment};
use super::{Counters, GcBook, Live, LogStore, State};
use crate::entry::MAX_INDEX;
use crate::error::{Error, Result};
use crate::files::{ensure_dir, fsync_dir};
use crate::options::{Options, RecoveryMode};
use crate::prepare::Preparer;
use crate::record::{self, RecordKind, FRAME_HEADER_BYTES, GROUP_ENTRY_FIXED_BYTES};
use crate::recovery::{self, RecoveryReport, Salvaged, ScanEnd};
use crate::segment::{self as wal_segment, HEADER_BYTES, SEGMENT_SUFFIX, TRAILER_BYTES};

/// A segment file found in the directory.
struct Found {
    path: PathBuf,
    seq: u64,
}

fn list(dir: &Path, options: &Options, spares: &mut Vec<PathBuf>) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    let mut removed_temp = false;
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if name.ends_with(SEGMENT_SUFFIX) {
            return Err(Error::misuse(format!(
                "{} is a segment of a write-ahead log (Wal), not of a multi-group store; open \
                 the directory with Wal::open",
                path.display()
            )));
        }
        if name.ends_with(STORE_SPARE_SUFFIX) {
            spares.push(path);
            continue;
        }
        if name.ends_with(STORE_PREPARING_SUFFIX) {
            if !options.read_only {
                std::fs::remove_file(&path).map_err(|e| Error::io("delete", &path, e))?;
                removed_temp = true;
            }
            continue;
        }
        if !name.ends_with(STORE_SEGMENT_SUFFIX) {
            continue;
        }
        match format::parse_store_segment_file_name(name) {
            Some(seq) => found.push(Found { path, seq }),
            None => {
                return Err(Error::corruption(
                    &path,
                    0,
                    None,
                    "file name does not follow the store segment pattern SEQ.kst; move it out \
                     of the store directory",
                ))
            }
        }
    }
    if removed_temp {
        fsync_dir(dir)?;
    }
    found.sort_by_key(|found| found.seq);
    Ok(found)
}

/// Recovers the store in `dir`, creating the directory if missing.
pub(super) fn recover(dir: &Path, options: &Options) -> Result<State> {
    ensure_dir(dir, options.read_only)?;
    let mut spares = Vec::new();
    let mut found = list(dir, options, &mut spares)?;
    if !options.read_only {
        spares.sort();
        let keep = options.spare_segments_max.min(super::STORE_SPARES_MAX);
        let extras = spares.split_off(spares.len().min(keep));
        for extra in &extras {
            std::fs::remove_file(extra).map_err(|e| Error::io("delete", extra, e))?;
        }
        if !extras.is_empty() {
            fsync_dir(dir)?;
        }
    } else {
        spares.clear();
    }
    let mut salvaged = Vec::new();
    // Bounded: each retry drops at least one segment.
    loop {
        match load(&found, options) {
            Ok(mut state) => {
                state.spares = spares;
                state.report.salvaged.splice(0..0, salvaged);
                return Ok(state);
            }
            Err(LoadFailure::Fatal(error)) => return Err(error),
            Err(LoadFailure::Salvage { from, error }) => {
                assert!(from < found.len(), "salvage drops an existing segment");
                for dropped in found.split_off(from) {
                    salvaged.push(Salvaged {
                        path: dropped.path.clone(),
                        offset: 0,
                        index_range: None,
                        reason: error.to_string(),
                    });
                    if !options.read_only {
                        let target = dropped.path.with_extension(&STORE_SALVAGED_SUFFIX[1..]);
                        std::fs::rename(&dropped.path, &target)
                            .map_err(|e| Error::io("rename", &dropped.path, e))?;
                        log::warn!(
                            "salvage: moved {} aside to {}",
                            dropped.path.display(),
                            target.display()
                        );
                    }
                }
                if !options.read_only {
                    fsync_dir(dir)?;
                }
            }
        }
    }
}

enum LoadFailure {
    Fatal(Error),
    /// Corruption in segment `from` that salvage handles by dropping it and every later one.
    Salvage {
        from: usize,
        error: Error,
    },
}

fn load(found: &[Found], options: &Options) -> Result<State, LoadFailure> {
    let mut state = State {
        store_id: 0,
        segments: BTreeMap::new(),
        groups: BTreeMap::new(),
        poisoned: None,
        written: 0,
        synced_through: 0,
        sync_in_progress: false,
        last_group: 0,
        last_sync: std::time::Duration::ZERO,
        leader_gathering: false,
        counters: Counters::default(),
        spares: Vec::new(),
        preparer: None,
        scratch: Vec::new(),
        prepared_files: 0,
        report: RecoveryReport {
            segments: found.len(),
            ..RecoveryReport::default()
        },
        book: GcBook::default(),
        collector: CollectorState::default(),
    };
    let mut pending: Option<PendingStates> = None;
    for (position, entry) in found.iter().enumerate() {
        let is_last = position + 1 == found.len();
        let salvage = |error: Error| {
            if options.recovery_mode == RecoveryMode::Salvage && error.is_corruption() {
                LoadFailure::Salvage {
                    from: position,
                    error,
                }
            } else {
                LoadFailure::Fatal(error)
            }
        };
        load_segment(&mut state, options, entry, is_last, &mut pending).map_err(salvage)?;
    }
    if let Some(states) = pending.take() {
        apply_states(&mut state, states).map_err(LoadFailure::Fatal)?;
    }
    for segment in state.segments.values_mut() {
        if segment.sealed && segment.live_entries == 0 {
            // Recovered records are made durable by the sync at the end of open, before any
            // file is freed.
            segment.dead_since = Some(0);
        }
    }
    check_complete(&mut state, options, found).map_err(LoadFailure::Fatal)?;
    let State { segments, book, .. } = &mut state;
    book.recount(segments);
    // Segments recovered without live entries (marked above) wait for the first freeing pass.
    book.dying = true;
    if state.store_id == 0 {
        state.store_id = recovery::new_log_id();
    }
    Ok(state)
}

/// Every group's live range must be covered by entries the segments hold.
fn check_complete(state: &mut State, options: &Options, found: &[Found]) -> Result<()> {
    let State {
        groups,
        segments,
        report,
        book,
        ..
    } = state;
    for (group, index) in groups.iter_mut() {
        let Some((lo, hi)) = index.gap() else {
            continue;
        };
        let path = found.first().map(|f| f.path.clone()).unwrap_or_default();
        let error = Error::group_corruption(
            *group,
            &path,
            0,
            Some((lo, hi)),
            "the group's live entries are missing: a segment holding them is gone",
        );
        if options.recovery_mode != RecoveryMode::Salvage {
            return Err(error);
        }
        report.salvaged.push(Salvaged {
            path,
            offset: 0,
            index_range: Some((lo, hi)),
            reason: error.to_string(),
        });
        let mut live = Live {
            segments,
            book,
            write: 0,
        };
        if lo == index.first {
            let first = index.first;
            index.truncate(first, &mut live);
            // Keep nothing past the gap: the group continues after what was lost.
            index.compact(hi + 1, &mut live);
        } else {
            index.truncate(lo, &mut live);
        }
        debug_assert_eq!(index.gap(), None);
    }
    Ok(())
}

fn open_file(path: &Path, options: &Options) -> Result<File> {
    wal_segment::open_read_write(path).or_else(|e| {
        if options.read_only {
            File::open(path).map_err(|e| Error::io("open", path, e))
        } else {
            Err(e)
        }
    })
}

/// The group states of the last sealed footer loaded: applied once, before the active segment
/// (or at the end), instead of at every footer (see `apply_footer`).
struct PendingStates {
    seq: u64,
    path: PathBuf,
    footer_offset: u64,
    states: Vec<GroupState>,
}

fn apply_states(state: &mut State, pending: PendingStates) -> Result<()> {
    let (groups, mut live) = state.groups_and_live(0);
    let checkpoint = [StoreOp::Checkpoint(pending.states)];
    apply_batch(groups, pending.seq, &checkpoint, &mut live)
        .map_err(|problem| inapplicable(&pending.path, problem, pending.footer_offset))
}

fn load_segment(
    state: &mut State,
    options: &Options,
    entry: &Found,
    is_last: bool,
    pending: &mut Option<PendingStates>,
) -> Result<()> {
    let path = &entry.path;
    let file = open_file(path, options)?;
    let file_len = file
        .metadata()
        .map_err(|e| Error::io("stat", path, e))?
        .len();
    let mut header_bytes = [0u8; HEADER_BYTES as usize];
    let read = file
        .read_at(&mut header_bytes, 0)
        .map_err(|e| Error::io("read", path, e))?;
    let header = StoreHeader::decode(path, &header_bytes[..read])?;
    if header.seq != entry.seq {
        return Err(Error::corruption(
            path,
            0,
            None,
            format!(
                "header says segment {}, the file name says segment {}",
                header.seq, entry.seq
            ),
        ));
    }
    if state.store_id == 0 {
        state.store_id = header.store_id;
    } else if header.store_id != state.store_id {
        return Err(Error::corruption(
            path,
            0,
            None,
            format!(
                "segment belongs to another store (store id {:016x}, this store is {:016x})",
                header.store_id, state.store_id
            ),
        ));
    }
    let map = map_segment(&file, path)?;
    let footer = read_footer(path, header.seq, &map)?;
    if footer.is_none() && !is_last {
        return Err(Error::corruption(
            path,
            0,
            None,
            "segment is not sealed but later segments follow it",
        ));
    }
    let seq = header.seq;
    state.segments.insert(
        seq,
        StoreSegment {
            seq,
            path: path.clone(),
            file: Arc::new(file),
            map: Some(Arc::new(map)),
            frames: ActiveFrames::default(),
            file_len,
            write_offset: HEADER_BYTES,
            checkpoint_end: HEADER_BYTES,
            sealed: false,
            live_entries: 0,
            live_bytes: 0,
            entries_written: 0,
            runs_started: 0,
            dead_since: None,
        },
    );
    match footer {
        Some((footer_offset, footer)) => {
            apply_footer(state, seq, path, footer_offset, footer, pending)?;
            let segment = state.segments.get_mut(&seq).expect("inserted above");
            segment.write_offset = footer_offset;
            segment.sealed = true;
        }
        None => {
            if let Some(states) = pending.take() {
                apply_states(state, states)?;
            }
            scan_active(state, options, seq, path)?
        }
    }
    Ok(())
}

/// The footer of a sealed segment: `(offset, footer)`, or `None` if the trailer is not valid
/// (the segment was never sealed).
fn read_footer(path: &Path, seq: u64, map: &[u8]) -> Result<Option<(u64, StoreFooter)>> {
    let file_len = map.len() as u64;
    if file_len < HEADER_BYTES + TRAILER_BYTES {
        return Ok(None);
    }
    let trailer = &map[(file_len - TRAILER_BYTES) as usize..];
    let Some(footer_offset) = wal_segment::decode_trailer(seq, trailer) else {
        return Ok(None);
    };
    let footer_end = file_len - TRAILER_BYTES;
    let bad = |reason: String| Error::corruption(path, footer_offset, None, reason);
    if footer_offset < HEADER_BYTES || footer_offset >= footer_end {
        return Err(Error::corruption(
            path,
            footer_end,
            None,
            format!("segment trailer points at footer offset {footer_offset}, outside the file"),
        ));
    }
    let frame = record::decode_frame(seq, &map[footer_offset as usize..footer_end as usize])
        .map_err(|e| bad(format!("segment footer unreadable: {e}")))?;
    if frame.kind != RecordKind::Seal {
        return Err(bad(format!(
            "segment trailer points at a {:?} record, not a footer",
            frame.kind
        )));
    }
    let footer =
        StoreFooter::decode(frame.payload).ok_or_else(|| bad("malformed footer".into()))?;
    Ok(Some((footer_offset, footer)))
}

fn inapplicable(path: &Path, problem: Inapplicable, batch_offset: u64) -> Error {
    let offset = if problem.offset == 0 {
        batch_offset
    } else {
        problem.offset as u64
    };
    Error::group_corruption(
        problem.group,
        path,
        offset,
        problem.index_range,
        problem.reason,
    )
}

/// Applies a sealed segment's footer: the live entries this segment holds become those entries'
/// locations. Equivalent to replaying its records (see the module documentation), with one
/// shortcut: the groups' states (ranges, hard states, which groups exist) are applied only from
/// the last sealed footer, before the active segment. That is enough because a live entry's
/// location is always the one in the latest segment whose footer lists it (an entry truncated,
/// replaced or moved is listed again where it went, or not at all once it is gone), and every
/// location outside the final ranges is dropped when the last states are applied. So a footer
/// costs its runs, not a reset of every group.
fn apply_footer(
    state: &mut State,
    seq: u64,
    path: &Path,
    footer_offset: u64,
    footer: StoreFooter,
    pending: &mut Option<PendingStates>,
) -> Result<()> {
    let states_bad = |group: u64, reason: &str| {
        Error::group_corruption(
            group,
            path,
            footer_offset,
            None,
            format!("footer: {reason}"),
        )
    };
    if let Some(pair) = footer
        .states
        .windows(2)
        .find(|pair| pair[0].group >= pair[1].group)
    {
        return Err(states_bad(pair[1].group, "groups out of order"));
    }
    if let Some(bad) = footer
        .states
        .iter()
        .find(|s| s.first == 0 || s.first > MAX_INDEX || s.last > MAX_INDEX || s.last + 1 < s.first)
    {
        return Err(states_bad(bad.group, "impossible group range"));
    }
    let (groups, mut live) = state.groups_and_live(0);
    let smallest_entry = (FRAME_HEADER_BYTES + GROUP_ENTRY_FIXED_BYTES) as u64;
    for run in &footer.runs {
        let run_end = run.first_index.saturating_add(run.offsets.len() as u64);
        let bad = |reason: &str| {
            Error::group_corruption(
                run.group,
                path,
                footer_offset,
                Some((run.first_index, run_end.saturating_sub(1))),
                format!("footer: {reason}"),
            )
        };
        if run.offsets.is_empty() || run.first_index == 0 || run_end > MAX_INDEX {
            return Err(bad("empty run, or impossible indices"));
        }
        if run
            .offsets
            .iter()
            .any(|o| (*o as u64) < HEADER_BYTES || *o as u64 + smallest_entry > footer_offset)
            || run.offsets.windows(2).any(|pair| pair[0] >= pair[1])
        {
            return Err(bad("entry offsets are not increasing within the segment"));
        }
        if run.bytes < run.offsets.len() as u64 * smallest_entry || run.bytes > footer_offset {
            return Err(bad("run's byte count does not fit its entries"));
        }
        let Ok(position) = footer
            .states
            .binary_search_by_key(&run.group, |listed| listed.group)
        else {
            return Err(bad("run of a group the footer does not list"));
        };
        let listed = footer.states[position];
        if run.first_index < listed.first || run_end > listed.last + 1 {
            return Err(bad("run lies outside the group's range"));
        }
        // The range at sealing, so that the run is placed whole; locations outside the final
        // range are dropped when the last states are applied.
        let index = groups.entry(run.group).or_default();
        index.first = listed.first;
        index.last = listed.last;
        index.relocate(
            seq,
            run.first_index,
            &run.offsets,
            RunBytes::Total(run.bytes),
            &mut live,
        );
    }
    let segment = live.segments.get_mut(&seq).expect("loading segment");
    segment.entries_written = footer.runs.iter().map(|run| run.offsets.len() as u64).sum();
    *pending = Some(PendingStates {
        seq,
        path: path.to_path_buf(),
        footer_offset,
        states: footer.states,
    });
    Ok(())
}

/// Scans the active (unsealed, last) segment record by record, applying each complete batch,
/// and handles what follows the last one.
fn scan_active(state: &mut State, options: &Options, seq: u64, path: &Path) -> Result<()> {
    // The active segment stays unmapped once open (see the `segment` module): this map serves
    // the scan alone and is dropped before anything writes to the file.
    let map = state
        .segments
        .get_mut(&seq)
        .expect("loading segment")
        .map
        .take()
        .expect("load_segment maps every segment");
    let limit = map.len();
    let mut entries_written = 0u64;
    let mut batches_seen = 0u64;
    let mut second_batch_start: Option<u64> = None;
    let scan = {
        let State {
            groups,
            segments,
            book,
            ..
        } = &mut *state;
        recovery::scan_records(
            seq,
            &map,
            limit,
            &mut StoreRecords { path },
            |ops, batch_offset| {
                batches_seen += 1;
                if batches_seen == 1 {
                    if !matches!(ops, [StoreOp::Checkpoint(_)]) {
                        return Err(Error::corruption(
                            path,
                            batch_offset,
                            None,
                            "a store segment must start with a checkpoint batch",
                        ));
                    }
                } else if batches_seen == 2 {
                    second_batch_start = Some(batch_offset);
                }
                if batches_seen > 1 && ops.iter().any(|op| matches!(op, StoreOp::Checkpoint(_))) {
                    return Err(Error::corruption(
                        path,
                        batch_offset,
                        None,
                        "checkpoint record after the start of a segment",
                    ));
                }
                entries_written += ops
                    .iter()
                    .filter(|op| matches!(op, StoreOp::Entry { .. }))
                    .count() as u64;
                let mut live = Live {
                    segments: &mut *segments,
                    book: &mut *book,
                    write: 0,
                };
                apply_batch(groups, seq, ops, &mut live)
                    .map_err(|problem| inapplicable(path, problem, batch_offset))
            },
        )?
    };
    drop(map);
    let valid_end = scan.valid_end;
    state.report.tail_bytes_scanned = valid_end;
    match scan.end {
        ScanEnd::Clean => {}
        ScanEnd::Sealed(_) => {
            // The footer was written but its trailer was not: the seal did not finish. The
            // segment stays active and the footer is overwritten by the next batch.
        }
        ScanEnd::Damaged(damage) => {
            recovery::judge_tail_damage(
                options,
                &mut state.report,
                path,
                valid_end,
                &damage,
                None,
            )?;
            if !options.read_only {
                recovery::zero_tail(
                    &state.segments[&seq].file,
                    path,
                    valid_end,
                    damage.dirty_end,
                )?;
            }
        }
    }
    let segment = state.segments.get_mut(&seq).expect("loading segment");
    segment.entries_written = entries_written;
    segment.write_offset = valid_end;
    // Without a checkpoint (a segment whose creation never finished: it is synced before it
    // is renamed into place, so only damage leaves one) the segment holds nothing; open
    // replaces it.
    segment.checkpoint_end = match batches_seen {
        0 => HEADER_BYTES,
        _ => second_batch_start.unwrap_or(valid_end),
    };
    let wanted_len = options.segment_size_bytes;
    if segment.file_len < wanted_len && !options.read_only {
        // A shortened active segment gets its full size back, so the footer and trailer always
        // fit after the records.
        segment
            .file
            .set_len(wanted_len)
            .and_then(|()| segment.file.sync_all())
            .map_err(|e| Error::io("extend segment", path, e))?;
        segment.file_len = wanted_len;
    }
    Ok(())
}

impl LogStore {
    /// After recovery: a new active segment if needed (its checkpoint records the recovered
    /// state), everything recovered made durable, dead segments freed, the preparer started.
    pub(super) fn finish_open(&self) -> Result<()> {
        let mut state = self.lock();
        if self.options.read_only {
            if state.segments.is_empty() {
                return Err(Error::misuse(format!(
                    "{} holds no store segments",
                    self.dir.display()
                )));
            }
            return Ok(());
        }
        let next_seq = match state.segments.values().next_back() {
            Some(last) if !last.sealed && last.checkpoint_end > HEADER_BYTES => None,
            Some(last) if !last.sealed => {
                // A segment whose creation never finished: no checkpoint, nothing in it.
                let last = state.segments.pop_last().expect("just seen").1;
                std::fs::remove_file(&last.path).map_err(|e| Error::io("delete", &last.path, e))?;
                fsync_dir(&self.dir)?;
                Some(last.seq)
            }
            Some(last) => Some(last.seq + 1),
            None => Some(1),
        };
        if let Some(seq) = next_seq {
            self.create_segment(&mut state, seq)?;
        }
        let active = state.active();
        let path = active.path.clone();
        active
            .file
            .sync_data()
            .map_err(|e| Error::io("fdatasync", &path, e))?;
        let State { segments, book, .. } = &mut *state;
        book.recount(segments);
        self.free_dead_segments(&mut state)?;
        if self.options.prepare_segments_ahead {
            state.preparer = Some(Preparer::start_paced(
                self.dir.clone(),
                self.options.segment_size_bytes,
                STORE_PREPARING_SUFFIX,
                "ketch-store-prepare",
            ));
        }
        Ok(())
    }
}
