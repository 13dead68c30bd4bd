//! Shared set-up for engine tests: a real engine on a fresh data directory with a
//! clock the test controls.
#![allow(dead_code)]

use serde_json::json;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use yunquan_actors::api::{MerchantInput, ResidentInput};
use yunquan_actors::domain::{CampaignSpec, Category};
use yunquan_actors::{Engine, EngineConfig};

pub struct Harness {
    pub engine: Engine,
    pub clock: Arc<AtomicI64>,
    pub dir: tempfile::TempDir,
}

pub fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

pub fn config(dir: &std::path::Path, shards: u32) -> EngineConfig {
    EngineConfig {
        data_dir: dir.to_path_buf(),
        shards,
        mailbox_commands_max: 10_000,
        batch_events_max: 1_000,
        snapshot_every_events: 1_000_000,
        idempotency_keys_max: 100_000,
        queue_wait_ms_max: 0,
    }
}

impl Harness {
    pub fn start(now: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(AtomicI64::new(ms(now)));
        let c = Arc::clone(&clock);
        let engine = Engine::start(
            config(dir.path(), 2),
            Arc::new(move || c.load(Ordering::SeqCst)),
        )
        .unwrap();
        Harness { engine, clock, dir }
    }

    pub fn set_now(&self, now: &str) {
        self.clock.store(ms(now), Ordering::SeqCst);
    }

    pub async fn residents(&self, n: usize, prefix: &str) -> Vec<String> {
        let batch: Vec<ResidentInput> = (0..n)
            .map(|i| ResidentInput {
                account: format!("{prefix}{i}"),
                // Distinct persons per prefix: the prefix's bytes go into the number.
                identity_number: format!(
                    "{}{i:08}",
                    prefix
                        .bytes()
                        .map(|b| format!("{b:03}"))
                        .collect::<String>()
                ),
                region: "guiyang".into(),
            })
            .collect();
        let accounts = batch.iter().map(|r| r.account.clone()).collect();
        for r in self.engine.register_residents(batch).await.unwrap() {
            r.unwrap();
        }
        accounts
    }

    pub async fn merchant(&self, id: &str, category: Category, region: &str) {
        let m = MerchantInput {
            id: id.into(),
            name: format!("shop {id}"),
            category,
            region: region.into(),
            terminals: vec![format!("{id}-t1")],
        };
        self.engine
            .register_merchants(vec![m])
            .await
            .unwrap()
            .pop()
            .unwrap()
            .unwrap();
    }

    /// A published campaign with one tier; `tier` and `extra` are merged into the spec.
    pub async fn campaign(&self, tier: serde_json::Value, extra: serde_json::Value) -> String {
        let mut spec = json!({
            "name": "test round", "funder": "commerce dept", "budget_fen": 100_000_000_000u64,
            "rounds": [{"start": "2025-06-01T10:00:00", "end": "2025-06-01T22:00:00"}],
            "tiers": [tier],
            "eligibility": {"categories": ["catering"]},
            "validity": {"kind": "window", "from": "2025-06-01", "to": "2025-06-30"}
        });
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let spec: CampaignSpec = serde_json::from_value(spec).unwrap();
        let id = self.engine.create_campaign(spec).await.unwrap().id;
        self.engine
            .campaign_action(&id, yunquan_actors::api::CampaignAction::Publish)
            .await
            .unwrap();
        id
    }
}
