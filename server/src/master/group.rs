//! What a master does only while it leads a failover group's term: the
//! record that starts its term, linearizable reads by read index, and the
//! system keys clients may not write.

use super::{lock, Master};
use crate::requests::{answer_read, error_message};
use hypha_net::{ErrorCode, Message, MIN_SEQ_LINEARIZABLE, TERM_START_KEY};
use hypha_repl::MasterEvent;
use std::time::{Duration, Instant};

/// How often a linearizable read checks whether the version it must
/// return is held by a majority yet.
const COMMIT_POLL_MS: u64 = 1;

/// A linearizable read as the log holds it now.
enum ReadNow {
    /// The answer, and the seq a majority must hold before it goes out.
    Answer(Message, u64),
    /// Refused at once.
    Refused(Message),
}

/// A client's `Put` or `Delete` of a system key: refused, with why.
pub(super) fn reserved(m: &Message) -> Option<Message> {
    m.writes_system_key().then(|| {
        Message::error(
            m.req_id().unwrap_or(0),
            ErrorCode::BadRequest,
            "keys starting with the byte 0xff followed by \"hypha/\" are the system's; use \
             another key",
        )
    })
}

/// Whether `m` asks for a linearizable answer (`MIN_SEQ_LINEARIZABLE`).
pub(super) fn linearizable(m: &Message) -> bool {
    matches!(
        m,
        Message::Get { min_seq, .. } | Message::History { min_seq, .. } | Message::Scan { min_seq, .. }
            if *min_seq == MIN_SEQ_LINEARIZABLE
    )
}

impl Master {
    /// Writes the record that starts this master's term (`TERM_START_KEY`),
    /// durably, and streams it: once a majority holds it, every record
    /// before it is committed too and linearizable reads can be answered.
    pub(super) async fn start_term(&self) {
        let Some(g) = &self.cfg.group else {
            return;
        };
        let term = g.group.term;
        let value = term.to_le_bytes().to_vec();
        let seq = match self.append_system(TERM_START_KEY, value).await {
            Ok(seq) => seq,
            // Deposed already: nothing to start.
            Err(_) if !*self.writes_open.read().unwrap_or_else(|p| p.into_inner()) => return,
            Err(e) => {
                log::error!("master: cannot write the record that starts term {term}: {e}");
                return;
            }
        };
        log::info!("master: term {term} starts at seq {seq}");
    }

    /// The highest seq known committed: in a failover group what a
    /// majority holds, else everything written (a `Welcome` says it; an
    /// edge takes it as a floor for its retries' searches, so it must
    /// never be a seq that could still be lost).
    pub(super) fn commit_point(&self) -> u64 {
        match self.cfg.group {
            Some(_) => lock(&self.core).majority_commit(),
            None => self.db.seq(),
        }
    }

    /// Tells the election that every record up to `seq` is durable, unless
    /// a later seq was told already: writes finish their fdatasyncs in any
    /// order, and an older report must not take back a newer one (the
    /// election would tell a witness less than it may vouch for, and the
    /// writes after it would wait for a majority that never comes).
    pub(super) fn report_durable(&self, seq: u64) {
        let Some(g) = &self.cfg.group else {
            return;
        };
        let mut reported = lock(&self.reported);
        if seq > *reported {
            *reported = seq;
            // Every record this master wrote is of its term.
            let term = g.group.term;
            g.group.elector.log_changed(hypha_net::LogId { term, seq });
        }
    }

    /// Witness `member` keeps `last` durably: it counts toward the majority
    /// up to its seq if `last` is of this term.
    pub fn witness_ack(&self, member: usize, last: hypha_net::LogId) {
        if self.cfg.group.as_ref().map(|g| g.group.term) != Some(last.term) {
            return;
        }
        // Named apart from node ids, which are random.
        let witness = u64::MAX - member as u64;
        self.handle(MasterEvent::WitnessAck {
            witness,
            seq: last.seq,
        });
    }

    /// Answers a linearizable `Get`, `History` or `Scan`: once this member
    /// confirmed it still leads (after the request arrived), with what its
    /// log holds then, sent once a majority holds every write in it. (A
    /// version no majority holds yet could still be lost; answering it
    /// could show a write that never happened.) The answer is fixed when
    /// computed: every write acknowledged before the request is in it, and
    /// every write in it is committed before it goes out.
    pub(super) async fn linearizable_read(&self, m: Message) -> Message {
        let req_id = m.req_id().unwrap_or(0);
        let Some(g) = &self.cfg.group else {
            return Message::error(
                req_id,
                ErrorCode::BadRequest,
                "linearizable reads are answered by a failover group's leader",
            );
        };
        let leads = g.group.elector.read_index().recv().await == Ok(true);
        if !leads {
            return Message::error(
                req_id,
                ErrorCode::NotMaster,
                "this member does not lead its group (any more): ask the leader",
            );
        }
        let (mut answer, need) = match self.read_now(&m) {
            ReadNow::Answer(answer, need) => (answer, need),
            ReadNow::Refused(refused) => return refused,
        };
        let deadline = Instant::now() + Duration::from_millis(self.cfg.sync_timeout_ms);
        loop {
            let commit = lock(&self.core).majority_commit();
            if need <= commit && commit > 0 {
                if let Message::Value { applied_seq, .. } = &mut answer {
                    *applied_seq = commit;
                }
                return answer;
            }
            // Deposed meanwhile: answer now and let go of the master.
            if !*self.writes_open.read().unwrap_or_else(|p| p.into_inner()) {
                return Message::error(
                    req_id,
                    ErrorCode::NotMaster,
                    "this member stopped leading its group: ask the leader",
                );
            }
            if Instant::now() >= deadline {
                return Message::error(
                    req_id,
                    ErrorCode::Timeout,
                    &format!(
                        "the newest write this read shows (seq {need}) is not yet held by a \
                         majority (commit point {commit})"
                    ),
                );
            }
            smol::Timer::after(Duration::from_millis(COMMIT_POLL_MS)).await;
        }
    }

    /// The answer to a linearizable read as the log holds it now, and the
    /// seq a majority must hold before it goes out: the key's newest
    /// version (a delete included) for `Get` and `History`; for `Scan`,
    /// the log's end once the page is read.
    fn read_now(&self, m: &Message) -> ReadNow {
        let req_id = m.req_id().unwrap_or(0);
        let mut plain = m.clone();
        match &mut plain {
            Message::Get { key, .. } => {
                let newest = match self.db.history(key, 1) {
                    Ok(v) => v.into_iter().next(),
                    Err(e) => return ReadNow::Refused(error_message(req_id, &e)),
                };
                let need = newest.as_ref().map_or(0, |v| v.seq);
                let value = newest.and_then(|v| v.value.map(|value| (v.seq, value)));
                let answer = Message::Value {
                    req_id,
                    value,
                    applied_seq: 0,
                };
                return ReadNow::Answer(answer, need);
            }
            Message::History { min_seq, .. } | Message::Scan { min_seq, .. } => *min_seq = 0,
            _ => {
                return ReadNow::Refused(Message::error(
                    req_id,
                    ErrorCode::BadRequest,
                    "linearizable reads are GETs, histories and listings",
                ))
            }
        }
        let answer = answer_read(&self.db, self.me, &plain)
            .unwrap_or_else(|| Message::error(req_id, ErrorCode::BadRequest, "not a read"));
        let need = match &answer {
            Message::Versions { versions, .. } => versions.iter().map(|v| v.seq).max().unwrap_or(0),
            _ => self.db.seq(),
        };
        ReadNow::Answer(answer, need)
    }
}
