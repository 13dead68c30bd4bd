//! Read-mostly registries shared by every shard: campaigns (with their stock and
//! budget counters) and merchants. Changes go through the control journal first.

use crate::api::{CampaignStatus, CampaignView};
use crate::domain::{Campaign, Category};
use chrono::{DateTime, Utc};
use crossbeam::utils::CachePadded;
use dashmap::DashMap;
use parking_lot::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A campaign and its live counters.
#[derive(Debug)]
pub struct CampaignEntry {
    /// The definition.
    pub campaign: Campaign,
    /// Creation instant.
    pub created_ms: i64,
    /// Lifecycle status.
    pub status: RwLock<CampaignStatus>,
    /// Units left per (round, tier), index `round * tiers + tier`. The one shared
    /// number every shard draws on: a unit is taken before a grant is journaled and
    /// given back if the journal write fails, so claimed <= stock at every instant.
    /// Each counter sits on its own cache line: shards hammer different tiers at once.
    remaining: Vec<CachePadded<AtomicU64>>,
    /// Discounts committed (standing redemptions), in fen; never above budget.
    committed_fen: AtomicU64,
}

impl CampaignEntry {
    /// A fresh entry with full stock.
    pub fn new(campaign: Campaign, created_ms: i64) -> Self {
        let remaining = campaign
            .rounds
            .iter()
            .flat_map(|_| {
                campaign
                    .tiers
                    .iter()
                    .map(|t| CachePadded::new(AtomicU64::new(t.stock)))
            })
            .collect();
        CampaignEntry {
            campaign,
            created_ms,
            status: RwLock::new(CampaignStatus::Draft),
            remaining,
            committed_fen: AtomicU64::new(0),
        }
    }

    fn slot(&self, round: u32, tier: u32) -> Option<&AtomicU64> {
        self.slot_padded(round, tier).map(|p| &**p)
    }

    fn slot_padded(&self, round: u32, tier: u32) -> Option<&CachePadded<AtomicU64>> {
        let tiers = self.campaign.tiers.len();
        let t = tier as usize;
        if t >= tiers {
            return None;
        }
        self.remaining.get(round as usize * tiers + t)
    }

    /// Takes one unit; false when none is left.
    pub fn take_unit(&self, round: u32, tier: u32) -> bool {
        let Some(slot) = self.slot(round, tier) else {
            return false;
        };
        slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Gives back a unit taken for a grant that was never made durable.
    pub fn return_unit(&self, round: u32, tier: u32) {
        if let Some(slot) = self.slot(round, tier) {
            let before = slot.fetch_add(1, Ordering::AcqRel);
            let stock = self.campaign.tiers[tier as usize].stock;
            assert!(before < stock, "returned more units than were taken");
        }
    }

    /// Units left.
    pub fn remaining(&self, round: u32, tier: u32) -> u64 {
        self.slot(round, tier)
            .map_or(0, |s| s.load(Ordering::Acquire))
    }

    /// Sets units left after recovery: stock minus claims found in the journals.
    pub fn set_claimed(&self, round: u32, tier: u32, claimed: u64) {
        if let Some(slot) = self.slot(round, tier) {
            let stock = self.campaign.tiers[tier as usize].stock;
            assert!(claimed <= stock, "journals hold more claims than stock");
            slot.store(stock - claimed, Ordering::Release);
        }
    }

    /// Commits `fen` of budget; false if it would exceed the budget.
    pub fn take_budget(&self, fen: u64) -> bool {
        let budget = self.campaign.budget.get();
        self.committed_fen
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                c.checked_add(fen).filter(|n| *n <= budget)
            })
            .is_ok()
    }

    /// Whether `fen` more would still fit (for quotes).
    pub fn budget_fits(&self, fen: u64) -> bool {
        self.committed_fen
            .load(Ordering::Acquire)
            .saturating_add(fen)
            <= self.campaign.budget.get()
    }

    /// Releases budget of a reversed (or never durable) redemption.
    pub fn return_budget(&self, fen: u64) {
        let before = self.committed_fen.fetch_sub(fen, Ordering::AcqRel);
        assert!(before >= fen, "returned more budget than was committed");
    }

    /// Sets committed budget after recovery.
    pub fn set_committed(&self, fen: u64) {
        self.committed_fen.store(fen, Ordering::Release);
    }

    /// Discounts committed.
    pub fn committed(&self) -> u64 {
        self.committed_fen.load(Ordering::Acquire)
    }

    /// The manager's view.
    pub fn view(&self) -> CampaignView {
        CampaignView {
            id: self.campaign.id.clone(),
            status: *self.status.read(),
            created_at: DateTime::<Utc>::from_timestamp_millis(self.created_ms).unwrap_or_default(),
            spec: serde_json::from_str(&self.campaign.spec.0).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// A registered merchant.
#[derive(Debug, Clone)]
pub struct Merchant {
    /// Merchant id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Category.
    pub category: Category,
    /// Region.
    pub region: String,
    /// Terminal ids bound to it.
    pub terminals: Vec<String>,
}

/// Everything shards read but do not own.
#[derive(Debug, Default)]
pub struct Registry {
    /// Campaigns by id.
    pub campaigns: DashMap<String, Arc<CampaignEntry>>,
    /// Merchants by id.
    pub merchants: DashMap<String, Arc<Merchant>>,
    /// Account id -> person routing key (the shard that owns the wallet). foldhash is
    /// seeded per process, so account names cannot be picked to collide in advance.
    pub accounts: DashMap<String, u64, foldhash::fast::RandomState>,
}
