//! The HA thread's local side: the board's handle from `dataplane`, driven through the
//! same typed commands as the daemon's.

use dataplane::board::BoardHandle;
use std::sync::Arc;

use dataplane::nat::events::{BlockRecord, Refused, SessionRecord, SweepKeys};

use crate::node::Local;

impl Local for BoardHandle {
    fn install(&self, blocks: Vec<BlockRecord>, sessions: Vec<SessionRecord>) -> Refused {
        BoardHandle::install(self, blocks, sessions)
    }
    fn sweep(&self, keep: Arc<SweepKeys>, locations: u64) -> Result<usize, (usize, String)> {
        BoardHandle::sweep(self, keep, locations)
    }
    fn remove(&self, sessions: Vec<SessionRecord>) -> usize {
        BoardHandle::remove(self, sessions)
    }
    fn table(&self) -> (Vec<SessionRecord>, Vec<BlockRecord>) {
        BoardHandle::table(self)
    }
    fn set_active(&self, location: usize, on: bool) {
        BoardHandle::set_active(self, location, on)
    }
    fn set_peer(&self, mac: [u8; 6], active: u64) {
        BoardHandle::set_peer(self, mac, active)
    }
    fn progress(&self) -> Vec<u64> {
        BoardHandle::progress(self)
    }
    fn events_lost(&self) -> u64 {
        BoardHandle::events_lost(self)
    }
    fn unfit(&self) -> Option<String> {
        BoardHandle::unfit(self)
    }
}
