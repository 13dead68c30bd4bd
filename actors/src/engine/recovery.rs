//! Rebuilding memory from the store: the control journal into the registry, each
//! shard's snapshot plus journal tail into its state.

use super::events::{decode, ControlEvent, ShardEvent, CONTROL_JOURNAL};
use super::registry::{CampaignEntry, Merchant, Registry};
use super::state::ShardState;
use super::StartError;
use std::sync::Arc;
use yunquan_storage::Store;

/// Records read per storage call during replay.
const REPLAY_RECORDS_MAX: usize = 16_384;

/// Reads a whole journal from `from_seq`, calling `f` with each record; returns the next seq.
fn replay(
    store: &dyn Store,
    journal: u32,
    from_seq: u64,
    mut f: impl FnMut(u64, &[u8]) -> Result<(), StartError>,
) -> Result<u64, StartError> {
    let mut next = from_seq;
    loop {
        let records = store.read(journal, next, REPLAY_RECORDS_MAX)?;
        if records.is_empty() {
            return Ok(next);
        }
        for r in &records {
            assert_eq!(r.seq, next, "journal sequence numbers are dense");
            f(r.seq, &r.payload)?;
            next = r.seq + 1;
        }
    }
}

fn corrupt(journal: u32, seq: u64, e: impl std::fmt::Display) -> StartError {
    StartError::Corrupt {
        journal,
        seq,
        detail: e.to_string(),
    }
}

/// Applies one control event to the registry.
pub fn apply_control(registry: &Registry, ev: ControlEvent) {
    match ev {
        ControlEvent::CampaignCreated { campaign, at_ms } => {
            let id = campaign.id.clone();
            registry
                .campaigns
                .insert(id, Arc::new(CampaignEntry::new(*campaign, at_ms)));
        }
        ControlEvent::StatusChanged { id, status, .. } => {
            if let Some(e) = registry.campaigns.get(&id) {
                *e.status.write() = status;
            }
        }
        ControlEvent::MerchantRegistered {
            id,
            name,
            category,
            region,
            terminals,
        } => {
            registry.merchants.insert(
                id.clone(),
                Arc::new(Merchant {
                    id,
                    name,
                    category,
                    region,
                    terminals,
                }),
            );
        }
    }
}

/// Replays the control journal into `registry`; returns the next seq.
pub fn recover_control(store: &dyn Store, registry: &Registry) -> Result<u64, StartError> {
    replay(store, CONTROL_JOURNAL, 1, |seq, bytes| {
        let ev: ControlEvent = decode(bytes).map_err(|e| corrupt(CONTROL_JOURNAL, seq, e))?;
        apply_control(registry, ev);
        Ok(())
    })
}

/// Loads a shard's snapshot and replays its journal after it; returns (state, next seq).
pub fn recover_shard(
    store: &dyn Store,
    shard: u32,
    keys_max: usize,
) -> Result<(ShardState, u64), StartError> {
    let (mut state, from) = match store.load_snapshot(shard)? {
        Some((seq, bytes)) => {
            let mut s: ShardState =
                decode(&bytes).map_err(|e| corrupt(shard, seq, format!("snapshot: {e}")))?;
            s.claim_keys.set_keys_max(keys_max);
            s.request_nos.set_keys_max(keys_max);
            (s, seq + 1)
        }
        None => (ShardState::new(keys_max), 1),
    };
    let next = replay(store, shard, from, |seq, bytes| {
        let ev: ShardEvent = decode(bytes).map_err(|e| corrupt(shard, seq, e))?;
        state.apply(&ev);
        Ok(())
    })?;
    Ok((state, next))
}
